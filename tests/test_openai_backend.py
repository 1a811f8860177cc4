"""The OpenAI-compatible HTTP backend: start-up checks, failures, the cascade over a real server.

The server is ``transformers serve`` on the built-in SmolLM2 folder (``benchmarks.model_server``).
The log-probability path is what vLLM answers; its response shape (from vLLM's completions
API) is read by the same functions the live path uses.
"""

from __future__ import annotations

import importlib.util

import pytest

from rlog.backends import load_stage_backends
from rlog.backends.base import BackendError, GenerationParams, label_probability
from rlog.backends.openai_backend import OpenAIBackend, echoed_logprob, generation_of, served_name
from rlog.cascade.cascade import Cascade
from rlog.config import CascadeConfig, ConfigError, ModelSpec, RlogConfig
from rlog.contract.answers import FastAnswer
from rlog.contract.representation import prompt_for, view_of_templates
from rlog.models import SMOLLM2, resolve_model
from rlog.pipeline.sessions import Session, SessionLine

SERVED = "rlog/smollm2-135m-instruct"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if importlib.util.find_spec("fastapi") is None:
        pytest.skip("needs transformers[serving] for a real OpenAI-compatible server")
    from benchmarks.model_server import ModelServer

    s = ModelServer({SERVED: resolve_model(SMOLLM2)}, tmp_path_factory.mktemp("srv"), dtype="float32").start()
    yield s
    s.stop()


def test_served_names_follow_vllm_lora_modules():
    assert served_name(ModelSpec(adapter="rlog-fast")) == "rlog-fast"
    assert served_name(ModelSpec(adapter="/models/my-fast")) == "my-fast"
    assert served_name(ModelSpec(adapter="rlog", served_model="team/rlog-v2")) == "team/rlog-v2"
    assert served_name(ModelSpec(adapter=None)) == SMOLLM2


def test_a_stage_on_a_server_needs_only_the_tokenizer_here(tmp_path):
    import shutil

    from rlog.models import ModelNotFound, resolve_tokenizer

    src = resolve_model(SMOLLM2)
    for f in src.iterdir():
        if f.name.startswith(("tokenizer", "special_tokens", "chat_template")) or f.name == "config.json":
            shutil.copy(f, tmp_path / f.name)
    assert resolve_tokenizer(str(tmp_path)) == tmp_path  # no weights here: the server has them
    b = OpenAIBackend("http://127.0.0.1:9/v1", "rlog-fast", tmp_path, check=False)
    p = prompt_for(view_of_templates(["x"]), "fast", CascadeConfig())
    assert b.render(p).endswith(p.prefill) and b.context == 8192
    b.close()
    with pytest.raises(ModelNotFound, match="holds no tokenizer"):
        resolve_tokenizer(str(tmp_path / "nothing"))


def test_openai_backend_needs_a_url():
    with pytest.raises(BackendError, match="base_url"):
        OpenAIBackend.from_spec(ModelSpec(backend="openai"))
    with pytest.raises((ConfigError, ValueError)):
        RlogConfig.model_validate({"cascade": {"fast": {"backend": "openai", "concurrency": 0}}})


@pytest.mark.slow
def test_a_missing_model_name_is_a_clear_start_up_error(server):
    with pytest.raises(BackendError, match=r"does not serve 'rlog-fast'.*serves: rlog/smollm2-135m-instruct.*--lora-modules"):
        OpenAIBackend(server.base_url, "rlog-fast", resolve_model(SMOLLM2))


def test_an_unreachable_server_is_a_backend_error_after_retries():
    from stream.broker import free_port

    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(BackendError, match="unreachable"):
        OpenAIBackend(url, SERVED, resolve_model(SMOLLM2), retries=1, backoff_s=0.01, timeout_s=2)
    b = OpenAIBackend(url, SERVED, resolve_model(SMOLLM2), retries=0, timeout_s=2, check=False)
    p = prompt_for(view_of_templates(["x"]), "fast", CascadeConfig())
    with pytest.raises(BackendError, match="unreachable"):
        b.generate([p], GenerationParams(max_new_tokens=2))
    assert b.requests == 1
    b.close()


def test_a_server_outage_is_an_outage_to_the_cascade():
    """Retries inside the backend, then the cascade's, then BackendError: the stream holds the batch
    (``stream.poison``), and the plain-request probe says the backend does not answer."""
    from stream.broker import free_port

    url = f"http://127.0.0.1:{free_port()}/v1"
    b = OpenAIBackend(url, SERVED, resolve_model(SMOLLM2), retries=1, backoff_s=0.0, timeout_s=2, check=False)
    cfg = CascadeConfig.model_validate({"retries": 1, "retry_backoff_s": 0.0, "escalate": False,
                                        "memory": {"templates": 0}})
    cas = Cascade(b, None, cfg, sleep=lambda s: None)
    s = Session("s1", "node-1", "window", [SessionLine(0, 0.0, "disk failed", "T0", "disk failed")])
    with pytest.raises(BackendError, match="unreachable"):
        cas.judge([s])
    assert b.requests == 4  # (1 + 1 backend retry) x (1 + 1 cascade retry)
    assert cas.stats.retries == 1 and not cas.answers("fast")
    b.close()


@pytest.mark.slow
def test_a_server_that_ignores_logprobs_is_used_text_only(server):
    b = OpenAIBackend(server.base_url, SERVED, resolve_model(SMOLLM2))
    assert b.logprobs is False and not b.scores
    b.close()


@pytest.mark.slow
def test_the_cascade_runs_on_a_model_server(server):
    """Both stages on the server: R-Log-fast decodes (no log-probabilities), R-Log writes in steps."""
    spec = {"backend": "openai", "base_url": server.base_url, "served_model": SERVED, "adapter": None,
            "model": SMOLLM2, "max_new_tokens": 24}
    cfg = CascadeConfig.model_validate({"fast": spec, "full": {**spec, "max_new_tokens": 64}, "verdict": "either",
                                        "explain": {"field_tokens": 8}, "memory": {"templates": 0}})
    fast, full = load_stage_backends(cfg)
    assert fast is full  # one server, one model name: one backend
    cas = Cascade(fast, full, cfg)
    assert cas.scoring == "generate" and cas.structured
    lines = ["kernel panic: fatal machine check", "rts panic! - stopping execution"]
    s = Session("s1", "node-1", "window", [SessionLine(i, float(i), t, f"T{i}", t) for i, t in enumerate(lines)])
    [(_, d, cached)] = cas.judge([s], escalate=False)
    assert not cached and (d.fast.ok or d.fast.error)  # a parsed answer, or a stated reason
    assert d.verdict in ("normal", "abnormal", "unknown")
    flagged = FastAnswer("abnormal", 0.9)  # as the detect role hands an escalation over
    [(_, e, _)] = cas.explain([(s, flagged, 0.0)])
    assert e.verdict == "abnormal" and e.full is not None and e.full.ok
    assert e.full.root_cause or e.full.interpretation  # R-Log wrote over HTTP, step by step
    assert fast.requests >= 2


# ---------------------------------------------------------------------- vLLM's answers, read


def test_a_vllm_completion_with_logprobs_is_read_into_a_generation():
    out = {"choices": [{"index": 0, "text": "abnormal</answer>", "finish_reason": "stop", "stop_reason": "</answer>",
                        "logprobs": {"tokens": ["ab", "normal", "</", "answer", ">"],
                                     "token_logprobs": [-0.1, -0.01, -0.2, -0.01, -0.01],
                                     "top_logprobs": None, "text_offset": [0, 2, 8, 10, 16]}}],
           "usage": {"prompt_tokens": 210, "completion_tokens": 5}}
    g = generation_of(out, ("</answer>",))
    assert g.text == "abnormal</answer>" and g.finish_reason == "stop"
    assert "".join(t.text for t in g.tokens) == g.text and g.prompt_tokens == 210 and g.completion_tokens == 5
    # vLLM leaves the stop string out of the text by default: put back, so every backend reads the same
    out["choices"][0].update(text="abnormal", logprobs=None)
    assert generation_of(out, ("</answer>",)).text == "abnormal</answer>"
    # a server that ran past a stop string is cut at it
    out["choices"][0].update(text="normal</answer> and more", stop_reason=None)
    assert generation_of(out, ("</answer>",)).text == "normal</answer>"
    with pytest.raises(BackendError, match="without a completion"):
        generation_of({"error": "boom"}, ())


def test_the_verdicts_first_tokens_are_renormalised():
    import math

    top = {"normal": math.log(0.2), "ab": math.log(0.6), " other": math.log(0.1)}
    assert label_probability(top, ["normal", "ab"]) == pytest.approx(0.75)
    del top["normal"]  # a verdict outside the top: the lowest shown stands in (an upper bound)
    assert label_probability(top, ["normal", "ab"]) == pytest.approx(0.6 / 0.7)


def test_label_pieces_are_the_tokens_after_the_prefill():
    b = OpenAIBackend("http://127.0.0.1:9/v1", "rlog-fast", resolve_model(SMOLLM2), check=False)
    p = prompt_for(view_of_templates(["x"]), "fast", CascadeConfig())
    pieces = b.label_pieces(p.prefill)
    assert len(set(pieces)) == 2 and "normal".startswith(pieces[0].strip()) and "abnormal".startswith(pieces[1].strip())
    b.close()


def test_a_choice_is_scored_from_the_echoed_prompt():
    """vLLM's echo: prompt tokens with their offsets and log-probabilities (the first has none)."""
    base = "verdict:"
    lp = {"tokens": ["verdict", ":", " abnormal", "\n", "x"], "text_offset": [0, 7, 8, 17, 18],
          "token_logprobs": [None, -1.0, -0.5, -0.1, -5.0]}
    assert echoed_logprob(lp, len(base), len(base) + len(" abnormal\n")) == pytest.approx(-0.6)
    assert echoed_logprob(lp, 0, 8) == pytest.approx(-1.0)
