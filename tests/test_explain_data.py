"""R-Log's training answers are the transcript serving writes: same text, field by field."""

from __future__ import annotations

import pytest

from rlog.cascade.explain import NO_ANALYSIS, structured_answer
from rlog.config import ExplainConfig
from rlog.contract.answers import parse_full
from rlog.contract.prompts import CATEGORIES, VERDICTS
from train.explain_data import (
    FIELD_WORDS,
    as_action,
    as_root_cause,
    cap_words,
    first_sentence,
    joined_incidents,
    placeholder_analysis,
    served_answer,
)


class ScriptedTranscript:
    """A transcript whose 'model' answers from a reference completion: each choice it is offered
    is scored by whether the reference continues with it, each generation copies the reference up
    to the stop. What it writes is therefore exactly what serving writes for a model that learned
    the reference, and the test compares that with the reference itself."""

    def __init__(self, prompt_text: str, reference: str) -> None:
        self.text = prompt_text
        self.full = prompt_text + reference

    def extend(self, text: str) -> None:
        self.text += text

    def reset(self, text: str) -> None:
        self.text = text

    def choose(self, choices, end: str = "") -> list[float]:
        hits = [float(self.full.startswith(self.text + c + end)) for c in choices]
        assert sum(hits) == 1, f"the reference continues with none or several of {choices}"
        return hits

    def generate(self, max_new_tokens: int, stop=(), repetition_penalty: float = 1.0, no_repeat_ngram: int = 0):
        assert self.full.startswith(self.text), "serving wrote text the reference does not have"
        rest = self.full[len(self.text):]
        cut = min((i for i in (rest.find(s) for s in stop) if i >= 0), default=len(rest))
        self.text += rest[:cut]
        return rest[:cut], "stop"


@pytest.mark.parametrize("category", CATEGORIES)
def test_a_served_answer_is_exactly_what_the_structured_steps_write(category):
    ref = served_answer("abnormal", category, "Volume /data/2 failed on dn-3.",
                        as_root_cause("The disk /dev/sdb on dn-3 has unreadable sectors."),
                        as_action("Replace the failing disk /dev/sdb on dn-3."))
    t = ScriptedTranscript("PROMPT<think>", ref)
    ans = structured_answer(t, ExplainConfig(think_tokens=0, field_tokens=24))
    assert t.text == "PROMPT<think>" + ref.removesuffix("\n</answer>")  # serving stops before the closing tag
    assert (ans.verdict, ans.category) == ("abnormal", category)
    assert ans.root_cause == "that the disk /dev/sdb on dn-3 has unreadable sectors."
    assert ans.action == "replace the failing disk /dev/sdb on dn-3."
    parsed = parse_full(ref)  # and the contract's parser reads the training text the same way
    assert parsed.ok and parsed.category == category and parsed.verdict == "abnormal"


def test_a_normal_reference_ends_after_its_verdict():
    ref = served_answer("normal")
    assert ref == f"{NO_ANALYSIS}</think><answer>\nverdict: normal\n</answer>"
    assert parse_full(ref).verdict == "normal" and "normal" in VERDICTS


def test_placeholder_analysis_replaces_the_think_and_shapes_a_bare_verdict():
    assert placeholder_analysis("long analysis.</think><answer>abnormal</answer>") == \
        f"{NO_ANALYSIS}</think><answer>\nverdict: abnormal\n</answer>"
    structured = "why</think><answer>\nverdict: abnormal\ncategory: storage\n</answer>"
    assert placeholder_analysis(structured) == f"{NO_ANALYSIS}</think><answer>\nverdict: abnormal\ncategory: storage\n</answer>"
    assert placeholder_analysis("no think at all") == "no think at all"


def test_causes_and_fixes_are_bent_to_follow_their_lead_ins():
    assert as_root_cause("The root cause of the error is a missing module.") == "a missing module."
    assert as_root_cause("The root cause of the higher number of failed requests is a bad proxy.") == "a bad proxy."
    assert as_root_cause("Volume /data/2 takes seconds per write.") == "that volume /data/2 takes seconds per write."
    assert as_root_cause("HDFS lost a block.").startswith("that HDFS")  # an acronym keeps its case
    assert as_action("To resolve the issue, the user should install the make utility.") == "install the make utility."
    assert as_action("It is recommended to restart the service.") == "restart the service."
    assert as_action("The solution to this problem is to enable mod_ssl.") == "enable mod_ssl."
    assert as_action("Unfortunately, there isn't a straightforward fix.") is None  # not an instruction: not used


def test_texts_are_capped_at_a_clause_and_end_as_sentences():
    long = "restore or fail over the database used by payments, keep the breaker open and queue requests until " \
           "it is healthy again after the outage ends"
    out = cap_words(long)
    assert len(out.split()) <= FIELD_WORDS and out.endswith(".")
    assert out == "restore or fail over the database used by payments."
    assert cap_words("short") == "short."
    assert first_sentence("**Fix**: do `this`. Then that.") == "Fix: do this."


def test_joined_incidents_take_inputs_answered_in_all_three_tasks():
    rows = {
        "interpretation": [{"input": "```\nAH00016: Configuration Failed\n```", "label": "Apache failed to start. More."},
                           {"input": "only here", "label": "x"}],
        "root_cause": [{"input": "AH00016:   Configuration Failed", "label": "The root cause is a bad vhost."}],
        "solution": [{"input": "AH00016: Configuration Failed", "label": "To fix it, you should correct the vhost."}],
    }
    out = list(joined_incidents(rows))
    assert len(out) == 1
    inc = out[0]
    assert inc["lines"] == ["AH00016: Configuration Failed"]
    assert inc["category"] == "configuration"  # the words of the failing line
    assert (inc["interpretation"], inc["root_cause"], inc["action"]) == \
        ("Apache failed to start.", "a bad vhost.", "correct the vhost.")


def test_recipe_examples_of_the_full_variant_are_served_shape(tmp_path):
    """The simulator's incidents, built by the tiny recipe's full variant, all read as the
    served transcript (no shared data needed: the simulator alone)."""
    from train.data import build_examples
    from train.recipe import load_recipe

    recipe = load_recipe("tiny", {"data": {"sources": ["sim"], "sim_lines": 1500},
                                  "variants": {"full": {"data": {"sim_runs": 1, "sim_windows": [40],
                                                                 "category_drills": 2}}}}).for_variant("full")
    splits = build_examples(recipe, "full")
    anomaly = [e for e in splits["train"] if e.task == "anomaly" and not e.meta.get("drill")]
    assert any(e.label == "abnormal" for e in anomaly) and any(e.label == "normal" for e in anomaly)
    for e in anomaly:
        assert e.completion.startswith(f"{NO_ANALYSIS}</think><answer>\nverdict: {e.label}\n")
        if e.label == "abnormal":
            assert "\nroot_cause: the most likely root cause is " in e.completion
            assert "\naction: the recommended fix is to " in e.completion
            t = ScriptedTranscript("P<think>", e.completion)
            ans = structured_answer(t, ExplainConfig())
            assert ans.category == e.category and ans.root_cause and ans.action


def test_the_model_card_carries_the_explain_benchmark():
    from rlog.models import ModelNotFound
    from train.ship import explain_lines, explain_summary

    bench = {"environment": {"cpu": "AMD EPYC"}, "explanations": {
        "incidents": 60, "source": "simulated, seed 23", "category_accuracy": 0.85, "category_interval": [0.74, 0.92],
        "rlog_category_accuracy": 0.6, "rule_category_accuracy": 0.5, "written_rate": 1.0, "readable_rate": 1.0,
        "cause_rouge_l": 0.41, "action_rouge_l": 0.33, "ms": {"p50": 2450.0, "p95": 3100.0},
        "trajectories": {"root_cause": {"n": 6, "rougeL": 0.08, "bleu4": 0.01, "ms": {"p50": 1.0}}},
        "real_incidents": {"n": 11, "written_rate": 1.0, "interpretation_rouge_l": 0.2, "cause_rouge_l": 0.15,
                           "action_rouge_l": 0.12, "ms": {"p50": 2000.0}, "rows": []}}}
    x = explain_summary(bench, "results.json")
    text = "\n".join(explain_lines(x))
    assert "0.850 [0.740–0.920]" in text and "2450 ms p50" in text and "injected cause 0.410" in text
    assert "11 Apache errors" in text and "root_cause 0.080 (n=6)" in text
    assert "rows" not in x["real_incidents"]  # the card keeps figures, not every answer
    with pytest.raises(ModelNotFound, match="rlog bench --preset explain"):
        explain_summary({"explanations": {}}, "empty.json")
    assert explain_lines(None) == []


def test_a_reference_names_only_what_the_session_shows():
    from train.explain_data import grounded

    values = {"host": "dn-3, dn-4", "device": "/dev/sdb", "volume": "/data/2", "source_ip": "203.0.113.7",
              "version": "2.4.1", "service": "orders", "code": "137"}
    cause = "The disk /dev/sdb behind volume /data/2 on dn-3, dn-4 fails; block 203.0.113.7."
    assert grounded(cause, values, "kernel: I/O error, dev sdb") == \
        "The disk behind volume on the hosts fails; block one address."
    shown = "1. sshd: Failed password for root from 203.0.113.7 port <*>\n2. dn-4 volume /data/2 failed"
    assert grounded(cause, values, shown) == "The disk behind volume /data/2 on dn-4 fails; block 203.0.113.7."
    assert grounded("Version 2.4.1 of orders was deployed; roll back 2.4.1.", values, "orders failed") == \
        "A new version of orders was deployed; roll back the new version."


def test_simulated_references_do_not_name_a_host_the_prompt_hides():
    import re

    from train.data import sim_examples

    abnormal = [e for e in sim_examples("full", seed=11, lines=3000) if e.label == "abnormal"]
    assert abnormal
    generic = 0
    for e in abnormal:
        shown = e.prompt.messages[-1]["content"].lower()
        answer = e.completion.partition("<answer>")[2]
        for name in re.findall(r"\b[a-z]+-\d+\b", answer):  # the simulator's host names: dn-3, gw-1, ...
            assert name in shown, (name, answer)
        generic += "the host" in answer
    assert generic > 0  # some answers had a host to hide, and said "the host" instead
