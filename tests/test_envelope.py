"""JSON envelopes, per-source formats and line ground truth through the real pipeline."""

from __future__ import annotations

import orjson
import pytest

from rlog.config import ConfigError, load_config
from rlog.pipeline.envelope import EnvelopeError, unwrap
from rlog.pipeline.lines import Line
from rlog.pipeline.pipeline import Pipeline
from rlog.truth import NORMAL, LineTruth, TruthReader, session_truth

HDFS = "081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 for block blk_38865049064139660 terminating"
SYSLOG = "2026-01-05T08:00:01.123000+00:00 dn-03 kernel: [ 12.5] sd 2:0:0:0: [sdc] I/O error"


def env(msg: str, **kw) -> str:
    return orjson.dumps({"message": msg, **kw}).decode()


def test_unwrap_modes():
    u = unwrap(env("hello", source="api", host={"name": "gw-1"}))
    assert (u.message, u.source, u.host) == ("hello", "api", "gw-1")
    assert unwrap(env("x", service="orders")).source == "orders"
    assert unwrap('{"log": "fluent-bit style", "hostname": "h1"}').message == "fluent-bit style"
    raw = "plain text line {with braces}"
    assert unwrap(raw).message is raw
    structured = '{"level": "info", "event": "no message field"}'
    assert unwrap(structured).message == structured  # auto: structured app logs stay whole
    assert unwrap(env("x"), "none").message == env("x")
    for bad, why in (("plain", "not a JSON object"), ("{broken", "invalid JSON"), ('{"event": 1}', "no string message"),
                     ('{"message": 5}', "no string message")):
        with pytest.raises(EnvelopeError, match=why):
            unwrap(bad, "json")


def test_pipeline_routes_envelopes_to_per_source_formats_and_keeps_truth():
    cfg = load_config(env={}, overrides={"parse": {"formats": {"storage": "hdfs", "syslog": "rsyslog"}, "envelope": "json"},
                                         "session": {"size": 2}})
    pipe = Pipeline(cfg)
    bad = LineTruth(True, "F0001", "disk_failure", "hardware")
    s1, d1 = pipe.feed("file", Line(1, env(HDFS, source="storage", host="dn-03")), NORMAL)
    s2, d2 = pipe.feed("file", Line(2, env(SYSLOG, source="syslog", host="dn-03")), bad)
    s3, d3 = pipe.feed("file", Line(3, env(SYSLOG.replace("sdc", "sdd"), source="syslog", host="dn-03")), NORMAL)
    s4, d4 = pipe.feed("file", Line(4, "not json"), None)
    assert not (d1 or d2 or d3) and not (s1 or s2 or s3 or s4)  # records wait for a possible continuation
    assert len(d4) == 1 and d4[0].reason.startswith("bad envelope") and pipe.stats.dead_letters["bad envelope"] == 1
    closed, _ = pipe.flush()
    (sess,) = [s for s in closed if s.source == "syslog"]
    assert sess.source == "syslog" and sess.hosts() == ["dn-03"]
    assert sess.lines[0].template.startswith("[ <*>] sd <*>")  # the rsyslog header is not part of the template
    assert sess.label is True
    t = sess.truth
    assert (t.label, t.scenario, t.category, t.incident) == (True, "disk_failure", "hardware", "F0001")
    assert set(pipe.templates()) == {"storage", "syslog"}


def test_unknown_per_source_format_is_a_config_error():
    with pytest.raises(ConfigError, match="parse.formats"):
        load_config(env={}, overrides={"parse": {"formats": {"api": "no-such-format"}}})


def test_session_truth_prefers_abnormal_majority_then_lookalikes():
    disk = LineTruth(True, "F1", "disk_failure", "hardware")
    net = LineTruth(True, "F2", "network_partition", "network")
    retry = LineTruth(False, "B1", "retry_success", None)
    consequence = LineTruth(False, "F1", "disk_failure", "hardware")  # a fault's routine follow-up line
    assert session_truth([NORMAL, net, disk, disk]) .scenario == "disk_failure"
    assert session_truth([net, disk]).scenario == "network_partition"  # tie: first seen
    look = session_truth([NORMAL, retry, consequence])
    assert not look.label and look.lookalike and look.scenario == "retry_success"
    only_consequence = session_truth([NORMAL, consequence])
    assert not only_consequence.label and not only_consequence.lookalike
    assert session_truth([None, None]) is None


def test_truth_reader_reads_in_lockstep(tmp_path):
    p = tmp_path / "truth.csv"
    p.write_text("line,ts,source,host,label,incident,scenario,category\n"
                 "1,1.0,api,gw-1,0,,,\n3,2.0,api,gw-1,1,F0001,disk_failure,hardware\n4,3.0,api,gw-1,0,B0001,retry_success,\n")
    with TruthReader(p) as r:
        assert r.get(1) is NORMAL
        assert r.get(2) is None  # no row for line 2
        t = r.get(3)
        assert t.label and t.category == "hardware"
        assert r.get(4).scenario == "retry_success" and not r.get(4).label
        assert r.get(9) is None
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="not a truth file"):
        TruthReader(tmp_path / "bad.csv")


@pytest.mark.parametrize(("stamp", "flag"), [("nan", "bad_time"), ("inf", "bad_time"), ("1e300", "bad_time"),
                                             ("32503680000", "bad_time"),  # year 3000
                                             ("1300000000", "time_jump")])  # five years ahead of its source
def test_a_line_with_an_absurd_time_cannot_crash_time_windows(stamp, flag):
    """Regression: a NaN event time raised ValueError in the time sessionizer (poison pill)."""
    cfg = load_config(env={}, overrides={"parse": {"format": "hpc"}, "session": {"by": "time", "size": 60}})
    pipe = Pipeline(cfg)
    line = "{n} node-1 unix.hw state_change.unavailable {t} 1 Component State Change"
    sessions = []
    for n, t in enumerate(["1131566461", "1131566462", stamp, "1131566470", "1131566530"]):
        s, d = pipe.feed("hpc", Line(n, line.format(n=n, t=t)))
        assert d == []
        sessions += s
    sessions += pipe.flush()[0]
    assert sum(len(s.lines) for s in sessions) == 5  # every line is in a session
    assert pipe.stats.flags[flag] == 1 and pipe.last_ts == 1131566530
    assert pipe.sessionizer.stats.unsessioned == 0


def test_a_line_that_breaks_a_stage_becomes_a_dead_letter_and_the_stream_goes_on(caplog):
    """Whatever bug an input finds in parsing, that line is dead-lettered with the error and
    the lines after it are parsed as usual (no poison pill)."""
    pipe = Pipeline(load_config(env={}, overrides={"session": {"size": 2}}))
    real_add = pipe.sessionizer.add

    def add(source, line):  # a fault injected where a sessionizer bug would surface
        if "poison" in line.raw:
            raise ValueError("cannot convert float NaN to integer")
        return real_add(source, line)

    pipe.sessionizer.add = add
    out, dead = [], []
    for n, text in enumerate(["job 1 started", "job poison started", "job 2 started", "job 3 started"]):
        s, d = pipe.feed("app", Line(n, text))
        out += s
        dead += d
    assert [d.seq for d in dead] == [1] and "ValueError: cannot convert float NaN" in dead[0].reason
    assert dead[0].raw == "job poison started" and "sent to the dead letters" in caplog.text
    assert [[x.seq for x in s.lines] for s in out] == [[0, 2]]
    assert pipe.stats.dead_letters["internal error in parse"] == 1
