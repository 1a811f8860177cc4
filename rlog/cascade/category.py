"""The root-cause category of an alert: R-Log's choice read together with the evidence.

A 135M R-Log picks a category from what it has seen most in training (measured: it says
"hardware" for nearly every incident, whatever the lines say), while the evidence states
the category outright more often than not: a failing line says "OutOfMemoryError", "I/O
error", "Connection refused", "authentication failure". Reading the words alone is not
enough either: a dying service's consequences (callers' "connection refused") outnumber
its cause, and some words belong to another category by convention (a disk's unreadable
sectors are a hardware fault, not a storage one).

So the category is a small softmax model fitted on simulated incidents of the training
seeds (``train.category``) and stored with the R-Log adapter (``rlog_category.json``). Per
category it reads the category's hint words (``rlog.cascade.fallback.CATEGORY_HINTS``) on
the earliest failing evidence line (the root cause comes first; what follows is its
consequence), on the earliest line that names any category, and their share on failing
and on other lines; a matrix lets the earliest failing line's words vote for another
category (the conventions). R-Log's own choice is kept in the answer (``category_p`` is
the model's probability of the category shown) but does not vote: measured on held-out
incidents it carried no information. The features are shares and flags over generic
words, not a system's vocabulary, so the fit is one of how categories show in logs.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rlog.cascade.fallback import hints
from rlog.contract.prompts import CATEGORIES
from rlog.errors import RlogError

CATEGORY_FILE = "rlog_category.json"
FEATURES = ("first_failing", "first_named", "failing_share", "other_share")


def category_features(evidence: Sequence[dict]) -> list[list[float]]:
    """Per category (rows in ``CATEGORIES`` order), the ``FEATURES`` (pure; evidence in log order)."""
    rows = [("failure" in e["marks"], hints(e)) for e in evidence]
    zero = [0.0] * len(CATEGORIES)
    first_failing = next((h for failing, h in rows if failing and any(h)), zero)
    first_named = next((h for _, h in rows if any(h)), zero)

    def share(sel: list[list[float]]) -> list[float]:
        return [sum(h[c] for h in sel) / len(sel) for c in range(len(CATEGORIES))] if sel else zero

    failing_share = share([h for failing, h in rows if failing])
    other_share = share([h for failing, h in rows if not failing])
    return [[first_failing[c], first_named[c], failing_share[c], other_share[c]] for c in range(len(CATEGORIES))]


@dataclass(frozen=True)
class CategoryModel:
    """z_c = bias_c + Σ_k weights_k·x_ck + Σ_c' cross[c][c']·first_failing_c'; P = softmax(z)."""

    weights: list[float]
    cross: list[list[float]]
    bias: list[float]
    fit: dict = field(default_factory=dict)

    def probs(self, evidence: Sequence[dict]) -> list[float]:
        """P(category) over ``CATEGORIES`` for this evidence (pure)."""
        x = category_features(evidence)
        first = [row[0] for row in x]
        z = []
        for c in range(len(CATEGORIES)):
            v = self.bias[c] + sum(w * f for w, f in zip(self.weights, x[c], strict=True))
            v += sum(m * f for m, f in zip(self.cross[c], first, strict=True))
            z.append(v)
        top = max(z)
        e = [math.exp(v - top) for v in z]
        s = sum(e)
        return [v / s for v in e]

    def choose(self, evidence: Sequence[dict]) -> tuple[str, float]:
        """The most likely category and its probability."""
        p = self.probs(evidence)
        best = max(range(len(p)), key=p.__getitem__)
        return CATEGORIES[best], p[best]

    def to_json(self) -> dict:
        return {"categories": list(CATEGORIES), "features": list(FEATURES), **asdict(self)}


class CategoryModelError(RlogError, ValueError):
    pass


def load_category_model(adapter: str | Path | None) -> CategoryModel | None:
    """The category model stored with an R-Log adapter, or None when it has none."""
    if adapter is None:
        return None
    path = Path(adapter) / CATEGORY_FILE
    if not path.is_file():
        return None
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
        if list(d["categories"]) != list(CATEGORIES) or list(d["features"]) != list(FEATURES):
            raise ValueError("it was fitted for another taxonomy or feature set")
        n = len(CATEGORIES)
        m = CategoryModel([float(w) for w in d["weights"]], [[float(v) for v in row] for row in d["cross"]],
                          [float(b) for b in d["bias"]], dict(d.get("fit", {})))
        if len(m.weights) != len(FEATURES) or len(m.bias) != n or len(m.cross) != n or any(len(r) != n for r in m.cross):
            raise ValueError("its weights have the wrong shape")
    except (ValueError, KeyError, TypeError) as e:
        raise CategoryModelError(f"{path} is not a category model ({e}); delete it or run "
                                 "`rlog train category`") from None
    return m


def save_category_model(adapter: str | Path, model: CategoryModel) -> Path:
    path = Path(adapter) / CATEGORY_FILE
    path.write_text(json.dumps(model.to_json(), indent=2) + "\n", encoding="utf-8")
    return path


def category_model_for(adapter: str | Path) -> CategoryModel:
    """The category model in an adapter folder (or a built-in adapter's); a clear error when it has none."""
    from rlog.models import ADAPTERS_DIR, BUILTIN_ADAPTERS

    key = str(adapter).strip().lower()
    path = ADAPTERS_DIR / key if key in BUILTIN_ADAPTERS else Path(adapter).expanduser()
    model = load_category_model(path)
    if model is None:
        raise CategoryModelError(f"cascade.explain.category is 'fitted' but {str(path)!r} holds no {CATEGORY_FILE}; "
                                 f"fit one (`rlog train category --adapter {path}`), or set "
                                 "cascade.explain.category to rule or rlog")
    return model
