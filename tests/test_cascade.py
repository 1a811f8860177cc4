"""Cascade decisions (pure), bounded state, and the cascade over a real tiny model."""

import pytest

from rlog.backends.base import BackendError
from rlog.cascade.alerts import Alert, alert_id, headline_of, pick_evidence
from rlog.cascade.batching import MicroBatcher
from rlog.cascade.cascade import Cascade, Decision, final_verdict, needs_escalation
from rlog.cascade.memory import VerdictCache, sequence_key
from rlog.config import CascadeConfig, ModelSpec
from rlog.contract.answers import FastAnswer, FullAnswer
from rlog.contract.representation import sequence_of, view_of
from rlog.pipeline.sessions import Session, SessionLine


def session(sid, templates, source="src"):
    s = Session(sid, source, "window")
    for i, t in enumerate(templates):
        s.lines.append(SessionLine(i, 100.0 + i, f"raw {t} {i}", "T" + t, t))
    return s


OK_NORMAL = FastAnswer("normal", 0.95)
UNSURE_NORMAL = FastAnswer("normal", 0.30)
ABNORMAL = FastAnswer("abnormal", 0.9)
BROKEN = FastAnswer(None, None, error="garbage")


def test_escalation_rule():
    assert not needs_escalation(OK_NORMAL, 0.6)
    assert needs_escalation(UNSURE_NORMAL, 0.6)
    assert needs_escalation(ABNORMAL, 0.6)
    assert needs_escalation(BROKEN, 0.6)
    assert not needs_escalation(FastAnswer("normal", None), 0.6)  # no log-probs: trust the verdict


def test_final_verdict_prefers_full_model():
    assert final_verdict(ABNORMAL, FullAnswer("normal")) == "normal"
    assert final_verdict(UNSURE_NORMAL, FullAnswer("abnormal", "storage")) == "abnormal"
    assert final_verdict(ABNORMAL, FullAnswer(None, error="bad")) == "abnormal"
    assert final_verdict(BROKEN, None) == "unknown"


def test_either_policy_lets_the_full_model_raise_but_not_clear():
    assert final_verdict(ABNORMAL, FullAnswer("normal"), "either") == "abnormal"
    assert final_verdict(UNSURE_NORMAL, FullAnswer("abnormal", "storage"), "either") == "abnormal"
    assert final_verdict(UNSURE_NORMAL, FullAnswer("normal"), "either") == "normal"
    assert final_verdict(BROKEN, FullAnswer("normal"), "either") == "normal"
    assert final_verdict(BROKEN, None, "either") == "unknown"
    assert final_verdict(ABNORMAL, FullAnswer("normal"), "fast") == "abnormal"
    assert final_verdict(UNSURE_NORMAL, FullAnswer("abnormal", "storage"), "fast") == "normal"  # R-Log cannot raise
    assert final_verdict(BROKEN, FullAnswer("abnormal"), "fast") == "abnormal"  # what fast could not answer


def test_sequence_key_collapses_repeats_only():
    a = session("a", ["x", "x", "y", "x"])
    b = session("b", ["x", "y", "y", "x"])
    c = session("c", ["y", "x"])
    assert sequence_of(a) == ("x", "y", "x")
    assert sequence_key(sequence_of(a)) == sequence_key(sequence_of(b)) != sequence_key(sequence_of(c))


def test_verdict_cache_is_bounded_lru():
    c = VerdictCache(2)
    d = Decision("normal", OK_NORMAL)
    c.put("a", d)
    c.put("b", d)
    assert c.get("a") is d
    c.put("c", d)  # evicts b, the least recently used
    assert c.get("b") is None and c.get("a") is d and len(c) == 2
    assert (c.hits, c.misses) == (2, 1)


def test_micro_batcher_by_size_and_wait():
    b = MicroBatcher(3, max_wait_s=1.0)
    assert b.add(1, 0.0) is None and b.add(2, 0.5) is None
    assert b.due(0.9) is None
    assert b.due(1.0) == [1, 2]
    assert b.add(3, 2.0) is None and b.add(4, 2.1) is None
    assert b.add(5, 2.2) == [3, 4, 5] and len(b) == 0


def test_alert_ids_are_deterministic():
    assert alert_id("s", "blk_1", "k") == alert_id("s", "blk_1", "k") != alert_id("s", "blk_2", "k")


def test_evidence_prefers_failures_then_severity_then_new_templates_with_counts_and_times():
    s = Session("w", "node1", "window")
    rows = [("A", "boot ok <*>", "boot ok 1", "", 50), ("A", "boot ok <*>", "boot ok 2", "", 50),
            ("B", "heartbeat", "heartbeat", "", 0), ("C", "fan speed <*>", "fan speed 9000", "WARN", 50),
            ("D", "disk <*> error", "disk sda error", "", 50), ("D", "disk <*> error", "disk sdb error", "", 50),
            ("A", "boot ok <*>", "boot ok 3", "", 50)]
    for i, (tid, tpl, raw, level, prior) in enumerate(rows):
        s.lines.append(SessionLine(i, 100.0 + i, raw, tid, tpl, level=level, prior=prior, age=10_000))
    view = view_of(s)
    ev = pick_evidence(s, view, 3)
    assert [e["template_id"] for e in ev] == ["B", "C", "D"]  # log order; boot ok (routine, known) left out
    disk = ev[-1]
    assert disk["line"] == "disk sda error" and disk["count"] == 2 and (disk["first_ts"], disk["last_ts"]) == (104, 105)
    assert disk["marks"] == ["failure"] and ev[0]["marks"] == ["new"] and ev[1]["marks"] == ["WARN"]
    assert headline_of(ev) == "disk sda error"
    assert pick_evidence(s, view, 0) == [] and headline_of([]) == ""


class _Named:
    def __init__(self, name):
        self.model_id = name


def test_alerts_from_decisions():
    cfg = CascadeConfig(evidence_lines=2, explain={"category": "rlog"})  # R-Log's own category stands
    cas = Cascade(_Named("fast-m"), _Named("full-m"), cfg)
    s1, s2, s3 = session("w1", ["x", "disk error <*>"]), session("w2", ["x"]), session("w3", ["y"])
    full = FullAnswer("abnormal", "storage", "disk died", "worn disk", "replace it")
    judged = [
        (s1, Decision("abnormal", ABNORMAL, full, 12.0, 80.0), False),
        (s2, Decision("normal", OK_NORMAL, None, 10.0), False),
        (s3, Decision("abnormal", BROKEN, FullAnswer("abnormal", error=None), 5.0, 50.0), True),
    ]
    alerts = cas.alerts(judged)
    assert [a.session_id for a in alerts] == ["w1", "w3"]
    a = alerts[0]
    assert a.category == "storage" and a.root_cause == "worn disk" and a.action == "replace it"
    assert a.models == {"fast": "fast-m", "full": "full-m"} and a.escalated
    assert a.latency_ms == {"fast": 12.0, "full": 80.0}
    assert a.templates == [{"id": "Tx", "template": "x", "count": 1},
                           {"id": "Tdisk error <*>", "template": "disk error <*>", "count": 1}]
    assert a.evidence[-1]["line"].startswith("raw disk error") and a.headline == a.evidence[-1]["line"]
    assert a.fallback == [] and a.category_confidence is None
    assert alerts[1].cached and alerts[1].latency_ms == {"fast": 0.0, "full": 0.0}
    assert alerts[1].errors == ["fast: garbage"]
    # R-Log answered a verdict and nothing else: the alert is still readable, each filled field named
    b = alerts[1]
    assert b.fallback == ["category", "interpretation", "root_cause", "action"]
    assert b.category == "software" and b.interpretation and b.root_cause and b.action
    again = Alert.from_json(a.to_json())
    assert again == a and cas.alerts(judged)[0].alert_id == a.alert_id  # replay: same id


def test_cascade_on_a_real_tiny_model(tiny_backend):
    cfg = CascadeConfig(fast=ModelSpec(max_new_tokens=6, batch_size=2), full=ModelSpec(max_new_tokens=8, batch_size=2),
                        scoring="generate", explain={"structured": "off"})
    cas = Cascade(tiny_backend, tiny_backend, cfg)
    sessions = [session("a", ["x", "y"]), session("b", ["y", "x"]), session("c", ["z"]),
                session("d", ["q", "r"])]
    judged = cas.judge(sessions)
    st = cas.stats
    assert [s.session_id for s, _, _ in judged] == ["a", "b", "c", "d"]
    assert st.sessions == 4 and st.fast_calls == 3 and st.cache_hits == 1  # a and b share a signature
    assert st.fast_batches == 2
    # a random-weight model cannot answer in format: counted, escalated, never a crash
    assert st.malformed_fast == 3 and st.escalations == 3 and st.malformed_full == 3
    assert all(d.verdict == "unknown" for _, d, _ in judged) and st.undecided == 4
    assert cas.alerts(judged) == []
    cas.judge([session("e", ["z"])])  # judged before: served from the cache, no model call
    assert st.fast_calls == 3 and st.cache_hits == 2


class _Flaky:
    """Wraps a real backend and fails its first calls, as a crashed model server would."""

    def __init__(self, inner, failures):
        self.inner, self.failures, self.model_id = inner, failures, inner.model_id

    def generate(self, prompts, params):
        if self.failures:
            self.failures -= 1
            raise BackendError("connection reset")
        return self.inner.generate(prompts, params)


def test_backend_failures_retry_with_backoff_then_raise(tiny_backend, caplog):
    waits = []
    cfg = CascadeConfig(fast=ModelSpec(max_new_tokens=4), retries=3, retry_backoff_s=0.5, escalate=False)
    cas = Cascade(_Flaky(tiny_backend, 2), None, cfg, sleep=waits.append)
    cas.judge([session("a", ["x"])])
    assert waits == [0.5, 1.0] and cas.stats.retries == 2
    assert "retry 1/3" in caplog.text
    dead = Cascade(_Flaky(tiny_backend, 99), None, cfg, sleep=waits.append)
    with pytest.raises(BackendError, match="connection reset"):
        dead.judge([session("a", ["x"])])
