"""Fill what R-Log left empty from the session's own evidence, and say so.

An alert an operator cannot read is worse than none: it is paged and then ignored. So
every alert carries a category, an interpretation, a root cause and an action. When the
model wrote them, they are the model's; when it did not (no full model, a failed call, a
malformed or empty answer), they are filled here from the evidence (the failing line, the
words it uses) and listed in ``FullAnswer.fallback`` and the alert's ``fallback``, so
nobody mistakes a rule's guess for the model's analysis.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace

from rlog.cascade.alerts import headline_of
from rlog.contract.answers import FullAnswer
from rlog.contract.prompts import CATEGORIES
from rlog.pipeline.sessions import Session

# Words that point at a root-cause category, checked on the evidence lines (most telling first).
CATEGORY_HINTS: tuple[tuple[str, re.Pattern], ...] = tuple((c, re.compile(p, re.IGNORECASE)) for c, p in (
    ("security", r"\b(auth\w*|login|password|permission denied|access denied|certificate|tls|ssl|unauthori[sz]ed|"
                 r"forbidden|brute|invalid user|intrusion)\b"),
    ("memory", r"\b(out of memory|outofmemory\w*|oom\w*|heap|memory|malloc|gc overhead|swap)\b"),
    ("storage", r"\b(disk|filesystem|file system|mount\w*|i/o error|volume|raid|no space|inode|sector|hdfs|"
                r"replica\w*|block)\b"),
    ("network", r"\b(connection|network|socket|unreachable|timed out|timeout|dns|packet|link down|refused|route|"
                r"interconnect|torus)\b"),
    ("hardware", r"\b(machine check|mce|ecc|cpu|temperature|fan|power|voltage|hardware|node card|parity|"
                 r"kernel panic|bios|firmware)\b"),
    ("configuration", r"\b(config\w*|property|setting|invalid value|missing key|parameter|option|misconfigur\w*)\b"),
    ("dependency", r"\b(upstream|dependency|service unavailable|503|circuit breaker|database|backend|jdbc|sql\w*|"
                   r"postgres\w*|mysql|mongo\w*|redis|db|connection pool)\b"),
))

# What an operator should do first, per category: generic, and marked as such in the alert.
ACTIONS = {
    "hardware": "Take the host out of service and run hardware diagnostics (machine-check log, memory, CPU, "
                "sensors); replace the failing part.",
    "storage": "Check the disk, volume or filesystem in the failing line (SMART, kernel log, free space, mount "
               "state) and move load off it until it is healthy.",
    "network": "Check connectivity between the hosts in the failing line (links, switch, DNS, firewall) and "
               "confirm the connections recover.",
    "memory": "Find what exhausted memory on the host (heap dump, recent traffic); fix the leak or bound the "
              "limit, then restart the process.",
    "configuration": "Compare the configuration in the failing line with the last good version; correct or roll "
                     "it back and validate before redeploying.",
    "dependency": "Check the health of the dependency the failing line names; restore or fail it over, and keep "
                  "callers backing off meanwhile.",
    "security": "Check the account, source or credential in the failing line for misuse; block a hostile "
                "source and renew or fix the credential.",
    "software": "Read the error or stack trace of the failing component; roll back its latest change or fix the "
                "failing path, and watch its error rate.",
}


_HINTS = dict(CATEGORY_HINTS)


def hints(e: dict) -> list[float]:
    """Per category (``CATEGORIES`` order), 1.0 when its hint words occur in the entry's line or template."""
    return [float(c in _HINTS and bool(_HINTS[c].search(e["line"]) or _HINTS[c].search(e["template"])))
            for c in CATEGORIES]


def category_of(evidence: Sequence[dict]) -> str:
    """The category the evidence's words point at: hints on failing lines count double; default software."""
    score = [0.0] * len(CATEGORIES)
    for e in evidence:
        weight = 2.0 if "failure" in e["marks"] else 1.0
        score = [v + weight * h for v, h in zip(score, hints(e), strict=True)]
    best = max(range(len(CATEGORIES)), key=lambda c: (score[c], -c))
    return CATEGORIES[best] if score[best] > 0 else "software"


def complete(answer: FullAnswer | None, session: Session, evidence: Sequence[dict]) -> FullAnswer:
    """``answer`` with every empty field filled from the evidence (named in ``fallback``); never None."""
    if answer is None:
        answer = FullAnswer(None)
    filled = list(answer.fallback)
    line = headline_of(evidence) or (session.lines[0].raw if session.lines else "")
    quoted = f'"{line[:200]}"' if line else "its lines"
    category = answer.category
    if category not in CATEGORIES:
        category = category_of(evidence)
        filled.append("category")
    failing = sum("failure" in e["marks"] for e in evidence)
    values = {}
    if not answer.interpretation.strip():
        n = len(session.lines) + session.dropped_lines
        what = f"{failing} of its telling templates state a failure; the first" if failing else "the most unusual line"
        values["interpretation"] = f"{session.source} logged {n} lines in this session; {what}: {quoted}."
    if not answer.root_cause.strip():
        values["root_cause"] = f"Not determined by a model; the failing line points to a {category} problem: {quoted}."
    if not answer.action.strip():
        values["action"] = ACTIONS[category]
    filled += [k for k in ("interpretation", "root_cause", "action") if k in values]
    return replace(answer, category=category, fallback=filled, **values)
