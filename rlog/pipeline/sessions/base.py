"""What every sessionizer shares: the protocol the pipeline drives, counters, eviction."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Protocol

from rlog.pipeline.sessions.session import Session, SessionLine

log = logging.getLogger("rlog.pipeline.sessions")


JUMP_CONFIRM = 3  # lines in a row far ahead of a clock that make it jump


def clock_step(clock: float | None, ts: float, max_jump_s: float, ahead: int,
               confirm: int = JUMP_CONFIRM) -> tuple[bool, int]:
    """Whether ``ts`` may move an event clock now at ``clock``, and the new count of lines in a
    row far ahead of it. A time more than ``max_jump_s`` ahead (0: no limit) counts only once
    ``confirm`` lines in a row agree (a source back after a long silence); until then it is read
    as untimed, so one line stamped years ahead cannot move the clock."""
    if clock is None or not max_jump_s or ts - clock <= max_jump_s:
        return True, 0
    if ahead + 1 >= confirm:
        return True, 0
    return False, ahead + 1


@dataclass
class SessionStats:
    opened: int = 0
    closed: int = 0
    evicted: int = 0
    unsessioned: int = 0  # lines with no identifier in id mode
    by_reason: dict[str, int] = field(default_factory=dict)
    untimed: int = 0  # lines whose time was not trusted to move the clock (time windows)


class Sessionizer(Protocol):
    stats: SessionStats

    def add(self, source: str, line: SessionLine) -> list[Session]: ...

    def tick(self, now: float) -> list[Session]: ...

    def flush(self) -> list[Session]: ...

    def close_source(self, source: str, reason: str = "idle") -> list[Session]: ...

    def touch(self, source: str, ts: float) -> None: ...

    def state(self) -> dict: ...

    def load_state(self, d: dict) -> None: ...

    @property
    def open_count(self) -> int: ...


class BaseSessionizer:
    """Bounds and counters shared by every sessionizer."""

    def __init__(self, max_open: int) -> None:
        if max_open < 1:
            raise ValueError("max_open must be >= 1")
        self.max_open = max_open
        self.stats = SessionStats()

    def _stats_state(self) -> dict:
        st = self.stats
        return {"opened": st.opened, "closed": st.closed, "evicted": st.evicted, "unsessioned": st.unsessioned,
                "by_reason": dict(st.by_reason), "untimed": st.untimed}

    def _load_stats(self, d: dict) -> None:
        self.stats = SessionStats(d["opened"], d["closed"], d["evicted"], d["unsessioned"], dict(d["by_reason"]),
                                  d.get("untimed", 0))

    def touch(self, source: str, ts: float) -> None:
        """``source`` logged at ``ts`` a line not sessionized yet (a record held for continuations):
        its sessions are not idle. Windows by count use it; others time out by their own lines."""

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
