"""Decoders of the records a worker writes for itself: parser checkpoints and verdict memory.

Both are zlib-compressed JSON ``{"v", "fingerprint", ...}``, optionally sealed
(``rlog.wire.seal``). A checkpoint is checked against the bounds this worker's settings put
on what it holds (sources, open sessions, lines per session, text), then loaded into a fresh
``Pipeline``; the memory's verdicts are each built once, so loading them cannot fail later.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rlog.cascade.cascade import Decision, decision_to_state
from rlog.config import RlogConfig
from rlog.pipeline.pipeline import Pipeline
from rlog.wire import shape as S
from rlog.wire.errors import RecordError, decoding
from rlog.wire.sessions import MAX_ID_CHARS, Limits, fast_answer, full_answer, session_of_state

VERSION = 1
PARSE_STATE, MEMORY = "parse-state", "memory"
MAX_SOURCES = 100_000


@dataclass
class ParseCheckpoint:
    """A decoded parser checkpoint: the pipeline it holds, the input it covers, its event clock."""

    pipeline: Pipeline
    offset: int
    event_ts: float | None
    topic: str | None  # absent from checkpoints of earlier versions


def _body(payload: bytes, kind: str) -> dict:
    return S.obj(S.json_bytes(S.inflate(payload, f"{kind} record"), f"{kind} record"), f"{kind} record")


def _check_version(body: dict, fingerprint: str, kind: str, what: str) -> None:
    if body.get("v") != VERSION or body.get("fingerprint") != fingerprint:
        raise RecordError(kind, "settings", f"written with other {what}")


def decode_parse_state(payload: bytes, cfg: RlogConfig, fingerprint: str) -> ParseCheckpoint:
    """A parser checkpoint (already unsealed) for a worker of ``cfg``.

    ``RecordError`` with reason ``settings`` / ``topic`` when it is readable but made for other
    parse/session settings or another input topic (its offsets would skip lines of this one)."""
    with decoding(PARSE_STATE):
        body = _body(payload, PARSE_STATE)
        _check_version(body, fingerprint, PARSE_STATE, "parse/session settings")
        topic = S.opt_text(body.get("topic"), "input topic", 512)
        if topic is not None and topic != cfg.stream.input_topic:
            raise RecordError(PARSE_STATE, "topic",
                              f"written for input topic {topic!r}, this worker reads {cfg.stream.input_topic!r}")
        offset = S.integer(S.field(body, "offset", "checkpoint"), "checkpoint offset", lo=-1)
        event_ts = S.opt_number(S.field(body, "event_ts", "checkpoint"), "checkpoint event time")
        state = S.obj(S.field(body, "pipeline", "checkpoint"), "pipeline state")
        check_pipeline_state(state, cfg)
        pipe = Pipeline(cfg)
        kind = pipe.sessionizer.state()["kind"]
        if state["sessions"]["kind"] != kind:
            raise S.Bad(f"its sessions are {state['sessions']['kind']!r} sessions, this worker's are {kind!r}")
        pipe.load_state(state)
        return ParseCheckpoint(pipe, offset, event_ts, topic)


def check_pipeline_state(state: dict, cfg: RlogConfig) -> None:
    """The shape and bounds of ``Pipeline.state()``; raises ``Bad``."""
    lim = Limits.of(cfg)
    for row in S.seq(S.field(state, "sources", "pipeline state"), "sources", MAX_SOURCES):
        name, parser, store = S.seq(row, "source", length=3)
        S.text(name, "source name", MAX_ID_CHARS)
        _check_parser(S.obj(parser, "parser state"), lim)
        S.text(store, "template store", None)
    sessions = S.obj(S.field(state, "sessions", "pipeline state"), "session state")
    n_open = _check_sessions(sessions, lim)
    if n_open > cfg.session.max_open:
        raise S.Bad(f"{n_open} open sessions, more than session.max_open ({cfg.session.max_open})", S.BOUNDS)
    st = S.obj(S.field(state, "stats", "pipeline state"), "pipeline stats")
    S.integer(S.field(st, "lines", "pipeline stats"), "line count", lo=0)
    S.integer(S.field(st, "records", "pipeline stats"), "record count", lo=0)
    for key in ("dead_letters", "flags"):
        for k, v in S.obj(S.field(st, key, "pipeline stats"), key).items():
            S.text(k, key, 1024)
            S.integer(v, f"{key} count", lo=0)


def _check_parser(p: dict, lim: Limits) -> None:
    years = S.seq(p.get("years", [0, None]), "parser years", length=2)
    S.integer(years[0], "parser year")
    S.opt_number(years[1], "parser last time")
    pending = S.field(p, "pending", "parser state")
    if pending is None:
        return
    source, seq_no, raw, content, fields, ts, label, flags, host = S.seq(pending, "held record", length=9)
    S.text(source, "held record source", MAX_ID_CHARS)
    S.integer(seq_no, "held record seq")
    S.text(raw, "held record text", lim.max_chars)
    S.text(content, "held record message", lim.max_chars)
    for k, v in S.obj(fields, "held record fields").items():
        S.text(v, f"held record field {k[:40]!r}", lim.max_chars)
    S.opt_number(ts, "held record time")
    S.opt_bool(label, "held record label")
    for f in S.seq(flags, "held record flags", 64):
        S.text(f, "held record flag", 256)
    S.text(host, "held record host", MAX_ID_CHARS)
    S.integer(S.field(p, "lines", "parser state"), "held record lines", lo=0)


def _check_stats(d: Any) -> None:
    st = S.obj(d, "session stats")
    for key in ("opened", "closed", "evicted", "unsessioned"):
        S.integer(S.field(st, key, "session stats"), f"session stats {key}", lo=0)
    S.integer(st.get("untimed", 0), "session stats untimed", lo=0)
    for k, v in S.obj(S.field(st, "by_reason", "session stats"), "sessions by reason").items():
        S.integer(v, f"sessions closed by {k[:40]!r}", lo=0)


def _check_sessions(d: dict, lim: Limits) -> int:
    """Checks the open sessions of any sessionizer's state; returns how many are open."""
    kind = S.one_of(S.field(d, "kind", "session state"), "sessionizer kind", ("id", "count", "time"))
    _check_stats(S.field(d, "stats", "session state"))
    n = 0
    if kind == "id":
        S.opt_number(d.get("clock"), "sessionizer clock")
        for row in S.seq(S.field(d, "open", "session state"), "open sessions"):
            src, sid, sess, last = S.seq(row, "open session entry", length=4)
            S.text(src, "session source", MAX_ID_CHARS)
            S.text(sid, "session id", MAX_ID_CHARS)
            session_of_state(sess, lim)
            S.opt_number(last, "session last time")
            n += 1
        for k in S.seq(S.field(d, "continued", "session state"), "continued sessions"):
            a, b = S.seq(k, "continued session", length=2)
            S.text(a, "continued source", MAX_ID_CHARS)
            S.text(b, "continued id", MAX_ID_CHARS)
        return n
    for row in S.seq(S.field(d, "sources", "session state"), "window sources", MAX_SOURCES):
        row = S.seq(row, "window source", length=(3, 4) if kind == "time" else 4)
        S.text(row[0], "window source", MAX_ID_CHARS)
        if kind == "count":
            S.integer(row[1], "window line index", lo=0)
            S.opt_number(row[3], "window last time")
        else:
            S.opt_number(row[1], "window watermark")
            if len(row) == 4:
                S.integer(row[3], "untimed lines ahead", lo=0)
        seen = set()
        for win in S.seq(row[2], "open windows"):
            start, sess = S.seq(win, "open window", length=2)
            S.integer(start, "window start")
            if start in seen:
                raise S.Bad("two open windows with the same start")
            seen.add(start)
            session_of_state(sess, lim)
            n += 1
    return n


def decode_memory(payload: bytes, fingerprint: str, max_rows: int) -> dict:
    """A verdict memory (already unsealed) as ``Cascade.load_memory`` reads it, rebuilt from what
    checked out (every verdict decoded and written back in its canonical form, so loading it
    cannot fail); reason ``settings`` when made with other models or cascade settings."""
    with decoding(MEMORY):
        body = _body(payload, MEMORY)
        _check_version(body, fingerprint, MEMORY, "models or cascade settings")
        m = S.obj(S.field(body, "memory", "memory record"), "memory")
        out: dict[str, Any] = {}
        for key in ("cache", "fast", "full"):
            out[key] = []
            for row in S.seq(m.get(key, []), f"memory {key}", max_rows):
                k, dec = S.seq(row, f"memory {key} entry", length=2)
                out[key].append([S.text(k, f"memory {key} key", MAX_ID_CHARS), decision_to_state(decision(dec))])
        out["known"] = []
        for row in S.seq(m.get("known", []), "known-normal templates", max_rows):
            src, tid, bucket = S.seq(row, "known-normal entry", length=3)
            out["known"].append([S.text(src, "known-normal source", MAX_ID_CHARS),
                                 S.text(tid, "known-normal template", MAX_ID_CHARS),
                                 S.integer(bucket, "known-normal count bucket", lo=0, hi=64)])
        for key in ("incidents", "fast_incidents"):
            inc = S.obj(m.get(key, {}), f"memory {key}")
            incidents, patterns = [], []
            for row in S.seq(inc.get("incidents", []), f"memory {key}", max_rows):
                iid, source, dec, first, last, n = S.seq(row, "incident", length=6)
                incidents.append([S.text(iid, "incident id", MAX_ID_CHARS), S.text(source, "incident source", MAX_ID_CHARS),
                                  decision_to_state(decision(dec)), S.number(first, "incident first time"),
                                  S.number(last, "incident last time"), S.integer(n, "incident sessions", lo=0)])
            for row in S.seq(inc.get("patterns", []), f"memory {key} patterns", max_rows):
                src, templates, iid = S.seq(row, "incident pattern", length=3)
                patterns.append([S.text(src, "pattern source", MAX_ID_CHARS),
                                 [S.text(t, "pattern template", MAX_ID_CHARS)
                                  for t in S.seq(templates, "pattern templates", 10_000)],
                                 S.text(iid, "pattern incident", MAX_ID_CHARS)])
            out[key] = {"incidents": incidents, "patterns": patterns}
        return out


def decision(v: Any) -> Decision:
    """A remembered decision (``decision_to_state``), every field checked."""
    row = S.seq(v, "remembered decision", length=(6, 7))
    verdict = S.one_of(row[0], "remembered verdict", ("normal", "abnormal", "unknown"))
    full = None if row[2] is None else full_answer(row[2], "remembered R-Log answer")
    incident = S.opt_text(row[6], "remembered incident", MAX_ID_CHARS) if len(row) == 7 else None
    return Decision(verdict, fast_answer(row[1], "remembered fast answer"), full,
                    S.number(row[3], "remembered fast_ms", 0.0), S.number(row[4], "remembered full_ms", 0.0),
                    S.boolean(row[5], "remembered known-normal flag"), incident)
