"""Pick a stage's checkpoint on validation, not on the benchmark.

SFT on a small model overfits or underfits within one epoch depending on the data mix, so
the last step is not reliably the best. Every saved checkpoint (and the final model) scores
the recipe's validation detection examples in one pass, as R-Log-fast is served, and the
one with the highest average precision (the mean over data sources, each weighing the
same) becomes the stage's ``final``; the original final is
kept as ``final-last``. Average precision ranks models without a threshold, which the
calibration fits afterwards on the same split.

The pick is recorded in ``<run>/<variant>/<stage>/picked.json`` (every candidate's scores)
and is done once: a later call returns the record.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

PICKED = "picked.json"
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


def average_precision(probs: Sequence[float], labels: Sequence[bool]) -> float:
    """Area under the precision-recall curve, stepwise (tied scores enter together)."""
    if len(probs) != len(labels):
        raise ValueError(f"{len(probs)} scores but {len(labels)} labels")
    positives = sum(labels)
    if not positives:
        raise ValueError("average precision needs at least one abnormal example")
    order = sorted(range(len(probs)), key=lambda i: -probs[i])
    tp = fp = 0
    ap = 0.0
    i = 0
    while i < len(order):
        j = i
        group_tp = 0
        while j < len(order) and probs[order[j]] == probs[order[i]]:
            group_tp += bool(labels[order[j]])
            j += 1
        tp += group_tp
        fp += (j - i) - group_tp
        ap += group_tp / positives * tp / (tp + fp)
        i = j
    return ap


def source_average_precision(probs: Sequence[float], labels: Sequence[bool], groups: Sequence[str]) -> float:
    """The mean of each source's average precision (sources with anomalies): every source
    weighs the same, however many validation sessions it has (see ``group_weights``)."""
    by: dict[str, list[int]] = {}
    for i, g in enumerate(groups):
        by.setdefault(g, []).append(i)
    aps = [average_precision([probs[i] for i in idx], [labels[i] for i in idx]) for idx in by.values()
           if any(labels[i] for i in idx)]
    if not aps:
        raise ValueError("average precision needs at least one abnormal example")
    return sum(aps) / len(aps)


def candidates(stage: Path, last: int | None = None) -> list[Path]:
    """The stage's checkpoints in step order, then its final model (adapters only); with
    ``last``, only the newest ``last`` of them (the final model always among them)."""
    if last is not None and last < 1:
        raise ValueError(f"--last must be at least 1, got {last}")
    cks = sorted((p for p in stage.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()),
                 key=lambda p: int(p.name.split("-")[-1]))
    out = [p for p in [*cks, stage / "final"] if all((p / f).is_file() for f in ADAPTER_FILES)]
    if len(out) > 1 and out[-1].name == "final":  # the last checkpoint is often the final model itself
        weights = (out[-1] / ADAPTER_FILES[1]).read_bytes()
        out = [p for p in out[:-1] if (p / ADAPTER_FILES[1]).read_bytes() != weights] + [out[-1]]
    return out[-last:] if last is not None else out


def pick_checkpoint(recipe, run: str | Path, variant: str, stage: str, *, last: int | None = None,
                    progress: bool = True) -> dict:
    """Score every candidate (or the ``last`` ones) on validation, make the best the stage's final;
    returns the record."""
    from rlog.backends import load_backend
    from rlog.config import ModelSpec
    from rlog.models import resolve_model
    from train.calibrate import fit_calibration, score_examples
    from train.runs import fit_examples, load_tokenizer, prepared_examples, stage_dir

    folder = stage_dir(run, variant, stage)
    record_path = folder / PICKED
    if record_path.is_file():
        return json.loads(record_path.read_text(encoding="utf-8"))
    cands = candidates(folder, last)
    if not cands or cands[-1].name != "final":
        raise FileNotFoundError(f"{folder}/final holds no LoRA adapter: finish `rlog train {stage}` first")
    recipe = recipe.for_variant(variant)
    tok = load_tokenizer(resolve_model(recipe.base_model))
    splits, _ = prepared_examples(recipe, variant, tok, recipe.data.max_prompt_tokens)
    examples = fit_examples(recipe, splits)
    labels = [e.label == "abnormal" for e in examples]
    groups = [e.source for e in examples]
    rows = []
    for c in cands:
        t0 = time.perf_counter()
        backend = load_backend(ModelSpec(model=recipe.base_model, adapter=str(c), device=recipe.device))
        probs = score_examples(backend, examples, batch_size=recipe.eval.batch_size, progress=progress)
        cal = fit_calibration(probs, labels, groups=groups)
        rows.append({"candidate": c.name, "average_precision": round(source_average_precision(probs, labels, groups), 4),
                     "pooled_average_precision": round(average_precision(probs, labels), 4),
                     "best_f1": cal.fit["at_threshold"]["f1"], "threshold": cal.threshold,
                     "scored_s": round(time.perf_counter() - t0, 1)})
        if progress:
            print(f"pick: {c.name}: AP {rows[-1]['average_precision']}, best F1 {rows[-1]['best_f1']}", flush=True)
        del backend
    # highest AP; on a tie the later candidate (more training on the same evidence)
    best = max(range(len(rows)), key=lambda i: (rows[i]["average_precision"], i))
    picked = cands[best]
    record = {"variant": variant, "stage": stage, "split": "val", "examples": len(examples),
              "abnormal": int(sum(labels)), "picked": picked.name, "candidates": rows}
    if picked.name != "final":
        last = folder / "final-last"
        if last.exists():
            shutil.rmtree(last)
        shutil.move(str(folder / "final"), last)
        shutil.copytree(picked, folder / "final", ignore=shutil.ignore_patterns(
            "optimizer.pt", "scheduler.pt", "rng_state*.pth", "trainer_state.json", "training_args.bin"))
        meta = json.loads((last / "rlog_train.json").read_text(encoding="utf-8"))
        meta["picked"] = picked.name
        (folder / "final" / "rlog_train.json").write_text(json.dumps(meta, indent=2, default=str), encoding="utf-8")
    record_path.write_text(json.dumps(record, indent=2), encoding="utf-8")
    return record
