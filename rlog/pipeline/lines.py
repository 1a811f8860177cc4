"""Physical lines: decode bytes safely, cap their length, read files in bounded memory.

The first step of the flow (line → record → template → session → verdict → alert). A
line that cannot go further is a ``DeadLetter`` with the reason: the caller routes it
(dead-letter topic, file, counter), nothing vanishes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO


@dataclass(slots=True)
class DeadLetter:
    """Input that could not become a record, kept with the reason it was rejected."""

    source: str
    seq: int
    raw: str
    reason: str


@dataclass(frozen=True, slots=True)
class Line:
    """A decoded physical line; ``flags`` says what was repaired on the way."""

    seq: int
    text: str
    flags: tuple[str, ...] = ()


def decode_line(data: bytes, seq: int, max_chars: int, truncated: bool = False) -> Line:
    """Decode bytes as UTF-8, replacing invalid bytes, and cap the length.

    Non-UTF-8 input is common (binary payloads, latin-1 apps); replacing instead of failing
    keeps the event while the flag lets metrics count how often it happens.
    """
    flags: list[str] = []
    data = data.rstrip(b"\r\n")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("utf-8", errors="replace")
        flags.append("non_utf8")
    if "\x00" in text:
        text = text.replace("\x00", "")
        flags.append("nul_bytes")
    if len(text) > max_chars or truncated:
        text = text[:max_chars]
        flags.append("truncated")
    return Line(seq, text, tuple(flags))


def read_lines(stream: BinaryIO, max_chars: int) -> Iterator[Line]:
    """Yield decoded lines of a binary stream with memory bounded by ``max_chars``.

    A giant line (a 1 GB dump with no newline) is read in bounded chunks: the head is kept,
    the rest skipped, so one bad line cannot exhaust memory.
    """
    limit = max_chars * 4 + 4  # UTF-8 needs at most 4 bytes per character
    seq = 0
    while True:
        chunk = stream.readline(limit)
        if not chunk:
            return
        seq += 1
        truncated = False
        if not chunk.endswith(b"\n") and len(chunk) >= limit:
            truncated = True
            while True:  # discard the remainder of this physical line
                rest = stream.readline(limit)
                if not rest or rest.endswith(b"\n"):
                    break
        yield decode_line(chunk, seq, max_chars, truncated)
