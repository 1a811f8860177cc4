"""Ground truth for labelled logs: per line, then per session, read in step with the logs.

The simulator writes one truth row per log line (``truth.csv``). Reading it in lockstep
with the log file keeps memory constant however long the file is, and session truth is
derived from the lines a session actually holds, so any windowing the user picks is
scored exactly, not just the one the truth file was written for.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TRUTH_COLUMNS = ("line", "ts", "source", "host", "label", "incident", "scenario", "category")


@dataclass(frozen=True, slots=True)
class LineTruth:
    """What one line really is: abnormal or not, and which incident (fault or look-alike) wrote it."""

    label: bool
    incident: str | None = None
    scenario: str | None = None
    category: str | None = None


NORMAL = LineTruth(False)


@dataclass(frozen=True)
class SessionTruth:
    """A session's label, and for abnormal ones the dominant incident's scenario and category.

    ``scenario`` of a normal session names a benign look-alike when it holds one: those are
    the sessions a detector must *not* flag, and are scored separately.
    """

    label: bool
    scenario: str | None = None
    category: str | None = None
    incident: str | None = None

    @property
    def lookalike(self) -> bool:
        return not self.label and self.scenario is not None


def session_truth(truths: Iterable[LineTruth | None]) -> SessionTruth | None:
    """Abnormal when any line is; the incident with most abnormal lines (first on ties) names it."""
    abnormal: Counter = Counter()
    benign: Counter = Counter()
    seen = False
    for t in truths:
        if t is None:
            continue
        seen = True
        if t.label:
            abnormal[(t.incident, t.scenario, t.category)] += 1
        elif t.scenario is not None and t.category is None:  # a look-alike (fault lines carry a category)
            benign[(t.incident, t.scenario, t.category)] += 1
    if not seen:
        return None
    if abnormal:
        (inc, scen, cat), _ = abnormal.most_common(1)[0]
        return SessionTruth(True, scen, cat, inc)
    if benign:
        (inc, scen, _), _ = benign.most_common(1)[0]
        return SessionTruth(False, scen, None, inc)
    return SessionTruth(False)


def truth_row(line: int, ts: float | None, source: str, host: str, t: LineTruth) -> list[Any]:
    return [line, "" if ts is None else f"{ts:.6f}".rstrip("0").rstrip("."), source, host, int(t.label),
            t.incident or "", t.scenario or "", t.category or ""]


class TruthReader:
    """Line truth by line number from a ``truth.csv`` written in line order.

    Requests must come in non-decreasing line order (they do: lines are read in order).
    Equal truths are shared objects, so sessions holding many lines cost one pointer each.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._f = open(self.path, newline="", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self._rows: Iterator[list[str]] = csv.reader(self._f)
        header = next(self._rows, None)
        if header is None or tuple(header[: len(TRUTH_COLUMNS)]) != TRUTH_COLUMNS:
            self._f.close()
            raise ValueError(f"{self.path}: not a truth file (expected header {','.join(TRUTH_COLUMNS)})")
        self._next: tuple[int, LineTruth] | None = None
        self._interned: dict[tuple, LineTruth] = {}
        self.rows = 0

    def _read(self) -> tuple[int, LineTruth] | None:
        row = next(self._rows, None)
        if row is None:
            return None
        self.rows += 1
        try:
            n, label = int(row[0]), row[4] == "1"
        except (ValueError, IndexError):
            raise ValueError(f"{self.path}: bad truth row {self.rows + 1}: {row!r}") from None
        key = (label, row[5] or None, row[6] or None, row[7] or None)
        t = self._interned.get(key)
        if t is None:
            t = NORMAL if key == (False, None, None, None) else LineTruth(*key)
            if len(self._interned) < 100_000:
                self._interned[key] = t
        return n, t

    def get(self, line: int) -> LineTruth | None:
        """Truth of ``line`` (1-based), or None when the file has no row for it."""
        if self._next is None:
            self._next = self._read()
        while self._next is not None and self._next[0] < line:
            self._next = self._read()
        if self._next is not None and self._next[0] == line:
            return self._next[1]
        return None

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> TruthReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
