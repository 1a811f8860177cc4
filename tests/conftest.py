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
