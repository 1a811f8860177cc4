"""The record step: header match, multi-line merge, dead letters for what cannot become a record."""

import io

from rlog.pipeline.formats import get_format
from rlog.pipeline.lines import DeadLetter, read_lines
from rlog.pipeline.records import LogRecord, RecordParser

FMT = get_format("<Date> <Time> <Level>: <Content>")


def lines(data: bytes, max_chars=1000):
    return list(read_lines(io.BytesIO(data), max_chars))


def test_multiline_merge_of_stack_trace():
    p = RecordParser(FMT, "app")
    out = []
    for ln in lines(b"2024-01-01 10:00:00 ERROR: boom\nTraceback (most recent call last):\n  File x\n"
                    b"2024-01-01 10:00:01 INFO: ok\n"):
        out += p.feed(ln)
    out += p.flush()
    assert [type(r) for r in out] == [LogRecord, LogRecord]
    assert out[0].content == "boom\nTraceback (most recent call last):\nFile x"
    assert out[0].seq == 1 and out[1].seq == 4


def test_orphan_continuation_and_empty_lines_are_dead_letters():
    p = RecordParser(FMT, "app")
    out = []
    for ln in lines(b"no header here\n\n   \n"):
        out += p.feed(ln)
    assert all(isinstance(d, DeadLetter) for d in out) and len(out) == 3
    assert "does not match log format" in out[0].reason
    assert out[1].reason == "empty line"


def test_without_multiline_unmatched_lines_are_rejected():
    p = RecordParser(FMT, "app", multiline=False)
    out = []
    for ln in lines(b"2024-01-01 10:00:00 ERROR: boom\n  at frame\n"):
        out += p.feed(ln)
    assert isinstance(out[0], LogRecord) and isinstance(out[1], DeadLetter)


def test_continuation_is_capped_and_every_line_past_the_cap_is_a_dead_letter():
    p = RecordParser(FMT, "app", max_record_lines=3)
    data = b"2024-01-01 10:00:00 ERROR: boom\n" + b"  frame\n" * 50
    dead = []
    for ln in lines(data):
        dead += p.feed(ln)
    (rec,) = p.flush()
    assert rec.raw.count("\n") == 2 and "continuation_capped" in rec.flags
    assert len(dead) == 48 and all(isinstance(d, DeadLetter) for d in dead)  # 1 + 2 kept, 48 accounted for
    assert [d.seq for d in dead] == list(range(4, 52)) and "record cap" in dead[0].reason and "line 1" in dead[0].reason


def test_only_lines_that_look_like_continuations_join_a_record():
    # seen: multi-line merging swallowed 8 of 10 garbage lines into the record before them
    trace = (b"2024-01-01 10:00:00 ERROR: request failed\n"
             b"java.lang.IllegalStateException: pool closed\n"
             b"\tat com.acme.Pool.get(Pool.java:42)\n"
             b"Caused by: java.io.IOException - broken pipe\n"
             b"\t... 12 more\n"
             b"Traceback (most recent call last):\n"
             b'  File "app.py", line 3, in <module>\n'
             b"ValueError: bad value\n"
             b"}\n")
    garbage = b"".join(b"#@! garbage %d zz\n" % i for i in range(10))
    p = RecordParser(FMT, "app")
    out = []
    for ln in lines(trace + garbage + b"2024-01-01 10:00:01 INFO: ok\n"):
        out += p.feed(ln)
    out += p.flush()
    recs = [r for r in out if isinstance(r, LogRecord)]
    dead = [d for d in out if isinstance(d, DeadLetter)]
    assert len(recs) == 2 and recs[0].raw.count("\n") == 8  # the whole trace, nothing else
    assert len(dead) == 10 and all("does not look like a continuation" in d.reason for d in dead)
    assert [d.seq for d in dead] == list(range(10, 20))


def test_an_empty_continuation_pattern_joins_any_line_as_before():
    p = RecordParser(FMT, "app", continuation="")
    for ln in lines(b"2024-01-01 10:00:00 ERROR: boom\nplain wrapped text\n"):
        assert p.feed(ln) == []
    (rec,) = p.flush()
    assert rec.content == "boom\nplain wrapped text"


def test_a_checkpoint_over_the_record_limit_is_written_in_pieces_and_read_back_whole():
    """A parser state with thousands of open sessions is bigger than one Kafka record: it is
    written in pieces, the manifest last, in the slot the current one is not in, so a torn
    write leaves the previous checkpoint readable."""
    import os
    from types import SimpleNamespace as Rec

    from stream.checkpoint import checkpoint_records, latest_checkpoints

    slots: dict[bytes, str] = {}
    small = b"x" * 100
    assert checkpoint_records(b"0", small, 1000, slots) == [(b"0", small)]  # fits: one record, as before
    big = os.urandom(5000)
    recs = checkpoint_records(b"1", big, 1000, slots)
    assert len(recs) > 5 and all(len(v) <= 1000 for _, v in recs) and recs[-1][0] == b"1"
    topic = [Rec(key=b"0", value=small), *(Rec(key=k, value=v) for k, v in recs)]
    restored: dict[bytes, str] = {}
    assert latest_checkpoints(topic, restored) == {b"0": small, b"1": big} and restored == slots
    newer = checkpoint_records(b"1", os.urandom(5000), 1000, restored)  # a restarted writer: the other slot
    torn = topic + [Rec(key=k, value=v) for k, v in newer[:-1]]  # crashed before its manifest
    assert latest_checkpoints(torn)[b"1"] == big  # the previous checkpoint is still whole
    done = torn + [Rec(key=b"1", value=newer[-1][1])]
    assert latest_checkpoints(done)[b"1"] != big and len(latest_checkpoints(done)[b"1"]) == 5000
    again = checkpoint_records(b"1", os.urandom(3000), 1000, restored)  # back to the first slot: bounded keys
    assert {k for k, _ in again} <= {k for k, _ in recs}
    broken = done + [Rec(key=k, value=v) for k, v in again[:1]] + [Rec(key=b"1", value=again[-1][1])]
    assert b"1" not in latest_checkpoints(broken)  # a manifest whose pieces are not all there: refused, not spliced


def test_a_checkpoint_of_another_topic_or_other_settings_is_discarded_with_the_reason():
    """Regression: restart skipping was keyed by partition number only, so reusing the prefix for
    a new input topic skipped as many lines of it as the old topic's checkpoint had read."""
    import pytest

    from rlog.config import load_config
    from rlog.pipeline.lines import Line
    from rlog.wire import RecordError
    from stream.checkpoint import PartitionState, load_snapshot, snapshot_state

    old = load_config(None, overrides={"stream": {"input_topic": "logs.v1"}})
    st = PartitionState(old)
    for i in range(1, 44):
        st.pipe.feed("app", Line(i, f"request {i} served"))
    st.offset = 42
    snap = snapshot_state(st)
    assert load_snapshot(snap, old).offset == 42  # the same worker continues from it
    with pytest.raises(RecordError) as e:
        load_snapshot(snap, load_config(None, overrides={"stream": {"input_topic": "logs.v2"}}))
    assert e.value.reason == "topic" and "logs.v1" in str(e.value)
    with pytest.raises(RecordError) as e:
        load_snapshot(snap, load_config(None, overrides={"stream": {"input_topic": "logs.v1"},
                                                         "session": {"size": 7}}))
    assert e.value.reason == "settings"
    # when to close what is open is not what the state is: changing it keeps the checkpoint
    assert load_snapshot(snap, load_config(None, overrides={"stream": {"input_topic": "logs.v1"},
                                                            "session": {"timeout_s": 9},
                                                            "parse": {"multiline_flush_s": 1}})).offset == 42


def test_year_less_times_run_on_across_new_year_and_a_late_line_stays_in_the_old_year():
    # seen: syslog lines carry no year, so January read as eleven months before December and every
    # January line was unsessioned in time windows
    from rlog.pipeline.lines import Line

    fmt = get_format("linux")
    assert fmt.yearless and not get_format("rsyslog").yearless and not get_format("log4j").yearless
    p = RecordParser(fmt, "host", multiline=False)
    stamps = ["Dec 31 23:59:58", "Dec 31 23:59:59", "Jan  1 00:00:00", "Dec 31 23:59:59", "Jan  1 00:00:05"]
    ts = [p.feed(Line(i, f"{t} combo sshd[1]: session opened"))[0].ts for i, t in enumerate(stamps)]
    assert [t - ts[0] for t in ts] == [0, 1, 2, 1, 7]
    again = RecordParser(fmt, "host", multiline=False)  # a restored parser continues in the same year
    again.load_state(p.state())
    (r,) = again.feed(Line(9, "Jan  1 00:01:00 combo sshd[1]: session closed"))
    assert r.ts - ts[0] == 62


def test_time_windows_keep_every_line_across_new_year():
    from rlog.config import load_config
    from rlog.pipeline.lines import Line
    from rlog.pipeline.pipeline import Pipeline

    cfg = load_config(None, overrides={"parse": {"format": "linux", "multiline": False},
                                       "session": {"mode": "fixed", "by": "time", "size": 60}})
    p = Pipeline(cfg)
    closed = []
    for i in range(120):  # two minutes around midnight, one line a second
        sec = 23 * 3600 + 59 * 60 + i
        day, sec = ("Dec 31", sec) if sec < 86400 else ("Jan  1", sec - 86400)
        stamp = f"{day} {sec // 3600:02d}:{sec // 60 % 60:02d}:{sec % 60:02d}"
        closed += p.feed("host", Line(i, f"{stamp} combo sshd[1]: tick {i}"))[0]
    closed += p.flush()[0]
    assert p.sessionizer.stats.unsessioned == 0
    assert sum(len(s.lines) for s in closed) == 120
