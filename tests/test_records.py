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
