"""The decoding boundary (rlog.wire): every record rlog reads back is decoded or refused with
``RecordError``, never anything else, whatever its bytes; what decodes is usable.

Hypothesis feeds each decoder random bytes and valid records mutated at a random place of
their JSON (a value replaced by any JSON, a field or item removed), then uses what decoded
the way a worker would (the pipeline goes on, the memory loads, the alert prints).
"""

from __future__ import annotations

import contextlib
import zlib
from dataclasses import asdict

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rlog.cascade.cards import card, one_line
from rlog.cascade.cascade import Cascade, Decision, decision_to_state
from rlog.config import load_config
from rlog.contract.answers import FastAnswer, FullAnswer
from rlog.pipeline.lines import Line
from rlog.pipeline.sessions.session import session_to_dict
from rlog.wire import RecordError, StateKeys, seal, unseal
from rlog.wire.alerts import decode_alert
from rlog.wire.sessions import Limits, decode_escalation, decode_session
from rlog.wire.state import decode_memory, decode_parse_state
from stream.checkpoint import PartitionState, config_fingerprint, latest_checkpoints, snapshot_state

CONFIGS = {
    "id": {"session": {"mode": "id", "id_patterns": [r"(?P<id>blk_-?\d+)"], "timeout_s": 30}},
    "count": {"session": {"mode": "fixed", "size": 4}},
    "time": {"session": {"mode": "sliding", "by": "time", "size": 60, "step": 30}},
}
LINES = ["2026-01-05 08:00:{s:02d} INFO dfs.DataNode: Receiving block blk_{b} src /10.0.0.{b}",
         "2026-01-05 08:00:{s:02d} WARN dfs.DataNode: Slow write blk_{b} took {s} ms",
         "2026-01-05 08:00:{s:02d} ERROR dfs.DataNode: Exception writing blk_{b}\n  at java.io.Foo(Foo.java:{s})"]


def _cfg(kind: str):
    return load_config(env={}, overrides={"parse": {"format": "raw"}, **CONFIGS[kind],
                                          "stream": {"input_topic": "wire.raw"}})


def _state(kind: str) -> tuple[bytes, dict]:
    cfg = _cfg(kind)
    st_ = PartitionState(cfg)
    for i in range(1, 15):
        for part in LINES[i % 3].format(s=i, b=i % 4).split("\n"):
            st_.pipe.feed(f"src{i % 2}", Line(i, part))
    st_.offset, st_.event_ts = 14, 1767600014.0
    snap = snapshot_state(st_)
    return snap, orjson.loads(zlib.decompress(snap))


def _session_dict() -> dict:
    cfg = _cfg("count")
    st_ = PartitionState(cfg)
    out = []
    for i in range(1, 12):
        out += st_.pipe.feed("api", Line(i, LINES[i % 3].format(s=i, b=i).split("\n")[0]))[0]
    return session_to_dict(out[0])


def _decision(verdict: str, full: bool) -> Decision:
    fa = FastAnswer(verdict, 0.9, "rationale", None, 0.8, 0.7)
    fu = FullAnswer(verdict, "storage", "what", "why", "do", "", None, {"root_cause": "why"}, 0.9, 0.6, ["action"])
    return Decision(verdict, fa, fu if full else None, 12.5, 30.0, False, "inc-1" if full else None)


def _memory() -> dict:
    rows = [["k1", decision_to_state(_decision("abnormal", True))], ["k2", decision_to_state(_decision("normal", False))]]
    inc = {"incidents": [["inc-1", "api", decision_to_state(_decision("abnormal", True)), 1.0, 2.0, 3]],
           "patterns": [["api", ["t1", "t2"], "inc-1"]]}
    return {"v": 1, "fingerprint": "fp", "memory": {"cache": rows, "fast": rows[1:], "full": rows[:1],
                                                     "known": [["api", "t1", 3]], "incidents": inc,
                                                     "fast_incidents": {"incidents": [], "patterns": []}}}


def _alert() -> dict:
    return {"schema": "rlog.alert.v1", "alert_id": "a1", "session_id": "s1", "source": "api", "kind": "window",
            "start_ts": 1.0, "end_ts": 2.0, "n_lines": 3, "templates": [], "headline": "disk full",
            "evidence": [{"line": "ERROR disk full", "count": 2, "first_ts": 1.0, "last_ts": 2.0, "marks": ["error"]},
                         "a bare line"],
            "verdict": "abnormal", "confidence": 0.9, "scores": {}, "category": "storage", "category_confidence": 0.5,
            "interpretation": "i", "root_cause": "r", "action": "a", "rationale": "", "escalated": True,
            "cached": False, "models": {"fast": "f", "full": "g"}, "latency_ms": {}, "errors": [], "close_reason": "",
            "fallback": ["action"], "category_by": "rlog", "incident_id": None}


def _paths(doc, prefix=()):
    yield prefix
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _paths(v, (*prefix, i))


JSON = st.recursive(st.none() | st.booleans() | st.integers(-(2 ** 63), 2 ** 64 - 1) | st.floats(allow_nan=False)
                    | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=8)


def _mutated(doc, data):
    """``doc`` with one node replaced by any JSON value, or removed."""
    doc = orjson.loads(orjson.dumps(doc))
    paths = [p for p in _paths(doc) if p]
    path = data.draw(st.sampled_from(paths))
    parent = doc
    for k in path[:-1]:
        parent = parent[k]
    if data.draw(st.booleans()):
        parent[path[-1]] = data.draw(JSON)
    elif isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent.pop(path[-1])
    return doc


FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("kind", sorted(CONFIGS))
def test_a_valid_checkpoint_decodes_to_the_same_state(kind):
    snap, body = _state(kind)
    cfg = _cfg(kind)
    cp = decode_parse_state(snap, cfg, config_fingerprint(cfg))
    assert cp.offset == 14 and cp.event_ts == 1767600014.0
    assert orjson.loads(orjson.dumps(cp.pipeline.state())) == body["pipeline"]


@FAST
@given(raw=st.binary(max_size=300))
def test_random_bytes_are_refused_by_every_decoder_with_record_error_only(raw):
    cfg = _cfg("id")
    lim = Limits.of(cfg)
    for decode in (lambda b: decode_parse_state(b, cfg, config_fingerprint(cfg)),
                   lambda b: decode_parse_state(zlib.compress(b), cfg, config_fingerprint(cfg)),
                   lambda b: decode_memory(b, "fp", 100), lambda b: decode_memory(zlib.compress(b), "fp", 100),
                   lambda b: decode_session(b, lim), lambda b: decode_escalation(b, lim), decode_alert,
                   lambda b: unseal(StateKeys(b"k" * 16), b"t\x000", b, "parse-state")):
        with contextlib.suppress(RecordError):
            decode(raw)
    # a chunked checkpoint's manifest: never an exception, a refusal at most
    from types import SimpleNamespace as R

    latest_checkpoints([R(key=b"0", value=b"RLCM" + raw, offset=1), R(key=b"0#a#0", value=raw, offset=0)], refused=[])


@FAST
@given(data=st.data(), kind=st.sampled_from(sorted(CONFIGS)))
def test_a_mutated_checkpoint_is_refused_or_yields_a_pipeline_that_keeps_working(data, kind):
    _, body = _state(kind)
    cfg = _cfg(kind)
    bad = _mutated(body, data)
    try:
        cp = decode_parse_state(zlib.compress(orjson.dumps(bad)), cfg, config_fingerprint(cfg))
    except RecordError:
        return
    pipe = cp.pipeline  # what decodes is a pipeline the worker can go on with
    for i in range(20, 26):
        pipe.feed(f"src{i % 3}", Line(i, LINES[i % 3].format(s=i % 60, b=i % 4).split("\n")[0]))
    pipe.tick(1767600100.0)
    pipe.idle()
    for s in pipe.flush()[0]:
        session_to_dict(s)
    pipe.state()


@FAST
@given(data=st.data())
def test_a_mutated_memory_is_refused_or_loads_into_a_cascade(data):
    cfg = load_config(env={})
    bad = _mutated(_memory(), data)
    try:
        m = decode_memory(zlib.compress(orjson.dumps(bad)), "fp", 100)
    except RecordError:
        return
    c = Cascade(None, None, cfg.cascade)  # type: ignore[arg-type]
    c.load_memory(m)
    c.memory_state()


@FAST
@given(data=st.data())
def test_mutated_sessions_and_escalations_are_refused_or_usable(data):
    lim = Limits.of(_cfg("count"))
    sess = _session_dict()
    esc = {"session": sess, "fast": asdict(FastAnswer("abnormal", 0.9)), "fast_ms": 3.0, "unfamiliar": ["t1"]}
    try:
        s = decode_session(orjson.dumps(_mutated(sess, data)), lim)
        session_to_dict(s), s.template_counts(), s.start_ts, s.hosts()
    except RecordError:
        pass
    try:
        e = decode_escalation(orjson.dumps(_mutated(esc, data)), lim)
        session_to_dict(e.session), e.fast.ok
    except RecordError:
        pass


@FAST
@given(data=st.data())
def test_a_mutated_alert_is_refused_or_prints(data):
    try:
        a = decode_alert(orjson.dumps(_mutated(_alert(), data)))
    except RecordError:
        return
    card(a), one_line(a)


def test_seals_bind_key_topic_and_record_and_refuse_what_does_not_verify():
    keys = StateKeys(b"k" * 32)
    payload = b"state"
    sealed = seal(keys, b"t\x000", payload)
    assert unseal(keys, b"t\x000", sealed, "parse-state") == payload
    assert unseal(StateKeys(), b"t\x000", sealed, "parse-state") == payload  # no key: read as before
    assert unseal(StateKeys(b"n" * 32, (b"k" * 32,)), b"t\x000", sealed, "parse-state") == payload  # rotation
    for name, data, k in ((b"t\x001", sealed, keys),  # copied to another partition
                          (b"t\x000", sealed[:-1] + b"X", keys),  # altered
                          (b"t\x000", payload, keys),  # not sealed
                          (b"t\x000", sealed, StateKeys(b"o" * 32))):  # another key
        with pytest.raises(RecordError) as e:
            unseal(k, name, data, "parse-state")
        assert e.value.reason == "unauthentic"


def test_state_keys_come_from_the_environment_and_a_short_key_is_refused():
    from rlog.wire.seal import StateKeyError

    assert not StateKeys.from_env({}).enabled
    assert StateKeys.from_env({"RLOG_STATE_KEY": "x" * 32}).current == b"x" * 32
    with pytest.raises(StateKeyError, match="at least 16"):
        StateKeys.from_env({"RLOG_STATE_KEY": "short"})


def test_a_manifest_that_is_not_one_is_refused_not_a_crash():
    """Regression (issue 30): ``latest_checkpoints([R(key=b'0', value=b'RLCM{}')])`` raised KeyError,
    and ``RLCM{not json`` crash-looped the parse worker."""
    from types import SimpleNamespace as R

    for value in (b"RLCM{}", b"RLCM{not json", b'RLCM{"slot": "c", "gen": "1", "pieces": 1, "bytes": 1}',
                  b'RLCM{"slot": "a", "gen": "1", "pieces": 1e9, "bytes": 1}', b"RLCM[]"):
        refused: list = []
        assert latest_checkpoints([R(key=b"0", value=value, offset=7)], refused=refused) == {}
        assert len(refused) == 1 and refused[0].offset == 7 and isinstance(refused[0].error, RecordError)


def test_the_bounds_admit_everything_a_worker_of_the_same_settings_writes():
    """A count window of 2,000 lines is longer than session.max_len (1,000) and still a valid record."""
    cfg = load_config(env={}, overrides={"parse": {"format": "raw"}, "session": {"mode": "fixed", "size": 2000}})
    st_ = PartitionState(cfg)
    sessions = []
    for i in range(1, 2003):  # a record is complete once the next one starts
        sessions += st_.pipe.feed("api", Line(i, f"request {i} served"))[0]
    [s] = sessions
    assert len(decode_session(orjson.dumps(session_to_dict(s)), Limits.of(cfg)).lines) == 2000
    with pytest.raises(RecordError) as e:
        decode_session(orjson.dumps(session_to_dict(s)), Limits.of(load_config(env={})))
    assert e.value.reason == "bounds"
