"""The alert record published for every flagged session (JSON via orjson), and what it quotes.

The record's shape is versioned: ``SCHEMA`` names it and ``rlog/schemas/alert.v1.json``
(JSON Schema) documents and checks it; a consumer can rely on every field it lists.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import orjson

from rlog.contract.representation import SessionView, TemplateEntry, level_rank
from rlog.pipeline.sessions import Session, SessionLine

SIGNAL = re.compile(
    r"error|fail|fatal|exception|panic|timeout|timed out|refused|denied|killed|corrupt|lost|unreachable|"
    r"expired|critical|severe|abort|oom|out of memory|invalid|cannot|unable",
    re.IGNORECASE,
)


def alert_id(source: str, session_id: str, sequence_key: str) -> str:
    """Deterministic: replaying the same session yields the same id (idempotent consumers)."""
    return hashlib.blake2b(f"{source}\x1f{session_id}\x1f{sequence_key}".encode(), digest_size=10).hexdigest()


def _marks(lines: Sequence[SessionLine], entry: TemplateEntry | None) -> list[str]:
    """Why a template is worth an operator's eye: it states a failure, carries a severity, is new or rare."""
    marks = []
    if any(SIGNAL.search(ln.template) or SIGNAL.search(ln.raw) for ln in lines):
        marks.append("failure")
    if entry is not None and entry.level and level_rank(entry.level) >= 1:
        marks.append(entry.level.upper())
    if entry is not None and entry.novelty:
        marks.append(entry.novelty)
    return marks


def _weight(marks: Sequence[str]) -> int:
    w = 4 * ("failure" in marks) + 2 * ("new" in marks) + ("rare" in marks)
    return w + max((min(level_rank(m), 3) for m in marks if m not in ("failure", "new", "rare")), default=0)


def pick_evidence(session: Session, view: SessionView | None, n: int) -> list[dict]:
    """Up to ``n`` templates that explain the session, in log order, each as its most telling line.

    A template ranks by what drove the verdict: stating a failure first, then its severity,
    then being new or rare for the source. Each comes with the line to show (one stating
    the failure when it has one, else its first), how often it occurred and its first and
    last time, so a 40-line window is summarised by its unusual parts, not its first lines.
    """
    if n <= 0 or not session.lines:
        return []
    entries = {e.template_id: e for e in view.entries} if view is not None else {}
    by_tid: dict[str, list[SessionLine]] = {}
    for ln in session.lines:
        by_tid.setdefault(ln.template_id, []).append(ln)
    ranked = []
    for order, (tid, lines) in enumerate(by_tid.items()):
        marks = _marks(lines, entries.get(tid))
        line = next((ln for ln in lines if SIGNAL.search(ln.raw)), lines[0])
        stamps = [ln.ts for ln in lines if ln.ts is not None]
        ranked.append((-_weight(marks), order, {
            "line": line.raw, "template_id": tid, "template": lines[0].template, "count": len(lines),
            "first_ts": min(stamps) if stamps else None, "last_ts": max(stamps) if stamps else None,
            "marks": marks}))
    best = sorted(ranked, key=lambda r: (r[0], r[1]))[:n]
    return [r[2] for r in sorted(best, key=lambda r: r[1])]


def headline_of(evidence: Sequence[dict]) -> str:
    """The line an alert is titled by: the most telling of its evidence (the failing line), earliest first."""
    if not evidence:
        return ""
    return max(evidence, key=lambda e: (_weight(e["marks"]), -evidence.index(e)))["line"]


def headline(templates: Sequence[dict]) -> str:
    """The template that best says what went wrong: the first stating a failure, else the first."""
    for t in templates:
        if SIGNAL.search(t["template"]):
            return t["template"]
    return templates[0]["template"] if templates else ""


SCHEMA = "rlog.alert/v1"


def alert_schema() -> dict:
    """The JSON Schema of the alert record (``rlog/schemas/alert.v1.json``), shipped with the package."""
    from importlib.resources import files

    return orjson.loads(files("rlog").joinpath("schemas", "alert.v1.json").read_bytes())


@dataclass
class Alert:
    alert_id: str
    session_id: str
    source: str
    kind: str
    start_ts: float | None
    end_ts: float | None
    n_lines: int
    templates: list[dict]
    evidence: list[dict]  # pick_evidence: line, template_id, template, count, first_ts, last_ts, marks
    verdict: str
    confidence: float | None
    # the scores behind the confidence: R-Log-fast's own P(abnormal) and, when its calibration
    # fuses it with the session's evidence, the fused one (the confidence)
    scores: dict[str, float] = field(default_factory=dict)
    headline: str = ""  # the failing line
    category: str | None = None
    category_confidence: float | None = None  # R-Log's probability of the category it chose
    interpretation: str = ""
    root_cause: str = ""
    action: str = ""
    rationale: str = ""
    escalated: bool = False
    cached: bool = False
    models: dict[str, str] = field(default_factory=dict)
    latency_ms: dict[str, float] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    close_reason: str = ""
    fallback: list[str] = field(default_factory=list)  # fields filled from the evidence, not written by a model
    category_by: str = "rlog"  # who named the category: rlog, fitted (the category model) or rule (keywords)
    incident_id: str | None = None  # the open incident it is part of (rlog.cascade.incidents)
    schema: str = SCHEMA

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())

    @classmethod
    def from_json(cls, data: bytes | str) -> Alert:
        return cls(**orjson.loads(data))
