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


def test_continuation_is_capped():
    p = RecordParser(FMT, "app", max_record_lines=3)
    data = b"2024-01-01 10:00:00 ERROR: boom\n" + b"  frame\n" * 50
    for ln in lines(data):
        p.feed(ln)
    (rec,) = p.flush()
    assert rec.raw.count("\n") == 2 and "continuation_capped" in rec.flags


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
    from stream.checkpoint import Discarded, PartitionState, load_snapshot, snapshot_state

    old = load_config(None, overrides={"stream": {"input_topic": "logs.v1"}})
    st = PartitionState(old)
    for i in range(1, 44):
        st.pipe.feed("app", Line(i, f"request {i} served"))
    st.offset = 42
    snap = snapshot_state(st)
    assert load_snapshot(snap, old).offset == 42  # the same worker continues from it
    with pytest.raises(Discarded) as e:
        load_snapshot(snap, load_config(None, overrides={"stream": {"input_topic": "logs.v2"}}))
    assert e.value.reason == "topic" and "logs.v1" in str(e.value)
    with pytest.raises(Discarded) as e:
        load_snapshot(snap, load_config(None, overrides={"stream": {"input_topic": "logs.v1"},
                                                         "session": {"size": 7}}))
    assert e.value.reason == "settings"
    # when to close what is open is not what the state is: changing it keeps the checkpoint
    assert load_snapshot(snap, load_config(None, overrides={"stream": {"input_topic": "logs.v1"},
                                                            "session": {"timeout_s": 9},
                                                            "parse": {"multiline_flush_s": 1}})).offset == 42
