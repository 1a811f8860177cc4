"""A session as a record that fits the broker's size limit, by design.

A 1,000-line window of long lines is several megabytes of JSON, over the producer's
request limit (Kafka's default is about 1 MB): sending it fails, the stage crashes, and on
restart the same input makes the same record again, so the stream can never get past it.
A session is therefore shrunk to fit before it is sent, in the order that loses least of
what the detector reads:

1. long texts are cut (raw line, message, template) with a ``…`` marker, first to 1,024
   characters, then 256, then 64: the template ids, counts and order are untouched;
2. if that is not enough, repeated lines are dropped (the first line of every template is
   kept first, then the others in log order) and counted in ``dropped_lines``, so the
   full line count is still known: ``len(lines) + dropped_lines``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import orjson

from rlog.pipeline.sessions.session import Session, SessionLine, session_to_dict

TEXT_CAPS = (1024, 256, 64)
MARK = "…"


def _cut(text: str, cap: int) -> str:
    return text if len(text) <= cap else text[: cap - len(MARK)] + MARK


def _trimmed(line: SessionLine, cap: int) -> SessionLine:
    return replace(line, raw=_cut(line.raw, cap), content=_cut(line.content, cap), template=_cut(line.template, cap))


def _encode(s: Session, wrap: Callable[[dict], dict] | None) -> bytes:
    d = session_to_dict(s)
    return orjson.dumps(wrap(d) if wrap is not None else d)


def fit_session(s: Session, limit: int, wrap: Callable[[dict], dict] | None = None) -> tuple[Session, bytes]:
    """``s`` (or a shrunk copy) and its encoded record, at most ``limit`` bytes.

    ``wrap`` puts the session's dict inside a larger record (an escalation carries the
    fast verdict too), so the limit holds for what is actually sent. Raises ValueError only
    when even an empty session does not fit, which is a configuration error.
    """
    out = _encode(s, wrap)
    if len(out) <= limit:
        return s, out
    fitted = s
    for cap in TEXT_CAPS:
        fitted = replace(s, lines=[_trimmed(ln, cap) for ln in s.lines])
        out = _encode(fitted, wrap)
        if len(out) <= limit:
            return fitted, out
    empty = replace(fitted, lines=[], dropped_lines=s.dropped_lines + len(s.lines))
    base = len(_encode(empty, wrap))
    if base > limit:
        raise ValueError(f"a session record cannot fit in {limit} bytes (even without lines it takes {base})")
    seen: set[str] = set()
    first, rest = [], []
    for i, ln in enumerate(fitted.lines):
        (rest if ln.template_id in seen else first).append(i)
        seen.add(ln.template_id)
    room, keep = limit - base, set()
    for i in first + rest:
        cost = len(orjson.dumps(session_to_dict(replace(empty, lines=[fitted.lines[i]]))["lines"][0])) + 1
        if cost > room:
            continue
        keep.add(i)
        room -= cost
    lines = [ln for i, ln in enumerate(fitted.lines) if i in keep]
    shrunk = replace(fitted, lines=lines, dropped_lines=s.dropped_lines + len(s.lines) - len(lines))
    out = _encode(shrunk, wrap)
    while len(out) > limit and shrunk.lines:  # the estimate above is per line; the whole is checked
        shrunk = replace(shrunk, lines=shrunk.lines[:-1], dropped_lines=shrunk.dropped_lines + 1)
        out = _encode(shrunk, wrap)
    return shrunk, out
