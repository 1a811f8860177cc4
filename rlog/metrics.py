"""Quality metrics shared by `rlog analyze`, train/ evaluation and benchmarks."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import asdict, dataclass

from rlog.truth import SessionTruth


def percentile(values: Iterable[float], q: float) -> float | None:
    """The ``q`` quantile by nearest rank (no interpolation); None for no values."""
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] if s else None


def percentiles(values: Sequence[float], qs: Sequence[float] = (0.5, 0.95, 0.99), digits: int = 1) -> dict:
    """``{"p50": ..., "p95": ..., "p99": ...}`` by nearest rank, rounded; None for no values."""
    out = {}
    for q in qs:
        v = percentile(values, q)
        out[f"p{round(q * 100)}"] = round(v, digits) if v is not None else None
    return out


@dataclass(frozen=True)
class BinaryScores:
    """Confusion counts and the scores derived from them (abnormal is the positive class)."""

    tp: int
    fp: int
    fn: int
    tn: int

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def as_dict(self) -> dict[str, float]:
        return {**asdict(self), "precision": self.precision, "recall": self.recall, "f1": self.f1}


def binary_scores(pairs: Iterable[tuple[bool, bool]]) -> BinaryScores:
    """Scores from (truth, prediction) pairs."""
    tp = fp = fn = tn = 0
    for truth, pred in pairs:
        if truth and pred:
            tp += 1
        elif pred:
            fp += 1
        elif truth:
            fn += 1
        else:
            tn += 1
    return BinaryScores(tp, fp, fn, tn)


def bootstrap_intervals(truth: Sequence[bool], pred: Sequence[bool], *, resamples: int = 2000, level: float = 0.95,
                        seed: int = 0) -> dict[str, tuple[float, float] | None]:
    """Percentile-bootstrap intervals for F1, precision, recall and FPR over sessions.

    Benchmarks score tens to hundreds of sessions, so two methods' point F1s often differ by
    less than the noise; the interval says whether a gap means anything. Sessions are resampled
    with replacement; a resample where a score is undefined (no anomalies, no flags) is skipped
    for that score. None where no resample defines it.
    """
    import numpy as np

    t = np.asarray(truth, dtype=bool)
    q = np.asarray(pred, dtype=bool)
    if len(t) != len(q):
        raise ValueError(f"{len(t)} labels but {len(q)} predictions")
    if not len(t):
        return {"f1": None, "precision": None, "recall": None, "fpr": None}
    idx = np.random.default_rng(seed).integers(0, len(t), size=(resamples, len(t)))
    tt, qq = t[idx], q[idx]
    tp = (tt & qq).sum(1)
    fp = (~tt & qq).sum(1)
    fn = (tt & ~qq).sum(1)
    tn = (~tt & ~qq).sum(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        scores = {"f1": np.where(tp + fn > 0, 2 * tp / (2 * tp + fp + fn), np.nan),
                  "precision": np.where(tp + fp > 0, tp / (tp + fp), np.nan),
                  "recall": np.where(tp + fn > 0, tp / (tp + fn), np.nan),
                  "fpr": np.where(fp + tn > 0, fp / (fp + tn), np.nan)}
    lo, hi = (1 - level) / 2 * 100, (1 + level) / 2 * 100
    out: dict[str, tuple[float, float] | None] = {}
    for k, v in scores.items():
        v = v[~np.isnan(v)]
        out[k] = (float(np.percentile(v, lo)), float(np.percentile(v, hi))) if len(v) else None
    return out


def grouping_accuracy(truth: Sequence[Hashable], pred: Sequence[Hashable]) -> float:
    """Loghub's parsing accuracy: the share of lines whose predicted group is exactly a true group.

    A predicted cluster counts only if it contains all lines of one ground-truth event and
    nothing else; over- and under-merging both cost every line involved.
    """
    if len(truth) != len(pred):
        raise ValueError(f"truth has {len(truth)} lines, prediction {len(pred)}")
    if not truth:
        return 0.0
    true_groups: dict[Hashable, set[int]] = defaultdict(set)
    pred_groups: dict[Hashable, set[int]] = defaultdict(set)
    for i, (t, p) in enumerate(zip(truth, pred, strict=True)):
        true_groups[t].add(i)
        pred_groups[p].add(i)
    correct = 0
    for lines in pred_groups.values():
        first_truth = truth[next(iter(lines))]
        if true_groups[first_truth] == lines:
            correct += len(lines)
    return correct / len(truth)


class TruthScorer:
    """Per-scenario detection counts and root-cause accuracy from session ground truth.

    Root-cause accuracy is over the abnormal sessions the cascade caught: the full model's
    category must equal the injected fault's. A caught session with no category (not
    escalated, or an unreadable answer) counts as wrong: an alert without a cause does not
    help the on-call engineer.
    """

    def __init__(self) -> None:
        self.by_scenario: dict[str, dict[str, int]] = {}
        self.caught = self.answered = self.correct = 0
        self.confusion: Counter = Counter()

    def add(self, truth: SessionTruth, verdict: str, category: str | None) -> None:
        flagged = verdict == "abnormal"
        key = truth.scenario or "normal"
        row = self.by_scenario.setdefault(key, {"sessions": 0, "flagged": 0, "abnormal": int(truth.label)})
        row["sessions"] += 1
        row["flagged"] += flagged
        if truth.label and flagged:
            self.caught += 1
            self.answered += category is not None
            self.correct += category == truth.category
            self.confusion[(truth.category, category or "-")] += 1

    def root_cause(self) -> dict:
        return {"caught": self.caught, "answered": self.answered, "correct": self.correct,
                "accuracy": round(self.correct / self.caught, 4) if self.caught else None,
                "confusion": {f"{t}->{p}": n for (t, p), n in sorted(self.confusion.items())}}
