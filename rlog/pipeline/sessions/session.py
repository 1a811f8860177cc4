"""The session: the unit the detector judges, and its plain-data forms.

``session_to_dict`` is the value on the sessions topic (ground truth stays out);
``session_to_state`` is the compact form parser checkpoints keep for open sessions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rlog.truth import LineTruth, SessionTruth, session_truth


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
    content: str = ""  # the message part (what was mined), capped: example values for the model
    level: str = ""  # the format's severity field, when it has one
    prior: int = -1  # lines of this template the source had seen before this one; -1: unknown
    age: int = -1  # lines the source had seen before this one; -1: unknown


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


def _view_fields(ln: SessionLine) -> list:
    return [ln.content, ln.level, ln.prior, ln.age]


def _line(seq, ts, raw, tid, tpl, label, cluster_id, host, view: list) -> SessionLine:
    """A line from its plain form; lines written before the view fields existed get their defaults."""
    content, level, prior, age = view if len(view) == 4 else ("", "", -1, -1)
    return SessionLine(seq, ts, raw, tid, tpl, label, cluster_id, host, None, content, level, prior, age)


def session_to_dict(s: Session) -> dict:
    """A closed session as plain data (the value on the sessions topic); ground truth stays out."""
    return {"session_id": s.session_id, "source": s.source, "kind": s.kind, "close_reason": s.close_reason,
            "dropped_lines": s.dropped_lines,
            "lines": [[ln.seq, ln.ts, ln.raw, ln.template_id, ln.template, ln.label, ln.host, *_view_fields(ln)]
                      for ln in s.lines]}


def session_from_dict(d: dict) -> Session:
    lines = [_line(*ln[:6], -1, ln[6], ln[7:]) for ln in d["lines"]]
    return Session(d["session_id"], d["source"], d["kind"], lines, d.get("close_reason", ""), d.get("dropped_lines", 0))


def session_to_state(s: Session) -> list:
    """An open session as compact plain data for parser checkpoints (keeps Drain cluster ids)."""
    return [s.session_id, s.source, s.kind, s.close_reason, s.dropped_lines,
            [[ln.seq, ln.ts, ln.raw, ln.template_id, ln.template, ln.label, ln.cluster_id, ln.host, *_view_fields(ln)]
             for ln in s.lines]]


def session_from_state(d: list) -> Session:
    """The inverse of ``session_to_state`` (also reads checkpoints written before the view fields)."""
    sid, source, kind, reason, dropped, lines = d
    return Session(sid, source, kind, [_line(*ln[:8], ln[8:]) for ln in lines], reason, dropped)
