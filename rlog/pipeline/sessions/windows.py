"""Fixed and sliding windows per source, by line count or by event time."""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from collections.abc import Callable

from rlog.pipeline.sessions.base import JUMP_CONFIRM, BaseSessionizer, clock_step
from rlog.pipeline.sessions.session import Session, SessionLine, session_from_state, session_to_state


class _WindowBase(BaseSessionizer):
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

    def close_source(self, source: str, reason: str = "idle") -> list[Session]:
        """Close every open window of ``source`` (a source gone quiet)."""
        state = self._sources.get(source)
        return [] if state is None else self._close_all(state, reason)

    def _close_all(self, state: list, reason: str) -> list[Session]:
        raise NotImplementedError


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

    def touch(self, source: str, ts: float) -> None:
        state = self._sources.get(source)
        if state is not None and (state[2] is None or ts > state[2]):
            state[2] = ts

    def _close_all(self, state: list, reason: str) -> list[Session]:
        """Close the open windows; the next line starts a new window, at the next multiple of the
        step (window ids count lines and must never repeat)."""
        out = [self._closed(s, reason) for _, s in state[1]]
        state[1].clear()
        state[0] = -(-state[0] // self.step) * self.step
        return out

    def state(self) -> dict:
        return {"kind": "count", "stats": self._stats_state(),
                "sources": [[src, st[0], [[start, session_to_state(sess)] for start, sess in st[1]], st[2]]
                            for src, st in self._sources.items()]}

    def load_state(self, d: dict) -> None:
        self._load_stats(d["stats"])
        self._sources = OrderedDict((src, [index, deque((start, session_from_state(sess)) for start, sess in wins), last])
                                    for src, index, wins, last in d["sources"])

    def tick(self, now: float) -> list[Session]:
        out = []
        for state in self._sources.values():
            if state[2] is not None and now - state[2] > self.timeout_s and state[1]:
                # and the next line starts a window at once (it used to join none until the next
                # multiple of the step, and was lost)
                out.extend(self._close_all(state, "timeout"))
        return out

class TimeWindowSessionizer(_WindowBase):
    """Windows of ``size_s`` seconds of event time per source, starting every ``step_s``.

    A window closes once event time passes its end (the watermark is the latest timestamp
    seen for that source). Lines without a timestamp join the windows open at that moment.

    Clock policy, so one bad timestamp cannot stall a source: a line more than
    ``max_jump_s`` ahead of its source's watermark is read as untimed (it joins the open
    windows, counted in ``stats.untimed``) until ``confirm`` such lines in a row agree
    that the clock really moved (a source back after a long silence); only then does
    the watermark jump. Without this, one line stamped years ahead would close every
    window and make every later line late. Lines behind the watermark are late: they join
    the windows still open that contain them, or are counted as unsessioned.
    """

    def __init__(self, size_s: float, step_s: float | None = None, *, max_len: int = 1000,
                 max_open: int = 10_000, max_jump_s: float = 86_400.0, confirm: int = JUMP_CONFIRM) -> None:
        super().__init__(max_open)
        self.size, self.step = float(size_s), float(step_s or size_s)
        if self.size <= 0 or not 0 < self.step <= self.size:
            raise ValueError("window size must be > 0 and 0 < step <= size")
        if max_jump_s < 0 or confirm < 1:
            raise ValueError("max_jump_s must be >= 0 (0: off) and confirm >= 1")
        self.max_len = max_len
        self.max_jump_s, self.confirm = float(max_jump_s), confirm
        # per source: [watermark, {window start index: open window}, lines in a row far ahead]

    @staticmethod
    def _sessions(state: list) -> list[Session]:
        return [s for _, s in sorted(state[1].items())]

    def _name(self, source: str, k: int) -> str:
        return f"{source}:{self.size:g}s/{self.step:g}s:{k * self.step:.0f}"

    def _trusted(self, state: list, ts: float) -> bool:
        """Whether ``ts`` may move the source's clock (see the class docstring)."""
        trusted, state[2] = clock_step(state[0], ts, self.max_jump_s, state[2], self.confirm)
        self.stats.untimed += not trusted
        return trusted

    def add(self, source: str, line: SessionLine) -> list[Session]:
        state, out = self._state(source, lambda: [None, {}, 0])
        windows: dict[int, Session] = state[1]
        if line.ts is None or not self._trusted(state, line.ts):
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

    def _close_all(self, state: list, reason: str) -> list[Session]:
        """Close the open windows and move the watermark past them: a later line of one of them
        is late (counted), never a second session under the same id."""
        windows: dict[int, Session] = state[1]
        out = [self._closed(windows[k], reason) for k in sorted(windows)]
        if windows:
            end = max(windows) * self.step + self.size
            state[0] = end if state[0] is None else max(state[0], end)
        windows.clear()
        return out

    def state(self) -> dict:
        return {"kind": "time", "stats": self._stats_state(),
                "sources": [[src, st[0], [[k, session_to_state(sess)] for k, sess in st[1].items()], st[2]]
                            for src, st in self._sources.items()]}

    def load_state(self, d: dict) -> None:
        self._load_stats(d["stats"])
        # checkpoints written before the clock policy have no third field
        self._sources = OrderedDict((src, [wm, {k: session_from_state(sess) for k, sess in wins}, ahead[0] if ahead else 0])
                                    for src, wm, wins, *ahead in d["sources"])

    def _expire(self, state: list, now: float) -> list[Session]:
        windows: dict[int, Session] = state[1]
        done = sorted(k for k in windows if k * self.step + self.size <= now)
        return [self._closed(windows.pop(k), "window_end") for k in done]

    def tick(self, now: float) -> list[Session]:
        out = []
        for state in self._sources.values():
            out.extend(self._expire(state, now))
        return out
