"""The plain evidence a session view carries, as numbers, to fuse with R-Log-fast's score.

A 135M model fine-tuned on a few thousand sessions is a noisy reader of what the view
already states outright: that a template is new for its source, that a line carries an
ERROR level, that a template says "failed". Classic detectors live on exactly these
signals. Rather than hope the model weighs them right, the calibration fits a small
logistic model over the model's logit and these features on validation data (every source
weighing the same), so the score that is thresholded is the model's reading corrected by
the evidence, with weights learned, not hand-set. Features are shares and flags in [0, 1]
so the fit transfers between systems whose sessions differ in length.
"""

from __future__ import annotations

import math
import re

from rlog.contract.representation import SessionView, level_rank

# Words that state a failure in a template, in any casing: what an operator greps for.
FAILURE_WORDS = re.compile(
    r"\b(errors?|fail(s|ed|ure|ures|ing)?|fatal|exceptions?|panic(ked)?|crash(ed|es)?|refused|timed out|timeouts?|"
    r"denied|corrupt(ed|ion)?|unreachable|unavailable|killed|abort(s|ed|ing)?|segfault|out of memory|oom|"
    r"unable|cannot|can't|invalid|lost|dropped|degraded|overload(ed)?|exhausted|mismatch|violation|"
    r"rejected|unhealthy|stalled|hung|deadlock)\b",
    re.IGNORECASE)

FEATURES = ("new_lines", "any_new", "rare_lines", "warn_level", "error_level", "failure_templates", "any_failure",
            "variety")


def _share(part: float, whole: float) -> float:
    return part / whole if whole else 0.0


def evidence_of(view: SessionView) -> dict[str, float]:
    """The view's evidence features (pure), each in [0, 1], keyed as in ``FEATURES``.

    - ``new_lines`` / ``rare_lines``: share of the session's lines whose template is new / rare
      for its source; ``any_new``: at least one new template;
    - ``warn_level`` / ``error_level``: some line carries a warning-rank / error-rank (or worse)
      severity field;
    - ``failure_templates``: share of distinct templates that state a failure; ``any_failure``;
    - ``variety``: distinct templates over lines (a session of one repeated line is 0).
    """
    lines = sum(e.count for e in view.entries) or 1
    ranks = [level_rank(e.level) for e in view.entries if e.level]
    failing = [e for e in view.entries if FAILURE_WORDS.search(e.template)]
    n = len(view.entries)
    return {
        "new_lines": _share(sum(e.count for e in view.entries if e.novelty == "new"), lines),
        "any_new": float(any(e.novelty == "new" for e in view.entries)),
        "rare_lines": _share(sum(e.count for e in view.entries if e.novelty == "rare"), lines),
        "warn_level": float(any(r >= 1 for r in ranks)),
        "error_level": float(any(r >= 2 for r in ranks)),
        "failure_templates": _share(len(failing), n),
        "any_failure": float(bool(failing)),
        "variety": _share(n - 1, lines - 1) if lines > 1 else 0.0,
    }


def logit(p: float, clip: float = 8.0) -> float:
    """log(p / (1 - p)), clipped so a saturated score does not dominate the fit."""
    p = min(max(p, 1e-9), 1 - 1e-9)
    return max(-clip, min(clip, math.log(p / (1 - p))))
