"""The line step: bytes decoded, repaired and capped, files read in bounded memory."""

import io

from rlog.pipeline.lines import read_lines


def lines(data: bytes, max_chars=1000):
    return list(read_lines(io.BytesIO(data), max_chars))


def test_non_utf8_is_replaced_and_flagged():
    (ln,) = lines(b"2024-01-01 10:00:00 ERROR: bad \xff\xfe bytes\n")
    assert "\ufffd" in ln.text and "non_utf8" in ln.flags


def test_huge_line_is_truncated_with_bounded_memory():
    big = b"2024-01-01 10:00:00 INFO: " + b"x" * 1_000_000 + b"\nnext line\n"
    out = lines(big, max_chars=2000)
    assert len(out) == 2
    assert len(out[0].text) == 2000 and "truncated" in out[0].flags
    assert out[1].text == "next line" and out[1].seq == 2


def test_crlf_nul_and_missing_final_newline():
    out = lines(b"a\r\nb\x00c")
    assert [ln.text for ln in out] == ["a", "bc"]
    assert "nul_bytes" in out[1].flags
