"""Open incidents: one judgement and one explanation for every session of the same trouble.

A failing service logs its failure in window after window. Each window is a new session
to the verdict memory (its template set and counts differ a little every time), so without
this every one of them paid R-Log-fast, and every flag paid R-Log again for the same root
cause. An incident is remembered by the *unfamiliar part* of the sessions that opened it:
the templates the known-normal memory does not cover (``KnownNormal.unfamiliar``), that
is, whatever made the session worth a model call.

- **Recall**: a later session of the same source whose unfamiliar part contains every
  template of one of the incident's patterns is part of it, and is answered from it with
  no model call. Abnormality is the presence of failing events, so a session holding
  everything that made another one abnormal is abnormal too, whatever else it holds.
- **Similar**: a flagged session whose unfamiliar part overlaps a pattern by at least
  ``min_overlap`` (Jaccard) takes the incident's explanation instead of asking R-Log again,
  and its own pattern joins the incident.

An incident stays open ``window_s`` after its last session (event time where the lines
carry it, else the wall clock): after that the same trouble is news again and pays once.
The window is also what bounds a wrong verdict's reach. Patterns are a bounded LRU;
everything is plain data so it rides in the stream's checkpoints.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

D = TypeVar("D")


def pattern_id(source: str, templates: Iterable[str]) -> str:
    """A stable id of one source's set of template ids (an incident is named by its first)."""
    text = source + "\x1e" + ",".join(sorted(templates))
    return hashlib.blake2b(text.encode("utf-8"), digest_size=8).hexdigest()


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 0.0


@dataclass
class Incident(Generic[D]):
    incident_id: str
    source: str
    decision: D  # the judgement (and explanation) every session of the incident is given
    first_ts: float
    last_ts: float
    sessions: int = 1
    patterns: int = 0  # live patterns naming it; the incident is forgotten with its last one


class Incidents(Generic[D]):
    """Bounded memory of open incidents and the unfamiliar template sets (patterns) they hold."""

    def __init__(self, size: int, window_s: float, min_overlap: float,
                 clock: Callable[[], float] = time.time) -> None:
        self.size, self.window_s, self.min_overlap = size, window_s, min_overlap
        self._clock = clock
        self._patterns: OrderedDict[str, tuple[str, frozenset[str], str]] = OrderedDict()  # id → source, set, incident
        self._by_template: dict[tuple[str, str], set[str]] = {}  # (source, template id) → pattern ids
        self._incidents: dict[str, Incident[D]] = {}

    def when(self, ts: float | None) -> float:
        """The time a session is placed at: its last line's event time, else now."""
        return ts if ts is not None else self._clock()

    def _open(self, inc: Incident[D], at: float) -> bool:
        return abs(at - inc.last_ts) <= self.window_s

    def _candidates(self, source: str, unfamiliar: frozenset[str], at: float):
        """(pattern id, pattern set, incident) of open incidents sharing a template with ``unfamiliar``."""
        seen: set[str] = set()
        stale: list[str] = []
        for tid in unfamiliar:
            for pid in self._by_template.get((source, tid), ()):
                if pid in seen:
                    continue
                seen.add(pid)
                _, pset, iid = self._patterns[pid]
                inc = self._incidents[iid]
                if not self._open(inc, at):
                    stale.append(pid)
                    continue
                yield pid, pset, inc
        for pid in stale:
            self._drop(pid)

    def recall(self, source: str, unfamiliar: frozenset[str], ts: float | None) -> Incident[D] | None:
        """The open incident one of whose patterns ``unfamiliar`` wholly contains (the most specific)."""
        if self.size <= 0 or not unfamiliar:
            return None
        at = self.when(ts)
        best = None
        for pid, pset, inc in list(self._candidates(source, unfamiliar, at)):
            if pset <= unfamiliar and (best is None or len(pset) > len(best[1])):
                best = (pid, pset, inc)
        if best is None:
            return None
        self._patterns.move_to_end(best[0])
        self._seen(best[2], at)
        return best[2]

    def similar(self, source: str, unfamiliar: frozenset[str], ts: float | None,
                usable: Callable[[D], bool] = lambda d: True) -> Incident[D] | None:
        """The open incident with a pattern overlapping ``unfamiliar`` most, if by ``min_overlap`` or more;
        ``usable`` filters incidents by their decision (e.g. only explained ones). The session's own
        pattern joins it."""
        if self.size <= 0 or not unfamiliar:
            return None
        at = self.when(ts)
        best, score = None, 0.0
        for _, pset, inc in list(self._candidates(source, unfamiliar, at)):
            j = jaccard(pset, unfamiliar)
            if j >= self.min_overlap and j > score and usable(inc.decision):
                best, score = inc, j
        if best is not None:
            self._seen(best, at)
            self._add_pattern(source, unfamiliar, best.incident_id)
        return best

    def open(self, source: str, unfamiliar: frozenset[str], ts: float | None, decision: D) -> Incident[D] | None:
        """Open an incident for a session judged abnormal; None when memory is off or nothing was unfamiliar."""
        if self.size <= 0 or not unfamiliar:
            return None
        at = self.when(ts)
        iid = pattern_id(source, unfamiliar)
        inc = self._incidents.get(iid)
        if inc is not None and self._open(inc, at):
            inc.decision = decision
            self._seen(inc, at)
        else:
            if inc is not None:
                self._forget_incident(iid)
            inc = self._incidents[iid] = Incident(iid, source, decision, at, at)
        self._add_pattern(source, unfamiliar, iid)
        return inc

    def _seen(self, inc: Incident[D], at: float) -> None:
        inc.sessions += 1
        inc.last_ts = max(inc.last_ts, at)

    def _add_pattern(self, source: str, templates: frozenset[str], iid: str) -> None:
        pid = pattern_id(source, templates)
        if pid in self._patterns:
            if self._patterns[pid][2] == iid:
                self._patterns.move_to_end(pid)
                return
            self._drop(pid)
        self._patterns[pid] = (source, templates, iid)
        self._incidents[iid].patterns += 1
        for tid in templates:
            self._by_template.setdefault((source, tid), set()).add(pid)
        while len(self._patterns) > self.size:
            self._drop(next(iter(self._patterns)))

    def _drop(self, pid: str) -> None:
        source, templates, iid = self._patterns.pop(pid)
        for tid in templates:
            ids = self._by_template.get((source, tid))
            if ids is not None:
                ids.discard(pid)
                if not ids:
                    del self._by_template[(source, tid)]
        inc = self._incidents.get(iid)
        if inc is not None:
            inc.patterns -= 1
            if inc.patterns <= 0:
                del self._incidents[iid]

    def _forget_incident(self, iid: str) -> None:
        for pid in [p for p, (_, _, i) in self._patterns.items() if i == iid]:
            self._drop(pid)
        self._incidents.pop(iid, None)

    def __len__(self) -> int:
        return len(self._incidents)

    @property
    def patterns(self) -> int:
        return len(self._patterns)

    # ------------------------------------------------------------------ persistence

    def state(self, encode: Callable[[D], object], limit: int) -> dict:
        """The ``limit`` most recently used patterns and their incidents, as plain data."""
        rows = list(self._patterns.values())[-limit:] if limit > 0 else []
        used = {iid for _, _, iid in rows}
        incidents = [[i.incident_id, i.source, encode(i.decision), i.first_ts, i.last_ts, i.sessions]
                     for i in self._incidents.values() if i.incident_id in used]
        return {"incidents": incidents, "patterns": [[src, sorted(t), iid] for src, t, iid in rows]}

    def load_state(self, state: dict, decode: Callable[[object], D]) -> None:
        for iid, source, dec, first, last, n in state.get("incidents", []):
            if iid not in self._incidents:
                self._incidents[iid] = Incident(iid, source, decode(dec), float(first), float(last), int(n))
        for source, templates, iid in state.get("patterns", []):
            if iid in self._incidents:
                self._add_pattern(source, frozenset(templates), iid)
        for iid in [i for i, inc in self._incidents.items() if inc.patterns <= 0]:
            del self._incidents[iid]
