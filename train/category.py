"""Fit the alert's category model (``rlog.cascade.category``) on simulated incidents.

Examples are every abnormal window of the recipe's simulated runs (its seed grid, which
benchmarks stay off), each with the injected fault's category and the evidence the
stream would show for it. The fit is a softmax regression with an L2 penalty (pure numpy,
seconds). What it is worth is measured, not assumed, and stored in the model's ``fit``:

- accuracy on the fit's own examples, beside the evidence rule alone (``category_of``);
- leave-one-fault-type-out: each fault type scored by a model fitted without it, the
  closest this data comes to an incident of a kind never seen (which is what real logs
  bring); a model that only memorised the simulator's faults scores badly here. Where the
  fault type is the only one of its category, the category itself is then unseen: the
  model can name it only from its own words (the feature weights are shared by all
  categories) against a prior that learned it never occurs, so the mean over fault types
  whose category other faults show is reported apart.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from rlog.cascade.category import FEATURES, CategoryModel, category_features, save_category_model
from rlog.cascade.fallback import category_of
from rlog.contract.prompts import CATEGORIES


@dataclass(frozen=True)
class CategoryExample:
    category: str
    scenario: str
    evidence: list[dict]
    group: str = ""  # the run it comes from


def sim_category_examples(seeds: Sequence[int], *, lines: int, fault_gap_s: float, benign_gap_s: float,
                          progress: bool = True) -> list[CategoryExample]:
    """Every abnormal window with a fault category in the simulated runs of ``seeds``."""
    from rlog.cascade.alerts import pick_evidence
    from rlog.config import CascadeConfig
    from rlog.sim.engine import SimConfig
    from train.environment import SimEnvironment

    cascade = CascadeConfig()
    out = []
    for seed in tqdm(seeds, unit="run", desc="simulating incidents", disable=not progress, file=sys.stderr):
        env = SimEnvironment(SimConfig(seed=seed, lines=lines, fault_gap_s=fault_gap_s, benign_gap_s=benign_gap_s))
        for ep in env.episodes():
            t = ep.truth
            if t.label and t.category:
                ev = pick_evidence(ep.session, ep.view(cascade), cascade.evidence_lines)
                out.append(CategoryExample(t.category, t.scenario or "", ev, f"sim{seed}"))
    return out


def _arrays(examples: Sequence[CategoryExample]) -> tuple[np.ndarray, np.ndarray]:
    x = np.array([category_features(e.evidence) for e in examples], dtype=np.float64).reshape(
        len(examples), len(CATEGORIES), len(FEATURES))
    y = np.array([CATEGORIES.index(e.category) for e in examples])
    return x, y


def fit_category_model(examples: Sequence[CategoryExample], *, l2: float = 0.01, cross_l2: float | None = None,
                       bias: bool = True, iters: int = 3000, lr: float = 0.5) -> CategoryModel:
    """The softmax regression for these examples (pure; deterministic: full-batch gradient descent from zero).

    Every category's examples weigh the same in total (faults of one kind are not allowed
    to decide the others). ``cross_l2``: the penalty on the cross-category matrix (default
    ``l2``); ``bias``: fit a prior per category (off: every category starts equal).
    """
    if not examples:
        raise ValueError("the category model needs examples")
    cross_l2 = l2 if cross_l2 is None else cross_l2
    x, y = _arrays(examples)
    n, c, k = x.shape
    counts = np.bincount(y, minlength=c).astype(np.float64)
    sw = (n / (np.count_nonzero(counts) * counts[y]))[:, None] / n  # per-example weight, summing to 1
    w, cross, b = np.zeros(k), np.zeros((c, c)), np.zeros(c)
    rows = np.arange(n)
    for _ in range(iters):
        z = x @ w + b + x[:, :, 0] @ cross.T
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        g = p
        g[rows, y] -= 1.0
        g *= sw
        w -= lr * (np.einsum("nc,nck->k", g, x) + l2 * w)
        if bias:
            b -= lr * (g.sum(axis=0) + l2 * b)
        cross -= lr * (g.T @ x[:, :, 0] + cross_l2 * cross)
    return CategoryModel([round(float(v), 5) for v in w], [[round(float(v), 5) for v in r] for r in cross],
                         [round(float(v), 5) for v in b])


def accuracy(model: CategoryModel, examples: Sequence[CategoryExample]) -> float | None:
    if not examples:
        return None
    hits = 0
    for e in examples:
        hits += model.choose(e.evidence)[0] == e.category
    return round(hits / len(examples), 4)


def rule_accuracy(examples: Sequence[CategoryExample]) -> float | None:
    return round(sum(category_of(e.evidence) == e.category for e in examples) / len(examples), 4) if examples else None


def fit_report(examples: Sequence[CategoryExample], **kw) -> CategoryModel:
    """The model fitted on all examples, with what it is worth in ``fit`` (see the module's docstring)."""
    t0 = time.perf_counter()
    model = fit_category_model(examples, **kw)
    loso = {}
    for scenario in sorted({e.scenario for e in examples}):
        rest = [e for e in examples if e.scenario != scenario]
        own = [e for e in examples if e.scenario == scenario]
        loso[scenario] = {"n": len(own), "category": own[0].category, "fitted_without": accuracy(
            fit_category_model(rest, **kw), own) if rest else None, "rule": rule_accuracy(own),
            "category_seen": any(e.category == own[0].category for e in rest)}
    seen = [v for v in loso.values() if v["category_seen"]]
    fit = {"n": len(examples), "by_category": dict(sorted(Counter(e.category for e in examples).items())),
           "runs": sorted({e.group for e in examples}), "accuracy": accuracy(model, examples),
           "rule_accuracy": rule_accuracy(examples), "leave_one_fault_type_out": loso,
           "leave_one_fault_type_out_mean": round(float(np.mean([v["fitted_without"] for v in loso.values()])), 4),
           "rule_mean": round(float(np.mean([v["rule"] for v in loso.values()])), 4),
           # a new kind of fault of a category other faults already showed (the fair generalisation test)
           "seen_category_mean": round(float(np.mean([v["fitted_without"] for v in seen])), 4) if seen else None,
           "seen_category_rule_mean": round(float(np.mean([v["rule"] for v in seen])), 4) if seen else None,
           "fit_s": round(time.perf_counter() - t0, 1),
           **{k: v for k, v in kw.items() if k in ("l2", "cross_l2", "bias", "iters")}}
    return CategoryModel(model.weights, model.cross, model.bias, fit)


def fit_and_save(adapter: Path, seeds: Sequence[int], *, lines: int, fault_gap_s: float, benign_gap_s: float,
                 l2: float = 0.01, progress: bool = True) -> tuple[Path, CategoryModel]:
    examples = sim_category_examples(seeds, lines=lines, fault_gap_s=fault_gap_s, benign_gap_s=benign_gap_s,
                                     progress=progress)
    model = fit_report(examples, l2=l2)
    fit = {**model.fit, "seeds": list(seeds), "lines_per_run": lines}
    model = CategoryModel(model.weights, model.cross, model.bias, fit)
    return save_category_model(adapter, model), model
