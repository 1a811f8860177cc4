"""The transformers backend on a real (tiny, random) Llama with SmolLM2's chat tokenizer."""

import math

import pytest

from rlog.backends import load_backend
from rlog.backends.base import BackendError, GenerationParams
from rlog.config import CascadeConfig, ModelSpec
from rlog.contract.answers import parse_fast
from rlog.contract.representation import prompt_for, view_of_templates
from rlog.models import ModelNotFound


def session_prompt(templates, mode):
    """The served prompt of bare templates."""
    return prompt_for(view_of_templates(templates), mode, CascadeConfig())


def test_batched_generation_with_logprobs(tiny_backend):
    prompts = [session_prompt(["kernel panic"], "fast"), session_prompt(["a much longer session " * 20], "fast")]
    gens = tiny_backend.generate(prompts, GenerationParams(max_new_tokens=12))
    assert len(gens) == 2
    for g in gens:
        assert 0 < g.completion_tokens <= 12 and g.prompt_tokens > 50
        assert "".join(t.text for t in g.tokens) == g.text
        assert all(t.logprob <= 0 for t in g.tokens)
    assert gens[1].prompt_tokens > gens[0].prompt_tokens  # left padding did not leak into counts


def test_greedy_is_deterministic_and_batch_invariant(tiny_backend):
    p = session_prompt(["disk failure on sda"], "fast")
    other = session_prompt(["x " * 300], "fast")
    params = GenerationParams(max_new_tokens=8)
    alone = tiny_backend.generate([p], params)[0]
    batched = tiny_backend.generate([other, p], params)[1]
    assert alone.text == batched.text
    assert [t.text for t in alone.tokens] == [t.text for t in batched.tokens]
    for a, b in zip(alone.tokens, batched.tokens, strict=True):
        assert math.isclose(a.logprob, b.logprob, abs_tol=1e-3)


def test_stop_string_cuts_the_completion(tiny_backend):
    p = session_prompt(["x"], "fast")
    free = tiny_backend.generate([p], GenerationParams(max_new_tokens=20))[0]
    assert len(free.text) > 3
    stop = free.tokens[3].text.strip()  # a word the greedy model is known to produce
    assert stop and stop in free.text
    cut = tiny_backend.generate([p], GenerationParams(max_new_tokens=20, stop=(stop,)))[0]
    assert cut.text == free.text[: free.text.find(stop) + len(stop)]
    assert cut.finish_reason == "stop"
    assert "".join(t.text for t in cut.tokens) == cut.text


def test_random_model_output_is_a_counted_error_not_a_crash(tiny_backend):
    g = tiny_backend.generate([session_prompt(["x"], "fast")], GenerationParams(max_new_tokens=6))[0]
    a = parse_fast(g.text, tokens=g.tokens)
    assert not a.ok and a.error


def test_missing_model_and_adapter_are_clear(tmp_path, tiny_model_dir):
    with pytest.raises(ModelNotFound, match="never downloaded"):
        load_backend(ModelSpec(model=str(tmp_path / "nope")))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotFound, match="no config.json"):
        load_backend(ModelSpec(model=str(tmp_path / "empty")))
    with pytest.raises(ModelNotFound, match="adapter_config.json"):
        load_backend(ModelSpec(model=str(tiny_model_dir), adapter=str(tmp_path / "empty")))
    with pytest.raises(BackendError, match="gpu extra"):
        load_backend(ModelSpec(model=str(tiny_model_dir), backend="vllm"))


def test_lora_adapter_loads_through_the_same_backend(tmp_path, tiny_model_dir):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    peft_model = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    peft_model.save_pretrained(tmp_path / "adapter")
    backend = load_backend(ModelSpec(model=str(tiny_model_dir), adapter=str(tmp_path / "adapter")))
    assert backend.model_id.endswith("+adapter")
    plain = load_backend(ModelSpec(model=str(tiny_model_dir)))
    p = [session_prompt(["x"], "fast")]
    params = GenerationParams(max_new_tokens=5)
    a, b = backend.generate(p, params)[0], plain.generate(p, params)[0]
    assert [t.logprob for t in a.tokens] != [t.logprob for t in b.tokens]  # the adapter changes the model
