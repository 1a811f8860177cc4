"""One loaded base for every stage: merged adapter weights swapped per call, exact against peft's merge."""

from __future__ import annotations

import pytest

from rlog.backends import load_stage_backends
from rlog.backends.base import BackendError, GenerationParams
from rlog.backends.shared_model import lean_load, merged_weights
from rlog.backends.transformers_backend import TransformersBackend
from rlog.config import CascadeConfig, ModelSpec
from rlog.contract.representation import prompt_for, view_of_templates


def _prompts(mode="fast"):
    cfg = CascadeConfig()
    return [prompt_for(view_of_templates(t), mode, cfg) for t in (["disk <*> failed", "retry <*>"], ["user <*> login ok"],
                                                                  ["kernel panic at <*>"])]


def _adapter(base_dir, out, seed, targets, **extra):
    """A real LoRA adapter with non-zero B (peft's default init leaves the model unchanged)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=targets, init_lora_weights=False,
                                     **extra)).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def adapters(tiny_model_dir, tmp_path_factory):
    d = tmp_path_factory.mktemp("adapters")
    return (_adapter(tiny_model_dir, d / "fast", 1, ["q_proj", "v_proj"]),
            _adapter(tiny_model_dir, d / "full", 2, ["q_proj", "o_proj", "down_proj"]))


def _peft_merged(base_dir, adapter, dtype):
    """The reference: peft's own merge_and_unload on a float32 load, then cast (how stages loaded before)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    return PeftModel.from_pretrained(model, adapter).merge_and_unload().to(dtype=getattr(torch, dtype)).eval()


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_merged_weights_equal_peft_merge_and_unload(tiny_model_dir, adapters, dtype):
    import torch

    for adapter in adapters:
        ref = dict(_peft_merged(tiny_model_dir, adapter, dtype).named_parameters())
        merged = dict(merged_weights(tiny_model_dir, adapter, getattr(torch, dtype)))
        assert merged, "the adapter touched no module"
        for module, w in merged.items():
            assert torch.equal(w, ref[f"{module}.weight"]), module


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_lean_load_equals_from_pretrained(tiny_model_dir, dtype):
    import torch
    from transformers import AutoModelForCausalLM

    lean = lean_load(tiny_model_dir, getattr(torch, dtype))
    ref = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=getattr(torch, dtype))
    a, b = lean.state_dict(), ref.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert lean.lm_head.weight.data_ptr() == lean.model.embed_tokens.weight.data_ptr()  # still tied
    ids = torch.tensor([[1, 5, 9, 14, 2]])
    with torch.inference_mode():
        assert torch.equal(lean(ids).logits, ref(ids).logits)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_stages_share_one_model_and_answer_as_their_own_merged_model(tiny_model_dir, adapters, dtype):
    """Interleaved calls of two stages on one loaded base give exactly what each merged model gives alone
    (peft's merge on a float32 load, then every tensor cast: how stages were loaded, and calibrated, before)."""
    fast = TransformersBackend(tiny_model_dir, adapter=adapters[0], dtype=dtype, model_id="fast")
    full = TransformersBackend(tiny_model_dir, adapter=adapters[1], dtype=dtype, model_id="full")
    plain = TransformersBackend(tiny_model_dir, dtype=dtype, model_id="plain")
    assert fast.shared is full.shared is plain.shared
    prompts, params = _prompts(), GenerationParams(max_new_tokens=6)
    refs = {}
    for name, adapter in (("fast", adapters[0]), ("full", adapters[1])):
        private = TransformersBackend(tiny_model_dir, dtype=dtype, model_id=name, share=False)
        private.shared.model = _peft_merged(tiny_model_dir, adapter, dtype)
        refs[name] = (private.score(prompts), private.generate(prompts, params))
    for _ in range(2):  # switching back and forth changes nothing
        for name, b in (("fast", fast), ("full", full)):
            assert b.score(prompts) == refs[name][0]
            got = b.generate(prompts, params)
            assert [g.text for g in got] == [g.text for g in refs[name][1]]
            for g, r in zip(got, refs[name][1], strict=True):  # sums in another order: a last bit apart
                assert [t.logprob for t in g.tokens] == pytest.approx([t.logprob for t in r.tokens], abs=1e-2)
    assert fast.score(prompts) != full.score(prompts) != plain.score(prompts)
    # a transcript holds its stage's weights while it is written
    with full.transcript(_prompts("full")[0], 8) as t:
        t.generate(4)
    assert fast.score(prompts) == refs["fast"][0]
    assert full.shared.switches >= 4


def test_one_base_costs_one_model_plus_the_touched_weights(tiny_model_dir, adapters):
    fast = TransformersBackend(tiny_model_dir, adapter=adapters[0], dtype="float32")
    full = TransformersBackend(tiny_model_dir, adapter=adapters[1], dtype="float32")
    base_mb = sum(p.numel() * p.element_size() for p in fast.model.parameters()) / 2**20
    touched = sum(w.numel() * w.element_size() for ws in fast.shared._weights.values() for w in ws.values()) / 2**20
    assert fast.shared.memory_mb() == pytest.approx(base_mb + touched)
    assert touched < base_mb  # q/v/o/down of two layers, not a second model
    assert full.shared is fast.shared


def test_stage_backends_share_or_are_one(tiny_model_dir, adapters):
    both = CascadeConfig(fast=ModelSpec(model=str(tiny_model_dir), adapter=str(adapters[0]), dtype="float32"),
                         full=ModelSpec(model=str(tiny_model_dir), adapter=str(adapters[1]), dtype="float32"))
    f, e = load_stage_backends(both)
    assert f is not e and f.shared is e.shared
    same = both.model_copy(update={"full": both.fast.model_copy(update={"max_new_tokens": 200})})
    f, e = load_stage_backends(same)
    assert f is e  # decoding settings differ, the model does not
    f, e = load_stage_backends(both.model_copy(update={"escalate": False}))
    assert e is None
    assert load_stage_backends(both, fast=False)[0] is None


def test_an_adapter_that_is_not_plain_lora_gets_a_model_of_its_own(tiny_model_dir, tmp_path):
    """DoRA changes more than a weight sum: merged by peft into a private model, answers still exact."""
    dora = _adapter(tiny_model_dir, tmp_path / "dora", 3, ["q_proj"], use_dora=True)
    with pytest.raises(BackendError, match="use_dora"):
        list(merged_weights(tiny_model_dir, dora))
    b = TransformersBackend(tiny_model_dir, adapter=dora, dtype="float32")
    plain = TransformersBackend(tiny_model_dir, dtype="float32")
    assert b.shared is not plain.shared
    ref = TransformersBackend(tiny_model_dir, dtype="float32", share=False)
    ref.shared.model = _peft_merged(tiny_model_dir, dora, "float32")
    assert b.score(_prompts()) == ref.score(_prompts())


def test_an_adapter_for_another_base_is_a_clear_error(tiny_model_dir, tmp_path):
    import json

    from safetensors.torch import load_file, save_file

    bad = _adapter(tiny_model_dir, tmp_path / "bad", 4, ["q_proj"])

    f = next(bad.glob("*.safetensors"))
    t = {k.replace("layers.0.", "layers.7."): v for k, v in load_file(f).items()}
    save_file(t, f)
    assert json.loads((bad / "adapter_config.json").read_text())["peft_type"] == "LORA"
    with pytest.raises(BackendError, match="another base"):
        TransformersBackend(tiny_model_dir, adapter=bad, dtype="float32", share=False)
