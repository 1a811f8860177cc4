"""Calibrate R-Log-fast's one-pass score on validation data, and store it with the adapter.

The fast model is served as a scorer: P(abnormal) at the verdict position. How high is
high enough depends on the model and its training mix, so the threshold is fitted on the
recipe's validation split (never on the benchmark's scored part) and written next to the
adapter (``rlog_calibration.json``), where the stream reads it:

- ``threshold``: the P(abnormal) that maximises F1 on validation (ties: the middle of the
  best run of cut points, the least fragile choice);
- ``band``: sessions this far below the threshold are unsure and escalate to R-Log; it
  reaches down to the lowest score of a validation anomaly the threshold misses, but
  never further than ``max_band`` (escalation costs R-Log calls);
- ``fusion``: a logistic model over the model's logit and the session's evidence features
  (``rlog.contract.evidence``), fitted first; the threshold and band are then fitted on the
  fused score. Whether fusion helps is measured, not assumed: the report scores each source
  left out of the fit (leave-one-source-out), model alone against fused.

Sources a benchmark scores (the recipe's ``eval.held_out_sources``) are never fitted on.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from rlog.contract.evidence import FEATURES, logit
from rlog.metrics import binary_scores
from rlog.models import Calibration, Fusion


def scores_at(probs: Sequence[float], labels: Sequence[bool], threshold: float) -> dict:
    b = binary_scores([(y, p >= threshold) for p, y in zip(probs, labels, strict=True)])
    negatives = b.fp + b.tn
    return {"precision": round(b.precision, 4), "recall": round(b.recall, 4), "f1": round(b.f1, 4),
            "fpr": round(b.fp / negatives, 4) if negatives else None, "tp": b.tp, "fp": b.fp, "fn": b.fn, "tn": b.tn}


def group_weights(groups: Sequence[str] | None, n: int) -> list[float]:
    """Per-example weights that give every group (data source) the same total weight.

    Validation mixes sources of very different sizes (thousands of simulated windows, tens of
    real BGL windows); unweighted, the threshold would be the one that suits the simulator.
    Weighting by source fits the threshold that does best on the average source, which is
    the better guess for logs of a system none of them come from.
    """
    if groups is None:
        return [1.0] * n
    if len(groups) != n:
        raise ValueError(f"{len(groups)} groups for {n} scores")
    sizes: dict[str, int] = {}
    for g in groups:
        sizes[g] = sizes.get(g, 0) + 1
    return [n / (len(sizes) * sizes[g]) for g in groups]  # they still sum to n


def weighted_f1(probs: Sequence[float], labels: Sequence[bool], weights: Sequence[float], threshold: float) -> float:
    tp = fp = fn = 0.0
    for p, y, w in zip(probs, labels, weights, strict=True):
        flagged = p >= threshold
        tp += w * (flagged and y)
        fp += w * (flagged and not y)
        fn += w * (not flagged and y)
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def fit_calibration(probs: Sequence[float], labels: Sequence[bool], *, groups: Sequence[str] | None = None,
                    max_band: float = 0.15, min_threshold: float = 0.02) -> Calibration:
    """The threshold and band for these validation scores (pure).

    ``groups`` (each example's data source) weighs every source equally in the F1 the
    threshold maximises; without them every example counts the same.
    """
    if not probs or len(probs) != len(labels):
        raise ValueError("calibration needs one score per label, and at least one")
    if not any(labels):
        raise ValueError("calibration needs validation data with anomalies")
    weights = group_weights(groups, len(probs))
    cuts = sorted(set(probs))
    # Candidate thresholds: midpoints between consecutive distinct scores (and just above the top).
    cands = [max(min_threshold, (a + b) / 2) for a, b in zip(cuts, cuts[1:], strict=False)] or [0.5]
    f1s = [round(weighted_f1(probs, labels, weights, t), 6) for t in cands]
    best = max(f1s)
    run: list[int] = []
    best_run: list[int] = []
    for i, f in enumerate(f1s):
        run = run + [i] if f == best else []
        if len(run) > len(best_run):
            best_run = run
    threshold = round(cands[best_run[len(best_run) // 2]], 4)
    missed = [p for p, y in zip(probs, labels, strict=True) if y and p < threshold]
    band = round(min(max_band, threshold - min(missed)) if missed else 0.0, 4)
    band = min(band, round(threshold * 0.9, 4))
    fit = {"n": len(probs), "abnormal": int(sum(labels)), "at_threshold": scores_at(probs, labels, threshold),
           "escalated_share": round(sum(p >= threshold - band for p in probs) / len(probs), 4)}
    if groups is not None:
        fit["weighting"] = "every source weighs the same"
        fit["source_weighted_f1"] = round(best, 4)
    return Calibration(threshold, band, fit)


def fit_fusion(probs: Sequence[float], evidence: Sequence[dict[str, float]], labels: Sequence[bool], *,
               groups: Sequence[str] | None = None, c: float = 0.1) -> Fusion:
    """A logistic fusion of the model's logit and the evidence features (every source weighing the same).

    L2-regularised (``c`` small) so that with a few hundred validation sessions the weights
    stay modest and a feature the fit sources happen to share does not take over.
    """
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    if len({bool(y) for y in labels}) < 2:
        raise ValueError("fusion needs validation data with both normal and abnormal sessions")
    x = np.array([[logit(p)] + [ev[f] for f in FEATURES] for p, ev in zip(probs, evidence, strict=True)])
    m = LogisticRegression(C=c, max_iter=2000).fit(x, [bool(y) for y in labels],
                                                  sample_weight=group_weights(groups, len(probs)))
    w = [round(float(v), 4) for v in m.coef_[0]]
    return Fusion(w[0], dict(zip(FEATURES, w[1:], strict=True)), round(float(m.intercept_[0]), 4))


def fused(fusion: Fusion | None, probs: Sequence[float], evidence: Sequence[dict[str, float]]) -> list[float]:
    return list(probs) if fusion is None else [fusion.apply(logit(p), ev) for p, ev in zip(probs, evidence, strict=True)]


def fit_scorer(probs: Sequence[float], evidence: Sequence[dict[str, float]] | None, labels: Sequence[bool], *,
               groups: Sequence[str] | None = None, c: float = 0.1) -> Calibration:
    """The fusion (when ``evidence`` is given), then the threshold and band of the fused score (pure)."""
    fusion = fit_fusion(probs, evidence, labels, groups=groups, c=c) if evidence is not None else None
    cal = fit_calibration(fused(fusion, probs, evidence or []), labels, groups=groups)
    return Calibration(cal.threshold, cal.band, cal.fit, fusion)


def leave_one_source_out(probs: Sequence[float], evidence: Sequence[dict[str, float]], labels: Sequence[bool],
                         groups: Sequence[str], *, c: float = 0.1) -> dict[str, dict]:
    """Each source scored by a scorer fitted on the others: model alone vs fused.

    The question calibration must answer for a system it never saw: does the fusion still
    help there? (A source with a single class is skipped as a fit source would be.)
    """
    out: dict[str, dict] = {}
    for src in sorted(set(groups)):
        fit = [i for i, g in enumerate(groups) if g != src]
        held = [i for i, g in enumerate(groups) if g == src]
        fit_labels = [labels[i] for i in fit]
        if not any(fit_labels) or all(fit_labels):
            continue
        row: dict = {"n": len(held), "abnormal": int(sum(labels[i] for i in held))}
        for name, ev in (("model", None), ("fused", evidence)):
            cal = fit_scorer([probs[i] for i in fit], None if ev is None else [ev[i] for i in fit], fit_labels,
                             groups=[groups[i] for i in fit], c=c)
            scored = fused(cal.fusion, [probs[i] for i in held], [evidence[i] for i in held])
            row[name] = scores_at(scored, [labels[i] for i in held], cal.threshold)
        out[src] = row
    return out


def score_examples(backend, examples, *, batch_size: int = 8, progress: bool = True) -> list[float]:
    """P(abnormal) of every example's prompt, in batches, as served."""
    from tqdm import tqdm

    out: list[float] = []
    with tqdm(total=len(examples), desc="score", unit="ex", disable=not progress) as bar:
        for i in range(0, len(examples), batch_size):
            batch = examples[i:i + batch_size]
            out.extend(backend.score([e.prompt for e in batch]))
            bar.update(len(batch))
    return out


def calibrate_adapter(recipe, run: str | Path, variant: str, stage: str, *, adapter: str | None = None,
                      dtype: str = "auto", progress: bool = True) -> tuple[Path, Calibration, dict]:
    """Fit and write the calibration of a run's stage (or of ``adapter``) on the validation split.

    The scores are read at ``dtype`` (``auto``: what a worker on this machine would use) and
    the calibration is stored for that precision beside those of other precisions.
    Returns the adapter folder, the calibration, and a report with per-source scores.
    """
    from rlog.backends import can_score, load_backend
    from rlog.models import resolve_model, save_calibration
    from train.evaluate import model_spec_for
    from train.runs import fit_examples, load_tokenizer, prepared_examples

    recipe = recipe.for_variant(variant)
    spec = model_spec_for(recipe, run, variant, stage, adapter=adapter).model_copy(update={"dtype": dtype})
    if spec.adapter is None:
        raise ValueError(f"{stage} of {run} is not a LoRA adapter: nothing to store a calibration with")
    tok = load_tokenizer(resolve_model(spec.model))
    splits, _ = prepared_examples(recipe, variant, tok, recipe.data.max_prompt_tokens)
    examples = fit_examples(recipe, splits)
    backend = load_backend(spec)
    if not can_score(backend):
        raise ValueError(f"the {spec.backend} backend cannot score in one pass: calibrate with transformers")
    t0 = time.perf_counter()
    probs = score_examples(backend, examples, batch_size=recipe.eval.batch_size, progress=progress)
    labels = [e.label == "abnormal" for e in examples]
    groups = [e.source for e in examples]
    evidence = [e.meta.get("evidence") for e in examples]
    use_fusion = recipe.eval.fusion and all(ev is not None for ev in evidence)
    c = recipe.eval.fusion_c
    cal = fit_scorer(probs, evidence if use_fusion else None, labels, groups=groups, c=c)
    fitted_on = {"stage": stage} if adapter is None else {"adapter": Path(adapter).name}
    fit = {**cal.fit, "split": "val", "recipe": recipe.name, **fitted_on,
           "held_out_sources": sorted(set(recipe.eval.held_out_sources)), "scored_s": round(time.perf_counter() - t0, 1)}
    if use_fusion:
        fit["fusion_c"] = c
        fit["leave_one_source_out"] = leave_one_source_out(probs, evidence, labels, groups, c=c)  # type: ignore[arg-type]
    precision = str(getattr(backend, "precision", "") or "")
    cal = Calibration(cal.threshold, cal.band, fit, cal.fusion, precision)
    path = save_calibration(spec.adapter, cal)
    scored = fused(cal.fusion, probs, evidence)  # type: ignore[arg-type]
    by_source: dict[str, dict] = {}
    for src in sorted(set(groups)):
        idx = [i for i, g in enumerate(groups) if g == src]
        by_source[src] = {"n": len(idx), **scores_at([scored[i] for i in idx], [labels[i] for i in idx],
                                                     cal.threshold)}
    return path, cal, {"calibration": cal.to_json(), "by_source": by_source}
