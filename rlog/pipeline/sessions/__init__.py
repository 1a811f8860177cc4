"""Group parsed lines into sessions: by identifier, or by fixed / sliding windows.

Sessionizers are pure state machines driven by event time (the record's timestamp), not
the wall clock, so replaying an archive gives the same sessions as the live stream did.
All state is bounded: open sessions by ``max_open`` (oldest evicted, closed and counted,
never lost), lines per session by ``max_len``.

``session`` holds the unit itself; ``by_id`` and ``windows`` the two families of
sessionizers; ``make_sessionizer`` picks one from the ``session`` config section.
"""

from __future__ import annotations

from rlog.config import SessionConfig
from rlog.pipeline.sessions.base import BaseSessionizer, Sessionizer, SessionStats
from rlog.pipeline.sessions.by_id import ID_PRESETS, IdSessionizer
from rlog.pipeline.sessions.session import (
    Session,
    SessionLine,
    session_from_dict,
    session_from_state,
    session_to_dict,
    session_to_state,
)
from rlog.pipeline.sessions.windows import CountWindowSessionizer, TimeWindowSessionizer


def make_sessionizer(cfg: SessionConfig) -> Sessionizer:
    """The sessionizer the ``session`` config section describes."""
    if cfg.mode == "id":
        patterns: list[str] = []
        for p in cfg.id_patterns:
            patterns.extend(ID_PRESETS.get(p.lower(), (p,)))
        return IdSessionizer(patterns, timeout_s=cfg.timeout_s, max_len=cfg.max_len, max_open=cfg.max_open)
    step = cfg.step if cfg.step is not None else (cfg.size / 2 if cfg.mode == "sliding" else cfg.size)
    if cfg.by == "count":
        return CountWindowSessionizer(int(cfg.size), max(1, int(step)), timeout_s=cfg.timeout_s, max_open=cfg.max_open)
    return TimeWindowSessionizer(cfg.size, step, max_len=cfg.max_len, max_open=cfg.max_open,
                                 max_jump_s=cfg.max_jump_s)


__all__ = [
    "ID_PRESETS", "BaseSessionizer", "CountWindowSessionizer", "IdSessionizer", "Session", "SessionLine",
    "SessionStats", "Sessionizer", "TimeWindowSessionizer", "make_sessionizer", "session_from_dict",
    "session_from_state", "session_to_dict", "session_to_state",
]
