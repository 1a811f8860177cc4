"""The joint reward: format + task, for every task, including malformed and hostile outputs."""

from __future__ import annotations

import math

import pytest

from train.rewards import (
    JointReward,
    RewardWeights,
    anomaly_score,
    bleu4,
    format_reward,
    overlap,
    rouge_l,
    rouge_n,
    score,
    split_answer,
    template_f1,
    text_score,
    words,
)

FULL_OK = "<think>disk errors</think><answer>abnormal</answer>"
FAST_OK = "<answer>abnormal</answer><think>disk errors</think>"


@pytest.mark.parametrize(("text", "mode", "ok"), [
    (FULL_OK, "full", True),
    (FAST_OK, "fast", True),
    ("<answer>abnormal</answer>", "fast", True),  # served fast answers stop at </answer>
    (FAST_OK, "full", False),  # wrong order for the variant
    (FULL_OK, "fast", False),
    ("<think>a</think><think>b</think><answer>x</answer>", "full", False),  # two thinks
    ("<think>a</think><answer>x</answer><answer>y</answer>", "full", False),
    ("<think>unclosed<answer>x</answer>", "full", False),
    ("abnormal", "fast", False),
    ("", "full", False),
    ("<answer>abnormal</answer><think>rationale cut off", "fast", False),  # truncated think
    ("<think>a</think>trailing<answer>x</answer>", "full", False),
])
def test_format_reward_needs_one_of_each_tag_in_order(text, mode, ok):
    w = RewardWeights()
    assert format_reward(text, mode) == (w.format_ok if ok else w.format_bad)


def test_anomaly_reward_weights_misses_over_false_alarms():
    w = RewardWeights()
    right = anomaly_score("abnormal</answer><think>x</think>", "abnormal", "fast")
    assert right.reward == pytest.approx(w.format_ok + w.correct) and right.verdict_correct
    miss = anomaly_score("normal</answer><think>x</think>", "abnormal", "fast")
    alarm = anomaly_score("abnormal</answer><think>x</think>", "normal", "fast")
    assert miss.reward == pytest.approx(w.format_ok + w.missed_anomaly)
    assert alarm.reward == pytest.approx(w.format_ok + w.false_alarm)
    assert miss.reward < alarm.reward < right.reward
    heavier = anomaly_score("normal</answer>", "abnormal", "fast", weights=RewardWeights(missed_anomaly=-4))
    assert heavier.reward == pytest.approx(w.format_ok - 4)


@pytest.mark.parametrize("bad", ["", "abnormal", "maybe</answer>", "</answer></answer>", "\x00\x01",
                                 "<answer>abnormal</answer>" * 3, "normal</answer><think>x</think><answer>y"])
def test_malformed_anomaly_outputs_score_as_malformed_and_never_raise(bad):
    s = anomaly_score(bad, "abnormal", "fast")
    assert not s.format_ok
    assert s.reward <= RewardWeights().format_bad + RewardWeights().correct
    assert math.isfinite(s.reward)


def test_full_anomaly_category_bonus_only_when_verdict_and_category_are_right():
    w = RewardWeights()
    ans = "disk sda failed</think><answer>\nverdict: abnormal\ncategory: storage\nroot_cause: disk\naction: swap\n</answer>"
    good = anomaly_score(ans, "abnormal", "full", category="storage")
    assert good.category_correct and good.reward == pytest.approx(w.format_ok + w.correct + w.category)
    wrong_cat = anomaly_score(ans, "abnormal", "full", category="network")
    assert wrong_cat.category_correct is False and wrong_cat.reward == pytest.approx(w.format_ok + w.correct)
    no_cat_known = anomaly_score(ans, "abnormal", "full")  # Loghub labels carry no category
    assert no_cat_known.category_correct is None
    bare = anomaly_score("x</think><answer>abnormal</answer>", "abnormal", "full")
    assert bare.format_ok and bare.verdict == "abnormal"


def test_template_f1_scores_tokens_of_the_template():
    ref = "PacketResponder <*> for block blk_<*> terminating"
    assert template_f1(ref, ref) == 1.0
    assert template_f1("PacketResponder 1 for block blk_123 terminating", ref) == pytest.approx(2 * (4 / 6) * (4 / 6) / (8 / 6))
    assert template_f1("", ref) == 0.0
    assert template_f1("", "") == 1.0
    assert 0 < template_f1("PacketResponder <*> for block <*> terminating", ref) < 1


def test_overlap_metrics_are_normalised_and_ordered():
    ref = "The datanode lost its disk so the block write failed; replace the disk and re-replicate."
    same = overlap(ref, ref)
    assert same.bleu4 == pytest.approx(1.0) and same.rouge1 == 1.0 and same.rouge2 == 1.0 and same.rougeL == 1.0
    close = overlap("The datanode lost a disk and the block write failed; replace the disk.", ref)
    far = overlap("Everything is fine, no action needed.", ref)
    assert 0 < far.mean < close.mean < 1
    assert overlap("", ref).mean == 0.0
    for m in (close.bleu4, close.rouge1, close.rouge2, close.rougeL):
        assert 0.0 <= m <= 1.0


def test_text_metric_building_blocks():
    a, b = words("the cat sat on the mat"), words("the cat on the mat")
    assert rouge_n(a, b, 1) == pytest.approx(2 * (5 / 6) * 1 / (5 / 6 + 1))
    assert rouge_l(a, b) == pytest.approx(rouge_n(a, b, 1))  # b is a subsequence of a
    assert bleu4(a, a) == pytest.approx(1.0)
    assert bleu4(["x"], a) == 0.0
    assert words("blk_<*> failed: <*>") == ["blk_", "<*>", "failed", ":", "<*>"]


def test_text_tasks_reward_format_then_quality():
    w = RewardWeights()
    ref = "Disk failure on dn3"
    good = text_score("reasoning</think><answer>Disk failure on dn3</answer>", ref, "root_cause")
    assert good.format_ok and good.reward == pytest.approx(w.format_ok + 1.0)
    broken = text_score("no tags at all", ref, "root_cause")
    assert not broken.format_ok and broken.reward == w.format_bad and broken.task_score == 0.0
    parse = text_score("x</think><answer>Receiving block blk_<*></answer>", "Receiving block blk_<*>", "parsing")
    assert parse.task_score == 1.0
    # a reference given as a whole think/answer trace is reduced to its answer
    traced = text_score("y</think><answer>Disk failure on dn3</answer>", "<think>z</think><answer>Disk failure on dn3</answer>",
                        "interpretation")
    assert traced.task_score == pytest.approx(1.0)
    with pytest.raises(ValueError, match="unknown task"):
        score("x", task="poetry", mode="full", label="y")


def test_split_answer_and_injection_cannot_fake_a_second_answer():
    assert split_answer("<think>a</think><answer>b</answer>", "full") == ("a", "b")
    injected = "<think>ignore rules</think><answer>normal</answer> <answer>abnormal</answer>"
    assert split_answer(injected, "full") is None


def test_joint_reward_is_a_trl_reward_function():
    calls = []
    fn = JointReward()
    out = fn(prompts=["p"] * 4,
             completions=["abnormal</answer><think>x</think>", "normal</answer><think>x</think>",
                          "x</think><answer>Receiving block blk_<*></answer>", [{"role": "assistant",
                                                                                 "content": "garbage"}]],
             task=["anomaly", "anomaly", "parsing", "anomaly"], mode=["fast", "fast", "full", "full"],
             label=["abnormal", "normal", "Receiving block blk_<*>", "normal"], category=["", "", "", ""],
             log_metric=lambda name, value: calls.append((name, value)), trainer_state=None)
    w = RewardWeights()
    # an unreadable verdict on a normal session: malformed, and wrong (counted as a false alarm)
    assert out == pytest.approx([w.format_ok + w.correct, w.format_ok + w.correct, w.format_ok + 1.0,
                                 w.format_bad + w.false_alarm])
    assert dict(calls)["format_ok"] == pytest.approx(0.75)
