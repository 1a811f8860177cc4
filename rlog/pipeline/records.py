"""Log records from lines: header match in the source's format, multi-line merge.

Everything here is pure and bounded so the same code serves a file, a Kafka partition
and a benchmark. A line that cannot become a record is returned as a ``DeadLetter`` with
the reason: the caller routes it (dead-letter topic, file, counter), nothing vanishes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from rlog.config import CONTINUATION
from rlog.pipeline.formats import LogFormat
from rlog.pipeline.lines import DeadLetter, Line
from rlog.truth import LineTruth

# A year-less time is read in year 2000 (``LogFormat.yearless``); each year the source's clock
# wraps adds one of these. Every year is laid end to end as a leap year: intervals stay right
# across New Year, and the date itself is unknown anyway (a session open across the end of a
# February that has no 29th sees a day's gap there).
YEAR_S = 366 * 86400.0


@dataclass(slots=True)
class LogRecord:
    """One log event (possibly several physical lines, e.g. a stack trace)."""

    source: str
    seq: int
    raw: str
    content: str
    fields: dict[str, str] = field(default_factory=dict)
    ts: float | None = None
    label: bool | None = None
    flags: tuple[str, ...] = ()
    host: str = ""
    truth: LineTruth | None = None  # ground truth, when the input comes with a truth file


class RecordParser:
    """Stateful per-source parser: header match, multi-line merge, dead letters.

    A line that does not match the header is a continuation of the previous record (stack
    traces, wrapped messages) when ``multiline`` is on and it looks like one (``continuation``,
    a regex; empty: any line); the merged record is capped at ``max_record_lines`` lines /
    ``max_record_chars`` characters. Every line past the cap is a dead letter, and so is one
    that looks like no continuation: merged, it would vanish inside another record.
    """

    def __init__(self, fmt: LogFormat, source: str, *, multiline: bool = True, continuation: str = CONTINUATION,
                 max_record_lines: int = 200, max_record_chars: int = 65536) -> None:
        self.fmt = fmt
        self.source = source
        self.multiline = multiline
        self.continuation = re.compile(continuation) if continuation else None
        self.max_record_lines = max_record_lines
        self.max_record_chars = max_record_chars
        self._pending: LogRecord | None = None
        self._pending_lines = 0
        self._years = 0  # New Years this source's year-less clock has passed
        self._last_time: float | None = None  # its latest year-less time, years added

    def feed(self, line: Line, *, host: str = "", truth: LineTruth | None = None) -> list[LogRecord | DeadLetter]:
        """Consume one line; return records completed by it and any dead letter.

        ``truth`` (from a truth file) overrides a label the format reads from the line.
        """
        text = line.text
        if not text.strip():
            return [DeadLetter(self.source, line.seq, text, "empty line")]
        fields = self.fmt.match(text)
        if fields is None:
            if self.multiline and self._pending is not None:
                if self.continuation is None or self.continuation.match(text):
                    return self._append(line.seq, text)
                return [DeadLetter(self.source, line.seq, text,
                                   f"line does not match log format {self.fmt.name!r} ({self.fmt.pattern}) and "
                                   "does not look like a continuation of the previous record (parse.continuation)")]
            return [DeadLetter(self.source, line.seq, text,
                               f"line does not match log format {self.fmt.name!r} ({self.fmt.pattern})")]
        content = fields.pop("Content", "").strip()
        if not content:
            out = self.flush()
            out.append(DeadLetter(self.source, line.seq, text, "no message content after the header"))
            return out
        out = self.flush()
        ts = self.fmt.timestamp(fields)
        if ts is not None and self.fmt.yearless:
            ts = self._across_years(ts)
        flags = line.flags
        if ts is None and self.fmt.time_fields and any(fields.get(f, "").strip() for f in self.fmt.time_fields):
            flags = (*flags, "bad_time")  # a time was written but is unreadable or absurd: read as none
        self._pending = LogRecord(
            source=self.source, seq=line.seq, raw=text, content=content, fields=fields,
            ts=ts, label=truth.label if truth is not None else self.fmt.label(fields),
            flags=flags, host=host, truth=truth,
        )
        self._pending_lines = 1
        if not self.multiline:
            out.extend(self.flush())
        return out

    def _across_years(self, ts: float) -> float:
        """A year-less time in the source's current year, or the next or the previous one,
        whichever is nearest its latest time: December 31 then January 1 is one second
        later, not eleven months earlier (which made every January line unsessioned), and
        a December line arriving late after January ones stays in the old year."""
        last = self._last_time
        d = 0 if last is None else min((0, 1, -1), key=lambda d: abs(ts + (self._years + d) * YEAR_S - last))
        at = ts + (self._years + d) * YEAR_S
        if d == 1:
            self._years += 1
        if last is None or at > last:
            self._last_time = at
        return at

    def _append(self, seq: int, text: str) -> list[LogRecord | DeadLetter]:
        rec = self._pending
        assert rec is not None
        if self._pending_lines >= self.max_record_lines or len(rec.raw) >= self.max_record_chars:
            if "continuation_capped" not in rec.flags:
                rec.flags = (*rec.flags, "continuation_capped")
            return [DeadLetter(self.source, seq, text,
                               f"continuation past the record cap ({self.max_record_lines} lines / "
                               f"{self.max_record_chars} characters; parse.max_record_lines) of the record at "
                               f"line {rec.seq}")]
        room = self.max_record_chars - len(rec.raw) - 1
        piece = text[:room]
        if len(piece) < len(text) and "continuation_capped" not in rec.flags:
            rec.flags = (*rec.flags, "continuation_capped")  # this line is kept in part
        rec.raw += "\n" + piece
        rec.content += "\n" + piece.strip()
        self._pending_lines += 1
        return []

    def state(self) -> dict:
        """The record waiting for continuation lines, as plain data (for checkpoints)."""
        r = self._pending
        years = [self._years, self._last_time]
        if r is None:
            return {"pending": None, "years": years}
        return {"pending": [r.source, r.seq, r.raw, r.content, r.fields, r.ts, r.label, list(r.flags), r.host],
                "lines": self._pending_lines, "years": years}

    def load_state(self, d: dict) -> None:
        self._years, self._last_time = d.get("years", [0, None])
        p = d["pending"]
        if p is None:
            self._pending, self._pending_lines = None, 0
            return
        source, seq, raw, content, fields, ts, label, flags, host = p
        self._pending = LogRecord(source, seq, raw, content, fields, ts, label, tuple(flags), host)
        self._pending_lines = d["lines"]

    @property
    def pending(self) -> bool:
        """A record is held, waiting for continuation lines."""
        return self._pending is not None

    @property
    def pending_ts(self) -> float | None:
        """Event time of the held record (None: none held, or it has no time)."""
        return self._pending.ts if self._pending is not None else None

    def flush(self) -> list[LogRecord | DeadLetter]:
        """Emit the pending record (end of input, or an idle partition)."""
        rec, self._pending = self._pending, None
        return [rec] if rec is not None else []
