"""R-Log-fast as a one-pass scorer, its calibration, and the verdict memory (real tiny model)."""

import json

import pytest
import torch

from rlog.backends.transformers_backend import TransformersBackend
from rlog.cascade.cascade import Cascade, decision_from_state, decision_to_state
from rlog.config import CascadeConfig, MemoryConfig, ModelSpec
from rlog.contract.representation import prompt_for, view_of_templates
from rlog.models import Calibration, ModelNotFound, load_calibration, save_calibration
from rlog.pipeline.sessions import Session, SessionLine
from train.calibrate import fit_calibration


def _prompts(n=3):
    cfg = CascadeConfig()
    texts = [["kernel panic on node <*>"], ["disk ok", "served block <*> " * 6, "heartbeat"], ["x"] * 1]
    return [prompt_for(view_of_templates(t), "fast", cfg) for t in texts[:n]]


def test_score_equals_softmax_of_the_generation_first_token(fp32_backend):
    b = fp32_backend
    prompts = _prompts()
    scored = b.score(prompts)
    ids = b.label_tokens("<answer>")
    for p, got in zip(prompts, scored, strict=True):
        enc = b.tokenizer([b.render(p)], return_tensors="pt", add_special_tokens=False)
        with torch.inference_mode():
            out = b.model.generate(**enc, max_new_tokens=1, do_sample=False, output_logits=True,
                                   return_dict_in_generate=True, pad_token_id=b.tokenizer.pad_token_id)
        probs = torch.softmax(out.logits[0][0].float(), dim=-1)[ids]
        assert got == pytest.approx(float(probs[1] / probs.sum()), abs=1e-4)
    assert b.prefix_hits >= len(prompts)  # the instructions' key/value cache was reused
    # a batch with padding scores each prompt as it scores alone
    assert [b.score([p])[0] for p in prompts] == pytest.approx(scored, abs=1e-4)


def test_labels_with_one_first_token_cannot_be_scored(fp32_backend):
    from rlog.backends.base import BackendError

    with pytest.raises(BackendError, match="share a first token"):
        fp32_backend.label_tokens("<answer>", ("abnormal", "abnormally"))


def test_calibration_fit_is_pure_and_sensible():
    probs = [0.05, 0.1, 0.2, 0.35, 0.6, 0.7, 0.9, 0.95]
    labels = [False, False, False, True, False, True, True, True]
    cal = fit_calibration(probs, labels)
    assert 0.2 < cal.threshold <= 0.65
    assert cal.fit["at_threshold"]["f1"] == max(
        fit_calibration(probs, labels).fit["at_threshold"]["f1"], 0.8)
    assert cal == fit_calibration(probs, labels)
    with pytest.raises(ValueError, match="anomalies"):
        fit_calibration([0.1, 0.2], [False, False])


def test_calibration_weighs_every_source_the_same():
    # a big source whose anomalies score high, a small one whose anomalies score only 0.4
    big = [(0.9, True)] * 20 + [(0.45, False)] * 80
    small = [(0.4, True)] * 4 + [(0.1, False)] * 4
    probs = [p for p, _ in big + small]
    labels = [y for _, y in big + small]
    groups = ["big"] * len(big) + ["small"] * len(small)
    pooled = fit_calibration(probs, labels)
    weighted = fit_calibration(probs, labels, groups=groups)
    assert pooled.threshold > 0.45  # what suits the big source: the small one's anomalies all missed
    assert weighted.threshold < 0.4  # every source counts: both sources' anomalies caught
    assert weighted.fit["weighting"] and "weighting" not in pooled.fit
    from train.pick import average_precision, source_average_precision

    assert source_average_precision(probs, labels, groups) == pytest.approx(
        (average_precision(probs[:100], labels[:100]) + 1.0) / 2)


def test_calibration_round_trips_through_export_and_load(tmp_path, tiny_model_dir):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from train.export import export_model

    adapter = tmp_path / "adapter"
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                           LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"]))
    model.save_pretrained(adapter)
    cal = Calibration(0.37, 0.1, {"n": 40, "split": "val"})
    save_calibration(adapter, cal)
    out = export_model(adapter, tmp_path / "shipped", base_model=str(tiny_model_dir))
    assert load_calibration(out) == cal
    merged = export_model(adapter, tmp_path / "merged", base_model=str(tiny_model_dir), merged=True)
    assert load_calibration(merged) == cal
    backend = TransformersBackend(tiny_model_dir, adapter=out, dtype="float32")
    assert backend.calibration == cal
    cas = Cascade(backend, None, CascadeConfig(escalate=False))
    assert (cas.threshold, cas.band, cas.scoring) == (0.37, 0.1, "logits")
    assert Cascade(backend, None, CascadeConfig(threshold=0.8, band=0.0)).threshold == 0.8  # config wins
    (out / "rlog_calibration.json").write_text(json.dumps({"threshold": 2}))
    with pytest.raises(ModelNotFound, match="threshold"):
        load_calibration(out)


def test_one_calibration_per_precision(tmp_path, tiny_model_dir, caplog):
    """bfloat16 scores run a few points above float32: each precision reads its own threshold."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from rlog.models import load_calibrations

    adapter = tmp_path / "adapter"
    get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                   LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj"])).save_pretrained(adapter)
    bf16 = Calibration(0.28, 0.15, {"n": 9}, precision="bfloat16")
    save_calibration(adapter, bf16)
    assert json.loads((adapter / "rlog_calibration.json").read_text())["precision"] == "bfloat16"
    fp32 = Calibration(0.25, 0.12, {"n": 9}, precision="float32")
    save_calibration(adapter, fp32)  # kept beside the other, not over it
    assert sorted(c.precision for c in load_calibrations(adapter)) == ["bfloat16", "float32"]
    assert load_calibration(adapter, "float32") == fp32 and load_calibration(adapter, "bfloat16") == bf16
    save_calibration(adapter, Calibration(0.3, 0.1, {"n": 10}, precision="float32"))  # refit replaces its own
    assert load_calibration(adapter, "float32").threshold == 0.3 and load_calibration(adapter, "bfloat16") == bf16
    assert TransformersBackend(tiny_model_dir, adapter=adapter, dtype="float32").calibration.threshold == 0.3

    # only a bfloat16 fit: a float32 worker uses it and says so, naming the command that fits its own
    (adapter / "rlog_calibration.json").unlink()
    save_calibration(adapter, bf16)
    with caplog.at_level("WARNING", logger="rlog.backends.transformers_backend"):
        b = TransformersBackend(tiny_model_dir, adapter=adapter, dtype="float32")
    assert b.calibration == bf16 and b.precision == "float32"
    assert "--dtype float32" in caplog.text and "fitted on bfloat16" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="rlog.backends.transformers_backend"):
        TransformersBackend(tiny_model_dir, adapter=adapter, dtype="bfloat16")
    assert "fitted on" not in caplog.text
    # an older file without a precision still loads, for any precision
    (adapter / "rlog_calibration.json").write_text(json.dumps({"threshold": 0.4, "band": 0.1}))
    assert load_calibration(adapter, "float32") == Calibration(0.4, 0.1)


def _session(sid, templates, source="src"):
    return Session(sid, source, "window", [SessionLine(i, None, t, "T" + t, t) for i, t in enumerate(templates)])


class _Counting:
    """A real backend that counts the prompts it scores."""

    def __init__(self, inner, calibration=None):
        self.inner, self.model_id, self.calibration = inner, inner.model_id, calibration
        self.scored = 0

    def score(self, prompts):
        self.scored += len(prompts)
        return self.inner.score(prompts)

    def generate(self, prompts, params):
        return self.inner.generate(prompts, params)

    def count_tokens(self, text):
        return self.inner.count_tokens(text)


def test_scored_cascade_uses_probability_threshold_and_band(fp32_backend):
    p = fp32_backend.score(_prompts(1))[0]
    above = Cascade(_Counting(fp32_backend), None, CascadeConfig(escalate=False, threshold=max(p - 1e-3, 1e-3)))
    (_, d, _), = above.judge([_session("a", ["kernel panic on node <*>"])])
    assert d.verdict == "abnormal" and d.fast.p_abnormal == pytest.approx(p, abs=1e-4)
    assert above.alerts([(_session("a", ["kernel panic on node <*>"]), d, False)])[0].confidence == d.fast.p_abnormal
    below = Cascade(_Counting(fp32_backend), None, CascadeConfig(escalate=False, threshold=min(p + 0.05, 0.99),
                                                                band=0.1, verdict="either"))
    (_, d2, _), = below.judge([_session("a", ["kernel panic on node <*>"])])
    assert d2.verdict == "normal" and below.needs_escalation(d2.fast)  # unsure: inside the band
    assert not below._confidently_normal(d2)
    # by default R-Log decides nothing: an unsure session is not escalated, nor remembered as normal
    default = Cascade(_Counting(fp32_backend), None, CascadeConfig(escalate=False, threshold=min(p + 0.05, 0.99),
                                                                  band=0.1))
    (_, d3, _), = default.judge([_session("a", ["kernel panic on node <*>"])])
    assert d3.verdict == "normal" and not default.needs_escalation(d3.fast) and not default._confidently_normal(d3)


def test_known_normal_sessions_are_answered_without_a_model_call(fp32_backend):
    fast = _Counting(fp32_backend)
    cas = Cascade(fast, None, CascadeConfig(escalate=False, threshold=0.999, band=0.0))
    cas.judge([_session("w1", ["boot ok", "heartbeat", "heartbeat"]), _session("w2", ["served <*>", "heartbeat"])])
    assert fast.scored == 2 and len(cas.known) == 3
    (_, d, from_memory), = cas.judge([_session("w3", ["served <*>", "boot ok", "heartbeat", "heartbeat"])])
    assert fast.scored == 2 and from_memory and d.known_normal and d.verdict == "normal"
    assert cas.stats.known_normal_hits == 1
    cas.judge([_session("w4", ["heartbeat"] * 9)])  # a count never judged before: the model is asked
    cas.judge([_session("w5", ["boot ok", "disk failed"])])  # a template never judged: asked too
    assert fast.scored == 4
    off = Cascade(_Counting(fp32_backend), None, CascadeConfig(escalate=False, threshold=0.999,
                                                               memory=MemoryConfig(templates=0)))
    off.judge([_session("a", ["x"]), _session("b", ["x", "x"])])
    assert off.stats.known_normal_hits == 0


def test_bench_warm_up_teaches_the_memory_and_is_not_counted(fp32_backend):
    from benchmarks.llm import warm_up

    fast = _Counting(fp32_backend)
    cas = Cascade(fast, None, CascadeConfig(escalate=False, threshold=0.999, band=0.0))
    warm = warm_up(cas, [_session("w1", ["boot ok", "heartbeat"]), _session("w2", ["served <*>", "heartbeat"])],
                   desc="warm", progress=False)
    assert warm["sessions"] == 2 and warm["fast_calls"] == 2 and warm["known_normal_templates"] == 3
    assert cas.stats.sessions == 0 and cas.stats.fast_calls == 0  # the scored run starts its counters afresh
    (_, d, from_memory), = cas.judge([_session("w3", ["served <*>", "boot ok"])])
    assert from_memory and d.known_normal and fast.scored == 2 and cas.stats.known_normal_hits == 1


def test_memory_state_round_trips(fp32_backend):
    cfg = CascadeConfig(escalate=False, threshold=0.999, memory=MemoryConfig(persist=5000))  # off by default
    cas = Cascade(_Counting(fp32_backend), None, cfg)
    cas.judge([_session("a", ["x", "y"]), _session("b", ["z"])])
    state = json.loads(json.dumps(cas.memory_state()))  # plain data, as the checkpoint stores it
    fresh_backend = _Counting(fp32_backend)
    fresh = Cascade(fresh_backend, None, cfg)
    assert fresh.load_memory(state) == 2 and len(fresh.known) == 3
    (_, d, hit), = fresh.judge([_session("c", ["y", "x"])])
    assert hit and fresh_backend.scored == 0
    for _key, row in state["fast"]:
        assert decision_to_state(decision_from_state(row)) == row


def test_scoring_setting_is_checked(tiny_backend):
    class GenerateOnly:
        model_id = "gen-only"

        def generate(self, prompts, params):
            return tiny_backend.generate(prompts, params)

    from rlog.backends.base import BackendError

    with pytest.raises(BackendError, match="cannot return logits"):
        Cascade(GenerateOnly(), None, CascadeConfig(scoring="logits", fast=ModelSpec()))
    assert Cascade(GenerateOnly(), None, CascadeConfig()).scoring == "generate"


def test_fusion_learns_the_evidence_the_model_misses_and_reports_left_out_sources():
    import random

    from rlog.contract.evidence import FEATURES
    from train.calibrate import fit_scorer, fused, leave_one_source_out

    rng = random.Random(3)
    probs, evidence, labels, groups = [], [], [], []
    for src in ("a", "b", "c"):
        for i in range(60):
            y = i % 3 == 0
            ev = dict.fromkeys(FEATURES, 0.0)
            ev["any_failure"] = float(y if rng.random() < 0.9 else not y)  # the evidence knows
            probs.append(rng.uniform(0.2, 0.6))  # the model is noise
            evidence.append(ev)
            labels.append(y)
            groups.append(src)
    plain = fit_scorer(probs, None, labels, groups=groups)
    cal = fit_scorer(probs, evidence, labels, groups=groups)
    assert plain.fusion is None and cal.fusion is not None
    assert cal.fusion.weights["any_failure"] > 1.0 > abs(cal.fusion.model_weight)
    assert cal.fit["at_threshold"]["f1"] > plain.fit["at_threshold"]["f1"] + 0.2
    scores = fused(cal.fusion, probs, evidence)
    assert all((s >= cal.threshold) == (ev["any_failure"] == 1.0) for s, ev in zip(scores, evidence, strict=True))
    loso = leave_one_source_out(probs, evidence, labels, groups)
    assert set(loso) == {"a", "b", "c"}
    assert all(r["fused"]["f1"] > r["model"]["f1"] for r in loso.values())


def test_fused_calibration_round_trips_and_the_cascade_thresholds_the_fused_score(tmp_path, fp32_backend):
    from rlog.contract.evidence import evidence_of, logit
    from rlog.contract.representation import view_of
    from rlog.models import Fusion

    fusion = Fusion(0.5, {"any_failure": 3.0, "error_level": 1.0}, -1.0)
    cal = Calibration(0.4, 0.05, {"n": 10}, fusion)
    save_calibration(tmp_path, cal)
    assert load_calibration(tmp_path) == cal
    failing, quiet = _session("f", ["job <*> failed with exit code <*>"]), _session("q", ["heartbeat ok"])
    cas = Cascade(_Counting(fp32_backend, cal), None, CascadeConfig(escalate=False))
    judged = {s.session_id: d for s, d, _ in cas.judge([failing, quiet])}
    for s in (failing, quiet):
        f = judged[s.session_id].fast
        assert f.p_abnormal == pytest.approx(fusion.apply(logit(f.p_model), evidence_of(view_of(s))))
    assert judged["f"].verdict == "abnormal" and judged["q"].verdict == "normal"
    off = Cascade(_Counting(fp32_backend, cal), None, CascadeConfig(escalate=False, fusion=False))
    (_, d, _), = off.judge([quiet])
    assert d.fast.p_abnormal == d.fast.p_model  # the model's own score when fusion is off
    bad = Calibration(0.4, 0.05, {}, Fusion(1.0, {"no_such_feature": 1.0}, 0.0))
    with pytest.raises(Exception, match="unknown evidence feature"):
        Cascade(_Counting(fp32_backend, bad), None, CascadeConfig(escalate=False))


def test_evidence_features_are_shares_and_flags():
    from rlog.contract.evidence import FEATURES, evidence_of
    from rlog.contract.representation import SessionView, TemplateEntry

    view = SessionView("s", 10, (TemplateEntry("a", "heartbeat ok", 8),
                                 TemplateEntry("b", "disk <*> failed", 2, novelty="new", level="ERROR")))
    ev = evidence_of(view)
    assert tuple(ev) == FEATURES and all(0.0 <= v <= 1.0 for v in ev.values())
    assert ev["new_lines"] == 0.2 and ev["any_new"] == 1.0 and ev["error_level"] == 1.0
    assert ev["failure_templates"] == 0.5 and ev["variety"] == pytest.approx(1 / 9)
    assert evidence_of(SessionView("s", 1, (TemplateEntry("a", "ok", 1),)))["any_failure"] == 0.0
