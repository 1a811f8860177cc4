"""The alert record published for every flagged session (JSON via orjson)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import orjson

SIGNAL = re.compile(
    r"error|fail|fatal|exception|panic|timeout|timed out|refused|denied|killed|corrupt|lost|unreachable|"
    r"expired|critical|severe|abort|oom|out of memory|invalid|cannot|unable",
    re.IGNORECASE,
)


def alert_id(source: str, session_id: str, sequence_key: str) -> str:
    """Deterministic: replaying the same session yields the same id (idempotent consumers)."""
    return hashlib.blake2b(f"{source}\x1f{session_id}\x1f{sequence_key}".encode(), digest_size=10).hexdigest()


def pick_evidence(lines: Sequence[tuple[str, str]], n: int) -> list[str]:
    """Up to ``n`` raw lines worth showing a human, in log order.

    ``lines`` are (template id, raw text). Lines stating a failure rank first, then the
    first line of each distinct template, so a long session is summarised by its
    unusual parts rather than its first n lines.
    """
    if n <= 0:
        return []
    seen: set[str] = set()
    scored = []
    for i, (tid, raw) in enumerate(lines):
        score = 2 * bool(SIGNAL.search(raw)) + (tid not in seen)
        seen.add(tid)
        scored.append((-score, i, raw))
    best = sorted(scored)[:n]
    return [raw for _, _, raw in sorted(best, key=lambda t: t[1])]


def headline(templates: Sequence[dict]) -> str:
    """The template that best says what went wrong: the first stating a failure, else the first."""
    for t in templates:
        if SIGNAL.search(t["template"]):
            return t["template"]
    return templates[0]["template"] if templates else ""


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
    evidence: list[str]
    verdict: str
    confidence: float | None
    # the scores behind the confidence: R-Log-fast's own P(abnormal) and, when its calibration
    # fuses it with the session's evidence, the fused one (the confidence)
    scores: dict[str, float] = field(default_factory=dict)
    category: str | None = None
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

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())

    @classmethod
    def from_json(cls, data: bytes | str) -> Alert:
        return cls(**orjson.loads(data))
