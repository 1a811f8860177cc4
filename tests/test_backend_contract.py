"""One contract for every inference backend: same prompts in, same parsed answers out.

Runs for the transformers backend (in-process, CPU) and for the OpenAI-compatible HTTP
backend against a real model server started here (``transformers serve`` on the built-in
SmolLM2 folder; it gives no log-probabilities, so the text-only fallback is what runs).
The vLLM backends run where a GPU and vLLM are present (marked ``gpu``; skipped here,
saying why). The reference for "same answers" is the transformers backend on the same
weights in float32, one prompt per call: what a server computes for one request.
"""

from __future__ import annotations

import importlib.util
import shutil

import pytest

from rlog.backends import can_score
from rlog.backends.base import BackendError, GenerationParams
from rlog.backends.transformers_backend import TransformersBackend
from rlog.cascade.explain import structured_answer
from rlog.config import CascadeConfig, ExplainConfig
from rlog.contract.answers import parse_fast
from rlog.contract.prompts import VERDICTS
from rlog.contract.representation import prompt_for, view_of_templates
from rlog.models import SMOLLM2, resolve_model

pytestmark = pytest.mark.slow

SESSIONS = (["DataXceiver: java.io.IOException: No space left on device", "PacketResponder <*> terminating"],
            ["user <*> logged in", "session opened for user <*>"],
            ["kernel panic: fatal machine check", "rts panic! - stopping execution"])
SERVED = "rlog/smollm2-135m-instruct"


def _prompts(mode="fast"):
    cfg = CascadeConfig()
    return [prompt_for(view_of_templates(list(s)), mode, cfg) for s in SESSIONS]


def _has_gpu() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:  # pragma: no cover
        return False


@pytest.fixture(scope="module")
def smollm2_dir():
    return resolve_model(SMOLLM2)


@pytest.fixture(scope="module")
def reference(smollm2_dir):
    return TransformersBackend(smollm2_dir, dtype="float32", model_id="reference")


@pytest.fixture(scope="module")
def model_server(smollm2_dir, tmp_path_factory):
    if importlib.util.find_spec("fastapi") is None or importlib.util.find_spec("uvicorn") is None:
        pytest.skip("needs transformers[serving] (fastapi, uvicorn) for a real OpenAI-compatible server")
    from benchmarks.model_server import ModelServer

    server = ModelServer({SERVED: smollm2_dir}, tmp_path_factory.mktemp("model-server"), dtype="float32").start()
    yield server
    server.stop()


@pytest.fixture(scope="module", params=["transformers", "openai", pytest.param("vllm", marks=pytest.mark.gpu),
                                        pytest.param("vllm-server", marks=pytest.mark.gpu)])
def backend(request, smollm2_dir):
    kind = request.param
    if kind == "transformers":
        yield TransformersBackend(smollm2_dir, dtype="float32", model_id="smollm2-fp32", share=False)
    elif kind == "openai":
        from rlog.backends.openai_backend import OpenAIBackend

        server = request.getfixturevalue("model_server")
        b = OpenAIBackend(server.base_url, SERVED, smollm2_dir, timeout_s=120)
        yield b
        b.close()
    else:
        if not _has_gpu() or importlib.util.find_spec("vllm") is None:
            pytest.skip("gpu: needs a CUDA GPU and vLLM (pip install 'rlog[gpu]')")
        if kind == "vllm":
            from rlog.backends.vllm_backend import VLLMBackend

            yield VLLMBackend(smollm2_dir, dtype="float32")
        else:  # `vllm serve` is started by the GPU check script; its URL comes in the environment
            import os

            from rlog.backends.openai_backend import OpenAIBackend

            url = os.environ.get("RLOG_VLLM_URL")
            if not url or shutil.which("vllm") is None:
                pytest.skip("gpu: set RLOG_VLLM_URL to a running `vllm serve` of SmolLM2 served as " + SERVED)
            yield OpenAIBackend(url, SERVED, smollm2_dir)


def test_same_prompts_same_fast_answers(backend, reference):
    params = GenerationParams(max_new_tokens=24, stop=("</answer>",))
    got = backend.generate(_prompts(), params)
    assert len(got) == len(SESSIONS)  # one answer per prompt, in order
    for p, g in zip(_prompts(), got, strict=True):
        ref = reference.generate([p], params)[0]
        assert parse_fast(g.text, p.prefill) == parse_fast(ref.text, p.prefill)
        assert g.text == ref.text and g.finish_reason == ref.finish_reason
        assert g.completion_tokens == ref.completion_tokens and g.prompt_tokens == ref.prompt_tokens


def test_stop_strings_end_the_text(backend):
    params = GenerationParams(max_new_tokens=40, stop=("\n",))
    for g in backend.generate(_prompts(), params):
        if g.finish_reason == "stop" and "\n" in g.text:
            assert g.text.endswith("\n") and g.text.count("\n") == 1  # ends with the stop string, nothing after
        assert "\n" not in g.text[:-1]


def test_the_budget_is_honoured(backend):
    g = backend.generate(_prompts()[:1], GenerationParams(max_new_tokens=3))[0]
    assert g.completion_tokens <= 3
    assert g.finish_reason in ("stop", "length")
    long = backend.generate(_prompts()[:1], GenerationParams(max_new_tokens=2, stop=("\x00never",)))[0]
    assert long.finish_reason == "length" and long.completion_tokens == 2


def test_logprobs_have_one_entry_per_token_or_none(backend):
    g = backend.generate(_prompts()[:2], GenerationParams(max_new_tokens=12, stop=("</answer>",)))
    for x in g:
        if x.tokens:  # a backend that gives them: pieces spell the text, each a log-probability
            assert "".join(t.text for t in x.tokens) == x.text
            assert all(t.logprob <= 1e-6 for t in x.tokens)
            assert len(x.tokens) <= x.completion_tokens
    if isinstance(backend, TransformersBackend):
        assert all(x.tokens for x in g)
    if getattr(backend, "logprobs", True) is False:  # the text-only fallback
        assert all(x.tokens == () for x in g)
        no = backend.generate(_prompts()[:1], GenerationParams(max_new_tokens=4, logprobs=False))[0]
        assert no.tokens == ()


def test_scores_agree_where_the_backend_can_score(backend, reference):
    if not can_score(backend):
        with pytest.raises(BackendError, match="log-probabilities|score"):
            backend.score(_prompts())
        return
    got, ref = backend.score(_prompts()), reference.score(_prompts())
    assert got == pytest.approx(ref, abs=2e-3)


def test_structured_answers_have_the_same_fields(backend, reference):
    """R-Log's answer written step by step: the texts under a given verdict and category are the reference's
    (greedy, no repetition controls: those are the servers' own and differ by server)."""
    if not callable(getattr(backend, "transcript", None)):
        pytest.skip(f"{type(backend).__name__} writes no structured answers")
    cfg = ExplainConfig(field_tokens=12, repetition_penalty=1.0, no_repeat_ngram=0)
    prompt = _prompts("full")[0]
    with backend.transcript(prompt, 64) as t:
        got = structured_answer(t, cfg, continue_as="abnormal", category=("storage", 0.9))
    with reference.transcript(prompt, 64) as t:
        ref = structured_answer(t, cfg, continue_as="abnormal", category=("storage", 0.9))
    assert got.verdict in VERDICTS and got.category == "storage"
    assert (got.interpretation, got.root_cause, got.action) == (ref.interpretation, ref.root_cause, ref.action)
    if getattr(backend, "logprobs", True):
        assert got.verdict == ref.verdict and got.p_abnormal == pytest.approx(ref.p_abnormal, abs=2e-3)


def test_a_prompt_too_long_is_a_backend_error(backend):
    huge = prompt_for(view_of_templates([f"template number {i} " * 40 for i in range(200)]), "fast",
                      CascadeConfig(view={"max_tokens": 100_000, "max_templates": 1000, "max_template_chars": 100_000}))
    with pytest.raises(BackendError):
        backend.generate([huge], GenerationParams(max_new_tokens=4))
