"""The environment train/ learns in: episodes match the written truth; the reward is exact."""

from __future__ import annotations

import csv

import pytest

from rlog.cascade.cascade import Cascade
from rlog.contract.prompts import CATEGORIES
from rlog.contract.representation import prompt_for, view_of
from rlog.metrics import TruthScorer
from rlog.sim.engine import SimConfig
from rlog.sim.output import simulate
from rlog.truth import SessionTruth
from train.environment import RewardWeights, SimEnvironment, reference_answer, score_answer

ABNORMAL = SessionTruth(True, "disk_failure", "hardware", "F0001")
NORMAL = SessionTruth(False)
CFG = SimConfig(seed=21, lines=4000, fault_gap_s=30, benign_gap_s=40, warmup_s=10)


@pytest.fixture(scope="module")
def episodes():
    return list(SimEnvironment(CFG).episodes())


def test_episodes_are_the_sessions_the_truth_file_describes(episodes, tmp_path):
    simulate(CFG, tmp_path, progress=False)
    with open(tmp_path / "sessions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    by_id = {r["session_id"]: r for r in rows}
    # the parser holds each record until the next line of its source (multi-line merge), so
    # sessions of different components may close in another order; each is the same session
    assert sorted(e.session.session_id for e in episodes) == sorted(by_id)
    for e in episodes:
        r = by_id[e.session.session_id]
        assert (e.session.lines[0].seq, e.session.lines[-1].seq) == (int(r["first_line"]), int(r["last_line"]))
        assert int(e.truth.label) == int(r["label"])
        assert (e.truth.scenario or "") == r["scenario"] and (e.truth.category or "") == r["category"]
        if e.truth.label:
            assert e.incident is not None and e.incident.action == r["action"]
    assert any(e.truth.label for e in episodes) and any(e.truth.lookalike for e in episodes)


def test_episode_prompt_is_the_served_prompt(episodes, tiny_backend):
    from rlog.config import CascadeConfig

    cfg = CascadeConfig()
    ep = next(e for e in episodes if e.truth.label)
    cascade = Cascade(tiny_backend, None, cfg)
    count = tiny_backend.count_tokens
    assert ep.prompt("fast", cfg, count) == cascade.prompt(ep.session, "fast")
    assert ep.prompt("full", cfg, count) == prompt_for(view_of(ep.session, cfg.view), "full", cfg, count)
    body = ep.prompt("fast", cfg, count).messages[1]["content"]
    assert "<logs>" in body and any(e.template[:30] in body for e in ep.view(cfg).entries)


def test_reference_answers_earn_the_full_reward(episodes):
    w = RewardWeights()
    for ep in episodes:
        fast = score_answer(reference_answer(ep, "fast"), ep.truth, "fast")
        assert fast.format_ok and fast.verdict_correct and fast.reward == pytest.approx(w.format_ok + w.correct)
        full = score_answer(reference_answer(ep, "full"), ep.truth, "full")
        bonus = w.category if ep.truth.label else 0.0
        assert full.format_ok and full.reward == pytest.approx(w.format_ok + w.correct + bonus)
        if ep.truth.label:
            assert full.category == ep.truth.category in CATEGORIES and full.category_correct


def test_reward_shape_formats_verdicts_and_categories():
    w = RewardWeights()
    ok = score_answer("abnormal</answer><think>disk errors</think>", ABNORMAL, "fast")
    assert ok.reward == pytest.approx(w.format_ok + w.correct)
    # stopped at </answer> (how serving decodes): still well formed
    assert score_answer("abnormal</answer>", ABNORMAL, "fast").format_ok
    miss = score_answer("normal</answer><think>fine</think>", ABNORMAL, "fast")
    alarm = score_answer("abnormal</answer><think>?</think>", NORMAL, "fast")
    assert miss.reward == pytest.approx(w.format_ok + w.missed_anomaly)
    assert alarm.reward == pytest.approx(w.format_ok + w.false_alarm)
    assert miss.reward < alarm.reward  # a missed incident costs more than a false alarm
    for bad in ("", "I think it is abnormal", "<think>x</think>abnormal", "maybe</answer>", "\x00" * 50,
                "abnormal</answer><think>a</think><think>b</think>"):
        s = score_answer(bad, ABNORMAL, "fast")
        assert not s.format_ok and s.reward <= w.format_bad + w.correct
    full = "x</think><answer>\nverdict: abnormal\ncategory: hardware\nroot_cause: disk\naction: replace\n</answer>"
    s = score_answer(full, ABNORMAL, "full")
    assert s.category_correct and s.reward == pytest.approx(w.format_ok + w.correct + w.category)
    wrong_cat = score_answer(full.replace("hardware", "network"), ABNORMAL, "full")
    assert wrong_cat.category_correct is False and wrong_cat.reward == pytest.approx(w.format_ok + w.correct)
    assert score_answer(full, NORMAL, "full").category_correct is None
    assert not score_answer("<answer>abnormal</answer>", ABNORMAL, "full").format_ok
    custom = score_answer("normal</answer>", ABNORMAL, "fast", weights=RewardWeights(missed_anomaly=-3))
    assert custom.reward == pytest.approx(0.1 - 3)


def test_truth_scorer_counts_root_cause_on_caught_incidents_only():
    sc = TruthScorer()
    sc.add(ABNORMAL, "abnormal", "hardware")  # caught, right cause
    sc.add(ABNORMAL, "abnormal", "network")  # caught, wrong cause
    sc.add(ABNORMAL, "abnormal", None)  # caught, no cause (not escalated)
    sc.add(ABNORMAL, "normal", None)  # missed: not part of root-cause accuracy
    sc.add(SessionTruth(False, "retry_success", None, "B0001"), "abnormal", None)  # false alarm on a look-alike
    sc.add(NORMAL, "normal", None)
    rc = sc.root_cause()
    assert (rc["caught"], rc["answered"], rc["correct"]) == (3, 2, 1)
    assert rc["accuracy"] == pytest.approx(1 / 3, abs=1e-4)
    assert rc["confusion"] == {"hardware->-": 1, "hardware->hardware": 1, "hardware->network": 1}
    assert sc.by_scenario["disk_failure"] == {"sessions": 4, "flagged": 3, "abnormal": 1}
    assert sc.by_scenario["retry_success"] == {"sessions": 1, "flagged": 1, "abnormal": 0}
    assert sc.by_scenario["normal"] == {"sessions": 1, "flagged": 0, "abnormal": 0}
