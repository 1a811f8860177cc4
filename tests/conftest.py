"""Shared fixtures: real files, real Drain3, real (tiny, random-weight) transformer models."""

from __future__ import annotations

from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def need_data(*parts: str) -> Path:
    """Path under ../shared/data, or skip the test with the reason."""
    p = DATA.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"needs {p} (the shared data folder beside the checkout is absent)")
    return p


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A real Llama-architecture model with random weights and SmolLM2's real chat tokenizer.

    Fast enough for unit tests (2 layers, hidden 32) while exercising the exact code paths
    the 135M model uses: chat template, left padding, stop strings, log-probs.
    """
    from benchmarks.model_server import build_tiny_model

    out = build_tiny_model(tmp_path_factory.mktemp("tiny-llama"))
    return out


@pytest.fixture(scope="session")
def tiny_backend(tiny_model_dir):
    from rlog.backends.transformers_backend import TransformersBackend

    return TransformersBackend(tiny_model_dir, model_id="tiny-llama")


@pytest.fixture(scope="session")
def fp32_backend(tiny_model_dir):
    """The tiny model read in float32, for tests of exact maths: ``dtype: auto`` picks bfloat16 on a CPU
    with native bfloat16, which keeps those equalities to a few percent only."""
    from rlog.backends.transformers_backend import TransformersBackend

    return TransformersBackend(tiny_model_dir, model_id="tiny-fp32", dtype="float32")


# ---------------------------------------------------------------------- the streaming tests' shared parts


@pytest.fixture(scope="module")
def broker():
    """A real Kafka-protocol broker (tansu) on loopback, one per test module."""
    from stream.broker import EmbeddedBroker

    with EmbeddedBroker() as b:
        yield b


@pytest.fixture(scope="module")
def sim_dir(tmp_path_factory):
    """600 simulated lines with faults (seeded), the logs the streaming tests replay."""
    from rlog.sim.engine import SimConfig
    from rlog.sim.output import simulate

    out = tmp_path_factory.mktemp("stream-sim")
    simulate(SimConfig(seed=13, lines=600, fault_gap_s=20, warmup_s=5), out, progress=False)
    return out


@pytest.fixture(scope="module")
def short_context_model(tmp_path_factory):
    """A real GPT-2-architecture model whose 64-position window is shorter than any session prompt:
    it loads, and every generation fails the way an overloaded or misconfigured server does."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from rlog.models import builtin_gguf, load_gguf_tokenizer

    out = tmp_path_factory.mktemp("gpt2-64")
    tok = load_gguf_tokenizer(builtin_gguf())
    cfg = GPT2Config(vocab_size=len(tok), n_positions=64, n_embd=32, n_layer=1, n_head=2,
                     bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    torch.manual_seed(0)
    GPT2LMHeadModel(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return out
