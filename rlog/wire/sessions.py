"""Decoders of the records between the stages: closed sessions and escalations.

Checked for what the model stages and the alert builder read: the types of every line field,
and bounds a worker of this configuration never exceeds (lines per session, text length).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rlog.config import RlogConfig
from rlog.contract.answers import FastAnswer, FullAnswer
from rlog.contract.prompts import VERDICTS
from rlog.pipeline.sessions.session import Session, SessionLine
from rlog.wire import shape as S
from rlog.wire.errors import decoding

MAX_ID_CHARS = 4096  # session ids, sources, template ids, hosts
MAX_ANSWER_CHARS = 65_536


@dataclass(frozen=True)
class Limits:
    """What a record of this deployment can hold: lines per session, characters per text."""

    max_lines: int = 1000
    max_chars: int = 1 << 20

    @classmethod
    def of(cls, cfg: RlogConfig) -> Limits:
        # a multi-line record joins up to max_record_lines lines of max_line_chars (capped again at 1 MiB)
        chars = min(cfg.parse.max_line_chars * cfg.parse.max_record_lines, 1 << 20)
        sc = cfg.session
        lines = sc.max_len  # id sessions and time windows close at max_len; count windows hold their size
        if sc.mode != "id" and sc.by == "count":
            lines = max(lines, int(sc.size))
        return cls(max_lines=lines, max_chars=max(chars, cfg.parse.max_line_chars) + 16)


def line_of(v: Any, lim: Limits, with_cluster: bool, what: str = "line") -> SessionLine:
    """One session line from its list form (``session_to_dict``; with the Drain cluster id for
    ``session_to_state``), the view fields optional (records written before they existed)."""
    base = 8 if with_cluster else 7
    row = S.seq(v, what)
    if len(row) not in (base, base + 4):
        raise S.Bad(f"{what} has {len(row)} fields, not {base} or {base + 4}")
    seq_no = S.integer(row[0], f"{what} seq", lo=-1)
    ts = S.opt_number(row[1], f"{what} time")
    raw = S.text(row[2], f"{what} text", lim.max_chars)
    tid = S.text(row[3], f"{what} template id", MAX_ID_CHARS)
    tpl = S.text(row[4], f"{what} template", lim.max_chars)
    label = S.opt_bool(row[5], f"{what} label")
    cluster = S.integer(row[6], f"{what} cluster id") if with_cluster else -1
    host = S.text(row[base - 1], f"{what} host", MAX_ID_CHARS)
    content, level, prior, age = "", "", -1, -1
    if len(row) == base + 4:
        content = S.text(row[base], f"{what} message", lim.max_chars)
        level = S.text(row[base + 1], f"{what} level", MAX_ID_CHARS)
        prior = S.integer(row[base + 2], f"{what} prior count", lo=-1)
        age = S.integer(row[base + 3], f"{what} source age", lo=-1)
    return SessionLine(seq_no, ts, raw, tid, tpl, label, cluster, host, None, content, level, prior, age)


def session_of_dict(v: Any, lim: Limits) -> Session:
    """A closed session from its topic form (``session_to_dict``)."""
    d = S.obj(v, "session")
    lines = S.seq(S.field(d, "lines", "session"), "session lines", lim.max_lines)
    return Session(S.text(S.field(d, "session_id", "session"), "session id", MAX_ID_CHARS) or _empty("session id"),
                   S.text(S.field(d, "source", "session"), "session source", MAX_ID_CHARS),
                   S.text(S.field(d, "kind", "session"), "session kind", 64),
                   [line_of(ln, lim, False) for ln in lines],
                   S.text(d.get("close_reason", ""), "close reason", 256),
                   S.integer(d.get("dropped_lines", 0), "dropped lines", lo=0))


def session_of_state(v: Any, lim: Limits) -> Session:
    """An open session from its checkpoint form (``session_to_state``)."""
    sid, source, kind, reason, dropped, lines = S.seq(v, "open session", length=6)
    lines = S.seq(lines, "open session lines", lim.max_lines)
    return Session(S.text(sid, "session id", MAX_ID_CHARS) or _empty("session id"),
                   S.text(source, "session source", MAX_ID_CHARS), S.text(kind, "session kind", 64),
                   [line_of(ln, lim, True) for ln in lines], S.text(reason, "close reason", 256),
                   S.integer(dropped, "dropped lines", lo=0))


def _empty(what: str) -> str:
    raise S.Bad(f"{what} is empty")


def fast_answer(v: Any, what: str = "fast answer") -> FastAnswer:
    d = S.obj(v, what)
    extra = set(d) - {"verdict", "confidence", "rationale", "error", "p_abnormal", "p_model"}
    if extra:
        raise S.Bad(f"{what} has unknown fields {sorted(extra)[:5]}")
    return FastAnswer(verdict=_verdict(d.get("verdict"), f"{what} verdict"),
                      confidence=S.opt_number(d.get("confidence"), f"{what} confidence", 0.0, 1.0),
                      rationale=S.text(d.get("rationale", ""), f"{what} rationale", MAX_ANSWER_CHARS),
                      error=S.opt_text(d.get("error"), f"{what} error", MAX_ANSWER_CHARS),
                      p_abnormal=S.opt_number(d.get("p_abnormal"), f"{what} p_abnormal", 0.0, 1.0),
                      p_model=S.opt_number(d.get("p_model"), f"{what} p_model", 0.0, 1.0))


def full_answer(v: Any, what: str = "full answer") -> FullAnswer:
    d = S.obj(v, what)
    extra = set(d) - {"verdict", "category", "interpretation", "root_cause", "action", "reasoning", "error", "fields",
                      "p_abnormal", "category_p", "fallback"}
    if extra:
        raise S.Bad(f"{what} has unknown fields {sorted(extra)[:5]}")
    fields = S.obj(d.get("fields", {}), f"{what} fields")
    if len(fields) > 64:
        raise S.Bad(f"{what} has {len(fields)} fields", S.BOUNDS)
    for k, val in fields.items():
        S.text(val, f"{what} field {k[:40]!r}", MAX_ANSWER_CHARS)
    fallback = [S.text(x, f"{what} fallback", 64) for x in S.seq(d.get("fallback", []), f"{what} fallback", 16)]
    return FullAnswer(verdict=_verdict(d.get("verdict"), f"{what} verdict"),
                      category=S.opt_text(d.get("category"), f"{what} category", 64),
                      interpretation=S.text(d.get("interpretation", ""), f"{what} interpretation", MAX_ANSWER_CHARS),
                      root_cause=S.text(d.get("root_cause", ""), f"{what} root cause", MAX_ANSWER_CHARS),
                      action=S.text(d.get("action", ""), f"{what} action", MAX_ANSWER_CHARS),
                      reasoning=S.text(d.get("reasoning", ""), f"{what} reasoning", MAX_ANSWER_CHARS),
                      error=S.opt_text(d.get("error"), f"{what} error", MAX_ANSWER_CHARS),
                      fields=dict(fields),
                      p_abnormal=S.opt_number(d.get("p_abnormal"), f"{what} p_abnormal", 0.0, 1.0),
                      category_p=S.opt_number(d.get("category_p"), f"{what} category_p", 0.0, 1.0),
                      fallback=fallback)


def _verdict(v: Any, what: str) -> str | None:
    return None if v is None else S.one_of(v, what, VERDICTS)


@dataclass(frozen=True)
class Escalation:
    """A session R-Log-fast flagged, on its way to R-Log."""

    session: Session
    fast: FastAnswer
    fast_ms: float
    unfamiliar: frozenset[str] | None  # absent from records written before incidents


def decode_session(value: bytes | None, lim: Limits) -> Session:
    """A ``<prefix>.sessions`` record."""
    with decoding("session"):
        return session_of_dict(S.json_bytes(value, "session record"), lim)


def decode_escalation(value: bytes | None, lim: Limits) -> Escalation:
    """A ``<prefix>.escalations`` record."""
    with decoding("escalation"):
        d = S.obj(S.json_bytes(value, "escalation record"), "escalation")
        u = d.get("unfamiliar")
        unfamiliar = None
        if u is not None:
            unfamiliar = frozenset(S.text(t, "unfamiliar template id", MAX_ID_CHARS)
                                   for t in S.seq(u, "unfamiliar templates", lim.max_lines))
        return Escalation(session_of_dict(S.field(d, "session", "escalation"), lim),
                          fast_answer(S.field(d, "fast", "escalation")),
                          S.number(S.field(d, "fast_ms", "escalation"), "fast_ms", 0.0), unfamiliar)
