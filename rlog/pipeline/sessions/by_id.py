"""Sessions keyed by identifiers in the line: HDFS blocks, OpenStack instances, Hadoop apps."""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

from rlog.pipeline.sessions.base import BaseSessionizer
from rlog.pipeline.sessions.session import Session, SessionLine, session_from_state, session_to_state

# Named identifier patterns for common systems; group 1 (when present) is the id.
ID_PRESETS: dict[str, tuple[str, ...]] = {
    "hdfs": (r"(blk_-?\d+)",),
    "openstack": (r"instance[: ]+\[?([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})",),
    "hadoop": (r"(?:application|appattempt|attempt|job|container|task)_(\d{10,}_\d{4})",),
}


@dataclass(slots=True)
class _Open:
    session: Session
    last_ts: float | None


class IdSessionizer(BaseSessionizer):
    """Sessions keyed by identifiers found in the raw line (HDFS blocks, instances, apps).

    A line naming several ids (a block replicated to a datanode, say) joins each of those
    sessions. A session closes when no line has touched it for ``timeout_s`` of event time,
    when it reaches ``max_len`` lines, on eviction, or at end of input.
    """

    def __init__(self, patterns: Iterable[str], *, timeout_s: float = 300.0, max_len: int = 1000,
                 max_open: int = 100_000) -> None:
        super().__init__(max_open)
        self.patterns = [re.compile(p) for p in patterns]
        if not self.patterns:
            raise ValueError("id sessions need at least one id pattern")
        self.timeout_s = timeout_s
        self.max_len = max_len
        self._open: OrderedDict[tuple[str, str], _Open] = OrderedDict()
        # ids whose session was cut at max_len; the next part gets a distinct, deterministic id
        self._continued: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._clock: float | None = None

    @property
    def open_count(self) -> int:
        return len(self._open)

    def ids(self, raw: str) -> list[str]:
        found: dict[str, None] = {}
        for p in self.patterns:
            for m in p.finditer(raw):
                found[m.group(1) if p.groups else m.group(0)] = None
        return list(found)

    def add(self, source: str, line: SessionLine) -> list[Session]:
        ids = self.ids(line.raw)
        if not ids:
            self.stats.unsessioned += 1
            return []
        out: list[Session] = []
        if line.ts is not None:
            self._clock = line.ts if self._clock is None else max(self._clock, line.ts)
            out.extend(self.tick(self._clock))
        for sid in ids:
            key = (source, sid)
            entry = self._open.get(key)
            if entry is None:
                if len(self._open) >= self.max_open:
                    _, oldest = self._open.popitem(last=False)
                    out.append(self._closed(oldest.session, "evicted"))
                name = sid
                if key in self._continued:
                    name = f"{sid}#{line.seq}"
                entry = _Open(Session(name, source, "id"), line.ts)
                self._open[key] = entry
                self.stats.opened += 1
            else:
                self._open.move_to_end(key)
            entry.session.lines.append(line)
            if line.ts is not None:
                entry.last_ts = line.ts
            if len(entry.session.lines) >= self.max_len:
                del self._open[key]
                self._continued[key] = None
                if len(self._continued) > self.max_open:
                    self._continued.popitem(last=False)
                out.append(self._closed(entry.session, "max_length"))
        return out

    def tick(self, now: float) -> list[Session]:
        """Close sessions idle for longer than the timeout at event time ``now``."""
        out = []
        while self._open:
            key, entry = next(iter(self._open.items()))
            if entry.last_ts is None or entry.last_ts >= now - self.timeout_s:
                break
            del self._open[key]
            out.append(self._closed(entry.session, "timeout"))
        return out

    def flush(self) -> list[Session]:
        out = [self._closed(e.session, "end_of_input") for e in self._open.values()]
        self._open.clear()
        return out

    def close_source(self, source: str, reason: str = "idle") -> list[Session]:
        """Close every open session of ``source`` (a source gone quiet)."""
        keys = [k for k in self._open if k[0] == source]
        return [self._closed(self._open.pop(k).session, reason) for k in keys]

    def state(self) -> dict:
        """Open sessions and counters as plain data (for checkpoints)."""
        return {"kind": "id", "stats": self._stats_state(), "clock": self._clock,
                "open": [[src, sid, session_to_state(e.session), e.last_ts] for (src, sid), e in self._open.items()],
                "continued": [list(k) for k in self._continued]}

    def load_state(self, d: dict) -> None:
        self._load_stats(d["stats"])
        self._clock = d["clock"]
        self._open = OrderedDict(((src, sid), _Open(session_from_state(sess), last)) for src, sid, sess, last in d["open"])
        self._continued = OrderedDict((tuple(k), None) for k in d["continued"])
