"""Open incidents: the memory itself (pure), and the cascade over real tiny models judging and
explaining each incident once."""

import json

import pytest

from rlog.cascade.cascade import Cascade, decision_from_state, decision_to_state
from rlog.cascade.incidents import Incidents, jaccard, pattern_id
from rlog.config import CascadeConfig, IncidentConfig, MemoryConfig
from rlog.contract.answers import FastAnswer
from rlog.pipeline.sessions import Session, SessionLine


def fs(*xs):
    return frozenset(xs)


def test_recall_needs_the_whole_pattern_of_an_open_incident_of_the_same_source():
    inc = Incidents(10, window_s=60, min_overlap=0.5)
    opened = inc.open("db", fs("a", "b"), 100.0, "disk")
    assert opened.incident_id == pattern_id("db", ["b", "a"])
    assert inc.recall("db", fs("a", "b", "c"), 120.0) is opened  # everything that made it abnormal, and more
    assert inc.recall("db", fs("a"), 120.0) is None  # only part of it: not the same trouble
    assert inc.recall("web", fs("a", "b"), 120.0) is None  # another source
    assert opened.sessions == 2 and opened.last_ts == 120.0
    assert inc.recall("db", fs("a", "b"), 181.0) is None  # more than window_s after its last session: closed
    assert len(inc) == 0 and inc.patterns == 0  # and forgotten


def test_recall_picks_the_most_specific_pattern():
    inc = Incidents(10, 60, 0.5)
    inc.open("db", fs("a"), 0.0, "broad")
    inc.open("db", fs("a", "b"), 0.0, "specific")
    assert inc.recall("db", fs("a", "b", "c"), 1.0).decision == "specific"
    assert inc.recall("db", fs("a", "c"), 1.0).decision == "broad"


def test_similar_needs_the_overlap_and_a_usable_decision_and_joins_the_session():
    inc = Incidents(10, 60, 0.5)
    inc.open("db", fs("a", "b", "c"), 0.0, "unexplained")
    assert jaccard(fs("a", "b", "c"), fs("a", "b", "d")) == 0.5
    assert inc.similar("db", fs("a", "b", "d"), 1.0, usable=lambda d: d != "unexplained") is None
    hit = inc.similar("db", fs("a", "b", "d"), 1.0)
    assert hit is not None and hit.decision == "unexplained"
    assert inc.recall("db", fs("a", "b", "d", "e"), 2.0) is hit  # the joined pattern now recalls it
    assert inc.similar("db", fs("a", "x", "y"), 2.0) is None  # 1/5 in common


def test_untimed_sessions_use_the_wall_clock():
    now = [1000.0]
    inc = Incidents(10, 60, 0.5, clock=lambda: now[0])
    inc.open("db", fs("a"), None, "d")
    now[0] += 30
    assert inc.recall("db", fs("a"), None) is not None
    now[0] += 100
    assert inc.recall("db", fs("a"), None) is None


def test_patterns_are_bounded_and_incidents_go_with_their_last_pattern():
    inc = Incidents(3, 1e9, 0.5)
    for i in range(10):
        inc.open("db", fs(f"t{i}"), float(i), i)
    assert inc.patterns == 3 and len(inc) == 3
    assert inc.recall("db", fs("t0"), 10.0) is None and inc.recall("db", fs("t9"), 10.0).decision == 9


def test_incidents_round_trip_as_plain_data():
    inc = Incidents(10, 60, 0.5)
    a = inc.open("db", fs("a", "b"), 5.0, {"v": 1})
    inc.similar("db", fs("a", "b", "c", "d"), 6.0)
    state = json.loads(json.dumps(inc.state(lambda d: d, 100)))
    fresh = Incidents(10, 60, 0.5)
    fresh.load_state(state, lambda d: d)
    assert len(fresh) == 1 and fresh.patterns == 2
    got = fresh.recall("db", fs("a", "b", "c", "d", "e"), 7.0)
    assert got.incident_id == a.incident_id and got.decision == {"v": 1}


def test_memory_off_remembers_nothing():
    inc = Incidents(0, 60, 0.5)
    assert inc.open("db", fs("a"), 0.0, "d") is None and inc.recall("db", fs("a"), 0.0) is None


# ------------------------------------------------------------------ the cascade, real tiny models

class _Counting:
    """A real backend that counts what it is asked (scored prompts, written answers)."""

    def __init__(self, inner):
        self.inner, self.model_id, self.calibration = inner, inner.model_id, None
        self.scored = self.written = 0

    def score(self, prompts):
        self.scored += len(prompts)
        return self.inner.score(prompts)

    def transcript(self, prompt, budget):
        self.written += 1
        return self.inner.transcript(prompt, budget)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def _session(sid, templates, t0=100.0, source="db"):
    return Session(sid, source, "window", [SessionLine(i, t0 + i, f"{t} {i}", "T" + t, t)
                                           for i, t in enumerate(templates)])


@pytest.fixture()
def flagging(tiny_backend):
    """A cascade whose R-Log-fast flags everything (threshold at the bottom), escalating to R-Log."""
    fast, full = _Counting(tiny_backend), _Counting(tiny_backend)
    cfg = CascadeConfig(threshold=1e-4, band=0.0, fusion=False, memory=MemoryConfig(persist=5000),
                        incidents=IncidentConfig(window_s=600))
    return Cascade(fast, full, cfg), fast, full


DISK = ["heartbeat", "disk failed on <*>", "io error <*>"]


def test_a_session_holding_an_open_incident_is_judged_and_explained_without_a_call(flagging):
    cas, fast, full = flagging
    (_, first, _), = cas.judge([_session("w1", DISK)])
    assert first.verdict == "abnormal" and first.incident and (fast.scored, full.written) == (1, 1)
    later = _session("w2", [*DISK, "io error <*>", "retrying <*>"], t0=300.0)
    (_, d, from_memory), = cas.judge([later])
    assert from_memory and (fast.scored, full.written) == (1, 1) and cas.stats.incident_hits == 1
    assert d.incident == first.incident and d.full is first.full
    alert, = cas.alerts([(later, d, from_memory)])
    assert alert.incident_id == first.incident and alert.cached
    cas.judge([_session("w3", DISK, source="web")])  # another source: its own incident, paid
    cas.judge([_session("w4", [*DISK, "io error <*>"], t0=2000.0)])  # the incident closed (600 s): news again
    assert (fast.scored, full.written) == (3, 3)


def test_a_flagged_session_like_an_open_incident_shares_its_explanation(flagging):
    cas, fast, full = flagging
    (_, first, _), = cas.judge([_session("w1", DISK)])
    like = _session("w2", ["disk failed on <*>", "io error <*>", "remount read-only <*>"], t0=200.0)  # Jaccard 0.5
    (_, d, from_memory), = cas.judge([like])
    assert not from_memory and fast.scored == 2 and full.written == 1  # judged, but not explained again
    assert d.incident == first.incident and d.full is first.full and cas.stats.explanations_reused == 1
    unlike = _session("w3", ["kernel panic <*>", "reboot <*>", "io error <*>"], t0=210.0)  # 1/5 in common
    (_, d3, _), = cas.judge([unlike])
    assert full.written == 2 and d3.incident != first.incident


def test_an_unsure_session_still_asks_r_log(tiny_backend):
    fast, full = _Counting(tiny_backend), _Counting(tiny_backend)
    cas = Cascade(fast, full, CascadeConfig(threshold=0.9999, band=0.9998, fusion=False,
                                            verdict="either"))  # every score is unsure, and R-Log may raise it
    cas.incidents.open("db", frozenset(["Tdisk failed on <*>", "Tio error <*>", "Tremount <*>"]), 100.0,
                       decision_from_state(["abnormal", {"verdict": "abnormal", "confidence": 1.0},
                                           {"verdict": "abnormal", "category": "hardware"}, 0, 0, False]))
    cas.judge([_session("w1", ["disk failed on <*>", "io error <*>", "fsck <*>"])])  # like it, not all of it
    assert full.written == 1 and cas.stats.explanations_reused == 0


def test_the_explain_role_reuses_an_incident_from_the_unfamiliar_part_the_detect_role_saw(tiny_backend):
    full = _Counting(tiny_backend)
    cas = Cascade(None, full, CascadeConfig(incidents=IncidentConfig(window_s=600)))
    flag = FastAnswer("abnormal", 0.9, p_abnormal=0.9)
    s1, s2 = _session("w1", DISK), _session("w2", ["heartbeat", "heartbeat", *DISK[1:], "retrying <*>"], t0=150.0)
    (_, d1, _), = cas.explain([(s1, flag, 1.0)], unfamiliar={"w1": frozenset(["Tdisk failed on <*>", "Tio error <*>"])})
    (_, d2, _), = cas.explain([(s2, flag, 1.0)],
                              unfamiliar={"w2": frozenset(["Tdisk failed on <*>", "Tio error <*>", "Tretrying <*>"])})
    assert full.written == 1 and d2.incident == d1.incident and d2.full is d1.full
    assert cas.stats.explanations_reused == 1


def test_incidents_ride_in_the_memory_checkpoint(flagging, tiny_backend):
    cas, _, _ = flagging
    (_, first, _), = cas.judge([_session("w1", DISK)])
    state = json.loads(json.dumps(cas.memory_state()))
    fast = _Counting(tiny_backend)
    fresh = Cascade(fast, _Counting(tiny_backend), cas.cfg)
    fresh.load_memory(state)
    (_, d, hit), = fresh.judge([_session("w2", [*DISK, "retrying <*>"], t0=200.0)])
    assert hit and fast.scored == 0 and d.incident == first.incident and d.verdict == "abnormal"
    row = decision_to_state(first)
    assert decision_from_state(row).incident == first.incident
    assert decision_from_state(row[:6]).incident is None  # a checkpoint written before incidents still loads


def test_incidents_off(tiny_backend):
    fast = _Counting(tiny_backend)
    cas = Cascade(fast, None, CascadeConfig(threshold=1e-4, band=0.0, fusion=False, escalate=False,
                                            incidents=IncidentConfig(enabled=False)))
    cas.judge([_session("w1", DISK)])
    cas.judge([_session("w2", [*DISK, "retrying <*>"])])
    assert fast.scored == 2 and cas.stats.incident_hits == 0
