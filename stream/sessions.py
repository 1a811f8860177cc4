"""Group parsed lines into sessions: by identifier, or by fixed / sliding windows.

Sessionizers are pure state machines driven by event time (the record's timestamp), not
the wall clock, so replaying an archive gives the same sessions as the live stream did.
All state is bounded: open sessions by ``max_open`` (oldest evicted, closed and counted,
never lost), lines per session by ``max_len``.
"""

from __future__ import annotations

import logging
import math
import re
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from stream.truth import LineTruth, SessionTruth, session_truth

log = logging.getLogger(__name__)

# Named identifier patterns for common systems; group 1 (when present) is the id.
ID_PRESETS: dict[str, tuple[str, ...]] = {
    "hdfs": (r"(blk_-?\d+)",),
    "openstack": (r"instance[: ]+\[?([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})",),
    "hadoop": (r"(?:application|appattempt|attempt|job|container|task)_(\d{10,}_\d{4})",),
}


@dataclass(slots=True)
class SessionLine:
    """What a session keeps of one record: enough to prompt, explain and score."""

    seq: int
    ts: float | None
    raw: str
    template_id: str
    template: str
    label: bool | None = None
    cluster_id: int = -1  # Drain cluster, to refresh the template when the session closes
    host: str = ""
    truth: LineTruth | None = None


@dataclass(slots=True)
class Session:
    """A closed group of lines, the unit the detector judges."""

    session_id: str
    source: str
    kind: str  # "id" or "window"
    lines: list[SessionLine] = field(default_factory=list)
    close_reason: str = ""
    dropped_lines: int = 0  # lines beyond max_len that were counted but not kept

    @property
    def start_ts(self) -> float | None:
        return next((ln.ts for ln in self.lines if ln.ts is not None), None)

    @property
    def end_ts(self) -> float | None:
        return next((ln.ts for ln in reversed(self.lines) if ln.ts is not None), None)

    @property
    def label(self) -> bool | None:
        """Ground truth when the lines carry labels: abnormal if any line is."""
        labels = [ln.label for ln in self.lines if ln.label is not None]
        return any(labels) if labels else None

    @property
    def truth(self) -> SessionTruth | None:
        """Ground truth from a truth file (label, scenario, root-cause category), if any."""
        return session_truth(ln.truth for ln in self.lines)

    def hosts(self, n: int = 5) -> list[str]:
        """The hosts with most lines in the session, most first."""
        counts: dict[str, int] = {}
        for ln in self.lines:
            if ln.host:
                counts[ln.host] = counts.get(ln.host, 0) + 1
        return [h for h, _ in sorted(counts.items(), key=lambda kv: -kv[1])[:n]]

    def template_counts(self) -> list[tuple[str, str, int]]:
        """(id, template, count) in order of first appearance."""
        counts: dict[str, list] = {}
        for ln in self.lines:
            entry = counts.setdefault(ln.template_id, [ln.template, 0])
            entry[1] += 1
        return [(tid, tpl, n) for tid, (tpl, n) in counts.items()]


def session_to_dict(s: Session) -> dict:
    """A closed session as plain data (the value on the sessions topic); ground truth stays out."""
    return {"session_id": s.session_id, "source": s.source, "kind": s.kind, "close_reason": s.close_reason,
            "dropped_lines": s.dropped_lines,
            "lines": [[ln.seq, ln.ts, ln.raw, ln.template_id, ln.template, ln.label, ln.host] for ln in s.lines]}


def session_from_dict(d: dict) -> Session:
    lines = [SessionLine(seq, ts, raw, tid, tpl, label, -1, host) for seq, ts, raw, tid, tpl, label, host in d["lines"]]
    return Session(d["session_id"], d["source"], d["kind"], lines, d.get("close_reason", ""), d.get("dropped_lines", 0))


def _state_session(s: Session) -> list:
    return [s.session_id, s.source, s.kind, s.close_reason, s.dropped_lines,
            [[ln.seq, ln.ts, ln.raw, ln.template_id, ln.template, ln.label, ln.cluster_id, ln.host] for ln in s.lines]]


def _load_session(d: list) -> Session:
    sid, source, kind, reason, dropped, lines = d
    return Session(sid, source, kind, [SessionLine(*ln) for ln in lines], reason, dropped)


@dataclass
class SessionStats:
    opened: int = 0
    closed: int = 0
    evicted: int = 0
    unsessioned: int = 0  # lines with no identifier in id mode
    by_reason: dict[str, int] = field(default_factory=dict)


class Sessionizer(Protocol):
    stats: SessionStats

    def add(self, source: str, line: SessionLine) -> list[Session]: ...

    def tick(self, now: float) -> list[Session]: ...

    def flush(self) -> list[Session]: ...

    def state(self) -> dict: ...

    def load_state(self, d: dict) -> None: ...

    @property
    def open_count(self) -> int: ...


class _Base:
    def __init__(self, max_open: int) -> None:
        if max_open < 1:
            raise ValueError("max_open must be >= 1")
        self.max_open = max_open
        self.stats = SessionStats()

    def _stats_state(self) -> dict:
        st = self.stats
        return {"opened": st.opened, "closed": st.closed, "evicted": st.evicted, "unsessioned": st.unsessioned,
                "by_reason": dict(st.by_reason)}

    def _load_stats(self, d: dict) -> None:
        self.stats = SessionStats(d["opened"], d["closed"], d["evicted"], d["unsessioned"], dict(d["by_reason"]))

    def _closed(self, session: Session, reason: str) -> Session:
        session.close_reason = reason
        self.stats.closed += 1
        self.stats.by_reason[reason] = self.stats.by_reason.get(reason, 0) + 1
        if reason == "evicted":
            self.stats.evicted += 1
            if self.stats.evicted == 1 or self.stats.evicted % 1000 == 0:
                log.warning("open-session limit %d reached: evicted %d sessions so far (closing the oldest "
                            "early; raise session.max_open or lower session.timeout_s)",
                            self.max_open, self.stats.evicted)
        return session


@dataclass(slots=True)
class _Open:
    session: Session
    last_ts: float | None


class IdSessionizer(_Base):
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

    def state(self) -> dict:
        """Open sessions and counters as plain data (for checkpoints)."""
        return {"kind": "id", "stats": self._stats_state(), "clock": self._clock,
                "open": [[src, sid, _state_session(e.session), e.last_ts] for (src, sid), e in self._open.items()],
                "continued": [list(k) for k in self._continued]}

    def load_state(self, d: dict) -> None:
        self._load_stats(d["stats"])
        self._clock = d["clock"]
        self._open = OrderedDict(((src, sid), _Open(_load_session(sess), last)) for src, sid, sess, last in d["open"])
        self._continued = OrderedDict((tuple(k), None) for k in d["continued"])


class _WindowBase(_Base):
    """Per-source window state, the least recently active source evicted beyond ``max_open``."""

    def __init__(self, max_open: int) -> None:
        super().__init__(max_open)
        self._sources: OrderedDict[str, list] = OrderedDict()

    @staticmethod
    def _sessions(state: list) -> list[Session]:
        raise NotImplementedError

    @property
    def open_count(self) -> int:
        return sum(len(self._sessions(st)) for st in self._sources.values())

    def _state(self, source: str, fresh: Callable[[], list]) -> tuple[list, list[Session]]:
        """The source's state (created if new) and any sessions closed to make room for it."""
        closed: list[Session] = []
        state = self._sources.get(source)
        if state is None:
            if len(self._sources) >= self.max_open:
                _, old = self._sources.popitem(last=False)
                closed = [self._closed(s, "evicted") for s in self._sessions(old)]
            state = self._sources[source] = fresh()
        else:
            self._sources.move_to_end(source)
        return state, closed

    def flush(self) -> list[Session]:
        out = [self._closed(s, "end_of_input") for st in self._sources.values() for s in self._sessions(st)]
        self._sources.clear()
        return out


class CountWindowSessionizer(_WindowBase):
    """Windows of ``size`` consecutive lines per source, a new one every ``step`` lines.

    ``step == size`` gives fixed (tumbling) windows; ``step < size`` sliding ones, where a
    line belongs to ``ceil(size/step)`` windows. Gaps in event time do not cut a window
    (archives are often sampled); ``tick`` closes partial windows of a source that has been
    quiet for ``timeout_s``, so a stream that stops does not hold its last lines forever.
    """

    def __init__(self, size: int, step: int | None = None, *, timeout_s: float = 300.0,
                 max_open: int = 10_000) -> None:
        super().__init__(max_open)
        self.size, self.step = size, step or size
        if self.size < 1 or not 1 <= self.step <= self.size:
            raise ValueError("window size must be >= 1 and 1 <= step <= size")
        self.timeout_s = timeout_s
        # per source: [lines seen, deque of (start index, open window), last event time]

    @staticmethod
    def _sessions(state: list) -> list[Session]:
        return [s for _, s in state[1]]

    def add(self, source: str, line: SessionLine) -> list[Session]:
        state, out = self._state(source, lambda: [0, deque(), None])
        index, windows = state[0], state[1]
        if index % self.step == 0:
            windows.append((index, Session(f"{source}:lines{self.size}/{self.step}:{index}", source, "window")))
            self.stats.opened += 1
        for _, s in windows:
            s.lines.append(line)
        while windows and len(windows[0][1].lines) >= self.size:
            out.append(self._closed(windows.popleft()[1], "window_full"))
        state[0] = index + 1
        if line.ts is not None:
            state[2] = line.ts
        return out

    def state(self) -> dict:
        return {"kind": "count", "stats": self._stats_state(),
                "sources": [[src, st[0], [[start, _state_session(sess)] for start, sess in st[1]], st[2]]
                            for src, st in self._sources.items()]}

    def load_state(self, d: dict) -> None:
        self._load_stats(d["stats"])
        self._sources = OrderedDict((src, [index, deque((start, _load_session(sess)) for start, sess in wins), last])
                                    for src, index, wins, last in d["sources"])

    def tick(self, now: float) -> list[Session]:
        out = []
        for state in self._sources.values():
            if state[2] is not None and now - state[2] > self.timeout_s:
                out.extend(self._closed(s, "timeout") for _, s in state[1])
                state[1].clear()
        return out

class TimeWindowSessionizer(_WindowBase):
    """Windows of ``size_s`` seconds of event time per source, starting every ``step_s``.

    A window closes once event time passes its end (the watermark is the latest timestamp
    seen for that source). Lines without a timestamp join the windows open at that moment.
    """

    def __init__(self, size_s: float, step_s: float | None = None, *, max_len: int = 1000,
                 max_open: int = 10_000) -> None:
        super().__init__(max_open)
        self.size, self.step = float(size_s), float(step_s or size_s)
        if self.size <= 0 or not 0 < self.step <= self.size:
            raise ValueError("window size must be > 0 and 0 < step <= size")
        self.max_len = max_len
        # per source: [watermark, {window start index: open window}]

    @staticmethod
    def _sessions(state: list) -> list[Session]:
        return [s for _, s in sorted(state[1].items())]

    def _name(self, source: str, k: int) -> str:
        return f"{source}:{self.size:g}s/{self.step:g}s:{k * self.step:.0f}"

    def add(self, source: str, line: SessionLine) -> list[Session]:
        state, out = self._state(source, lambda: [None, {}])
        windows: dict[int, Session] = state[1]
        if line.ts is None:
            targets = list(windows)
        else:
            if state[0] is None or line.ts > state[0]:
                state[0] = line.ts
                out.extend(self._expire(state, line.ts))
            first = math.floor((line.ts - self.size) / self.step) + 1
            last = math.floor(line.ts / self.step)
            targets = list(range(first, last + 1))
            for k in targets:
                if k not in windows:
                    if k * self.step + self.size <= state[0]:
                        continue  # late line for a window already closed
                    windows[k] = Session(self._name(source, k), source, "window")
                    self.stats.opened += 1
        taken = False
        for k in targets:
            s = windows.get(k)
            if s is None:
                continue
            taken = True
            if len(s.lines) < self.max_len:
                s.lines.append(line)
            else:
                s.dropped_lines += 1
        if not taken:
            self.stats.unsessioned += 1  # late for every window it belonged to, or none open
        return out

    def state(self) -> dict:
        return {"kind": "time", "stats": self._stats_state(),
                "sources": [[src, st[0], [[k, _state_session(sess)] for k, sess in st[1].items()]]
                            for src, st in self._sources.items()]}

    def load_state(self, d: dict) -> None:
        self._load_stats(d["stats"])
        self._sources = OrderedDict((src, [wm, {k: _load_session(sess) for k, sess in wins}])
                                    for src, wm, wins in d["sources"])

    def _expire(self, state: list, now: float) -> list[Session]:
        windows: dict[int, Session] = state[1]
        done = sorted(k for k in windows if k * self.step + self.size <= now)
        return [self._closed(windows.pop(k), "window_end") for k in done]

    def tick(self, now: float) -> list[Session]:
        out = []
        for state in self._sources.values():
            out.extend(self._expire(state, now))
        return out

