"""The model contract, output side: check and parse what R-Log-fast and R-Log answer.

Fast (answer first): ``<answer>abnormal</answer><think>short rationale</think>``; serving
stops at ``</answer>`` and reads confidence from the verdict tokens' log-probabilities.
Full (think first): ``<think>analysis</think><answer>...</answer>``, where an escalation
answer is ``key: value`` lines (verdict, category, interpretation, root_cause, action).
A malformed answer comes back with ``error`` set: counted and handled, never a crash.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from rlog.contract.prompts import CATEGORIES, VERDICTS, Mode

_FAST_SHAPE = re.compile(r"^\s*<answer>(.*?)</answer>\s*(?:<think>(.*?)</think>)?\s*$", re.DOTALL)
_FULL_SHAPE = re.compile(r"^\s*<think>(.*?)</think>\s*<answer>(.*?)</answer>\s*$", re.DOTALL)
_TAGS = ("<think>", "</think>", "<answer>", "</answer>")
_KEY_ALIASES = {
    "verdict": "verdict", "label": "verdict", "answer": "verdict",
    "category": "category", "root_cause_category": "category", "type": "category",
    "interpretation": "interpretation", "summary": "interpretation",
    "root_cause": "root_cause", "rootcause": "root_cause", "cause": "root_cause",
    "action": "action", "recommended_action": "action", "fix": "action", "solution": "action",
}


def check_format(text: str, mode: Mode) -> bool:
    """True when the output has exactly one of each tag, in the order the mode requires.

    Fast outputs stopped at ``</answer>`` (no think yet) also pass: serving cuts there.
    """
    counts = [text.count(t) for t in _TAGS]
    if mode == "fast":
        if counts[2:] != [1, 1] or counts[0] != counts[1] or counts[0] > 1:
            return False
        return _FAST_SHAPE.match(text) is not None
    return counts == [1, 1, 1, 1] and _FULL_SHAPE.match(text) is not None


def _verdict_of(text: str) -> str | None:
    word = text.strip().strip(".:*`'\" ").lower()
    if word in VERDICTS:
        return word
    m = re.match(r"^(?:verdict\s*:\s*)?(abnormal|normal|anomal(?:y|ous))\b", word)
    if m:
        return "abnormal" if m.group(1).startswith(("abn", "anom")) else "normal"
    return None


@dataclass(frozen=True)
class TokenLogprob:
    """One generated token's text and log-probability under the model."""

    text: str
    logprob: float


@dataclass(frozen=True)
class FastAnswer:
    """R-Log-fast's answer. ``confidence`` is the probability of ``verdict``; ``p_abnormal`` is
    set when the verdict was scored in one pass (and then the verdict is its threshold's);
    ``p_model`` is the model's own P(abnormal) before fusion with the session's evidence."""

    verdict: str | None
    confidence: float | None
    rationale: str = ""
    error: str | None = None
    p_abnormal: float | None = None
    p_model: float | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class FullAnswer:
    """R-Log's answer. Written under constraint, ``p_abnormal`` and ``category_p`` are the
    probabilities of the choices scored; ``fallback`` names the fields filled from the
    session's evidence because the model left them empty."""

    verdict: str | None
    category: str | None = None
    interpretation: str = ""
    root_cause: str = ""
    action: str = ""
    reasoning: str = ""
    error: str | None = None
    fields: dict[str, str] = field(default_factory=dict)
    p_abnormal: float | None = None
    category_p: float | None = None
    fallback: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None


def verdict_confidence(completion: str, tokens: Sequence[TokenLogprob], start: int, end: int) -> float | None:
    """Probability the model gave the verdict text ``completion[start:end]``.

    Sums the log-probabilities of the generated tokens that overlap that span; tokens are
    laid end to end over ``completion``. None when the backend returned no log-probs or
    the token texts do not line up with the completion.
    """
    if not tokens or "".join(t.text for t in tokens) != completion:
        return None
    total, pos, hit = 0.0, 0, False
    for tok in tokens:
        nxt = pos + len(tok.text)
        if nxt > start and pos < end:
            total += tok.logprob
            hit = True
        pos = nxt
    return math.exp(total) if hit else None


def parse_fast(completion: str, prefill: str = "<answer>", tokens: Sequence[TokenLogprob] = ()) -> FastAnswer:
    """Read a fast-model output; a malformed one comes back with ``error`` set."""
    text = prefill + completion
    m = _FAST_SHAPE.match(text)
    if m is None:
        # Serving stops at </answer>; a stop that fired early still leaves a readable verdict.
        m2 = re.match(r"^\s*<answer>(.*?)</answer>", text, re.DOTALL)
        if m2 is None:
            return FastAnswer(None, None, error="no <answer>…</answer> at the start of the output")
        m = m2
    verdict = _verdict_of(m.group(1))
    if verdict is None:
        return FastAnswer(None, None, error=f"answer is not normal/abnormal: {m.group(1).strip()[:60]!r}")
    rationale = (m.group(2) or "").strip() if m.re is _FAST_SHAPE else ""
    span_start = m.start(1) - len(prefill) + (len(m.group(1)) - len(m.group(1).lstrip()))
    span_end = span_start + len(m.group(1).strip())
    conf = verdict_confidence(completion, tokens, max(span_start, 0), span_end)
    return FastAnswer(verdict, conf, rationale)


def parse_structured(answer: str) -> dict[str, str]:
    """``key: value`` lines of a structured answer, keys normalised; continuation lines append."""
    out: dict[str, str] = {}
    key = None
    for line in answer.strip().splitlines():
        m = re.match(r"^\s*[-*]?\s*\**([A-Za-z][A-Za-z _-]{1,30}?)\**\s*:\s*(.*)$", line)
        name = _KEY_ALIASES.get(m.group(1).strip().lower().replace(" ", "_").replace("-", "_")) if m else None
        if name:
            key = name
            out[key] = m.group(2).strip()
        elif key and line.strip():
            out[key] = (out[key] + " " + line.strip()).strip()
    return out


def parse_full(completion: str, prefill: str = "<think>") -> FullAnswer:
    """Read a full-model output: reasoning plus a structured or bare-verdict answer."""
    text = prefill + completion
    if not check_format(text, "full"):
        return FullAnswer(None, error="output is not <think>…</think><answer>…</answer> with one of each tag")
    m = _FULL_SHAPE.match(text)
    assert m is not None
    reasoning, answer = m.group(1).strip(), m.group(2).strip()
    fields = parse_structured(answer)
    verdict = _verdict_of(fields.get("verdict", "")) if "verdict" in fields else _verdict_of(answer)
    if verdict is None:
        return FullAnswer(None, reasoning=reasoning, fields=fields, error="answer has no normal/abnormal verdict")
    cat = fields.get("category", "").strip().strip(".").lower() or None
    if cat is not None and cat not in CATEGORIES:
        cat = next((c for c in CATEGORIES if c in cat), None)
    return FullAnswer(verdict, cat, fields.get("interpretation", ""), fields.get("root_cause", ""),
                      fields.get("action", ""), reasoning, fields=fields)
