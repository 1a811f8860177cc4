"""`rlog train plan|sft|grpo|pick|calibrate|category|eval|export|ship|data`: the training recipe (train/), as commands."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import yaml

from rlog.config import ConfigError

log = logging.getLogger("rlog.train")


def parse_sets(items: list[str] | None) -> dict:
    """``--set grpo.max_steps=20`` → ``{"grpo": {"max_steps": 20}}`` (values read as YAML)."""
    out: dict = {}
    for item in items or []:
        if "=" not in item:
            raise ValueError(f"--set needs KEY=VALUE (e.g. sft.epochs=2), got {item!r}")
        key, raw = item.split("=", 1)
        node = out
        parts = key.strip().split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = yaml.safe_load(raw) if raw != "" else None
    return out


def _recipe(a: argparse.Namespace):
    from train.recipe import load_recipe

    over = parse_sets(a.set)
    if getattr(a, "base_model", None):
        over["base_model"] = a.base_model
    if getattr(a, "data_dir", None):
        over.setdefault("data", {})["shared_dir"] = a.data_dir
    return load_recipe(a.recipe, over)


def _variants(a: argparse.Namespace) -> list[str]:
    return ["fast", "full"] if a.variant == "both" else [a.variant]


def _run_dir(a: argparse.Namespace, recipe) -> Path:
    return Path(a.run or Path("runs") / recipe.name)


def cmd_plan(a: argparse.Namespace) -> int:
    """Validate the recipe with TRL's own config objects and print the stages, the export and the serving."""
    from train.plan import build_plan, render_plan

    recipe = _recipe(a)
    try:
        plan = build_plan(recipe, _variants(a), _run_dir(a, recipe), recipe_ref=a.recipe)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"recipe {a.recipe!r} does not validate: {e}") from None
    print(render_plan(plan))
    if getattr(a, "json", None):
        Path(a.json).write_text(json.dumps(plan.to_json(), indent=2, default=str), encoding="utf-8")
        print(f"plan: {a.json}")
    return 0


def cmd_sft(a: argparse.Namespace) -> int:
    from train.sft import run_sft

    if a.dry_run:
        return cmd_plan(a)
    recipe = _recipe(a)
    for v in _variants(a):
        print(f"SFT {v} → {run_sft(recipe, v, _run_dir(a, recipe), resume=a.resume)}")
    return 0


def cmd_grpo(a: argparse.Namespace) -> int:
    from train.grpo import run_grpo

    if a.dry_run:
        return cmd_plan(a)
    recipe = _recipe(a)
    for v in _variants(a):
        print(f"GRPO {v} → {run_grpo(recipe, v, _run_dir(a, recipe), start=a.start, resume=a.resume)}")
    return 0


def cmd_eval(a: argparse.Namespace) -> int:
    from train.evaluate import evaluate_stage, render_report

    recipe = _recipe(a)
    run = _run_dir(a, recipe)
    for v in _variants(a):
        report = evaluate_stage(recipe, v, run, a.stage, model=a.model, adapter=a.adapter, split=a.split,
                                limit=a.limit, progress=not a.quiet)
        print(render_report(report))
        out = Path(a.out) if a.out and len(_variants(a)) == 1 else run / v / f"eval-{a.stage}-{report['split']}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2), encoding="utf-8")
        print(f"report: {out}")
    return 0


def cmd_calibrate(a: argparse.Namespace) -> int:
    from rlog.tables import format_table
    from train.calibrate import calibrate_adapter

    recipe = _recipe(a)
    run = _run_dir(a, recipe)
    path, cal, report = calibrate_adapter(recipe, run, "fast", a.stage, adapter=a.adapter, dtype=a.dtype,
                                          progress=not a.quiet)
    fit = cal.fit["at_threshold"]
    print(f"threshold {cal.threshold}, band {cal.band} for {cal.precision or 'unrecorded'} scores "
          f"(validation: {cal.fit['n']} sessions, "
          f"{cal.fit['abnormal']} abnormal; F1 {fit['f1']}, P {fit['precision']}, R {fit['recall']}, "
          f"escalated {cal.fit['escalated_share']:.0%})")
    rows = [[src, r["n"], r["precision"], r["recall"], r["f1"], r["fpr"]] for src, r in report["by_source"].items()]
    print(format_table(["source", "n", "P", "R", "F1", "FPR"], rows))
    if cal.fusion is not None:
        print(f"fused with the session's evidence: {cal.fusion.summary()}")
        loso = cal.fit.get("leave_one_source_out", {})
        print("each source scored by a scorer fitted without it (F1 / FPR):")
        print(format_table(["left out", "n", "model F1", "model FPR", "fused F1", "fused FPR"],
                           [[s, r["n"], r["model"]["f1"], r["model"]["fpr"], r["fused"]["f1"], r["fused"]["fpr"]]
                            for s, r in loso.items()]))
    out = run / "fast" / f"calibration-{a.stage}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(f"calibration: {path}\nreport: {out}")
    return 0


def cmd_category(a: argparse.Namespace) -> int:
    from rlog.models import resolve_adapter
    from rlog.tables import format_table
    from train.category import fit_and_save

    recipe = _recipe(a)
    adapter = resolve_adapter(a.adapter)
    if adapter is None:
        raise ConfigError("rlog train category needs an R-Log adapter folder to store the model with (--adapter)")
    seeds = [recipe.data.sim_seed + 100 * k for k in range(a.runs)]
    path, model = fit_and_save(adapter, seeds, lines=a.lines, fault_gap_s=a.fault_gap_s, benign_gap_s=a.benign_gap_s,
                               l2=a.l2, progress=not a.quiet)
    fit = model.fit
    print(f"category model: {fit['n']} abnormal windows of {len(seeds)} simulated runs (seeds {seeds[0]}, "
          f"{seeds[0] + 100}, …); accuracy on them {fit['accuracy']} (keyword rule {fit['rule_accuracy']})")
    print("each fault type scored by a model fitted without it (a kind of incident never seen):")
    loso = fit["leave_one_fault_type_out"]
    print(format_table(["fault type", "category", "category seen", "n", "fitted without it", "keyword rule"],
                       [[k, v["category"], "yes" if v["category_seen"] else "no", v["n"], v["fitted_without"],
                         v["rule"]] for k, v in loso.items()]))
    print(f"mean: fitted {fit['leave_one_fault_type_out_mean']}, rule {fit['rule_mean']}; where the category was "
          f"seen: fitted {fit['seen_category_mean']}, rule {fit['seen_category_rule_mean']}\nsaved: {path}")
    return 0


def cmd_export(a: argparse.Namespace) -> int:
    from train.export import export_model

    recipe = _recipe(a)
    src = Path(a.source) if a.source else _run_dir(a, recipe) / a.variant / a.stage / "final"
    out = export_model(src, a.out, base_model=recipe.base_model, merged=a.merged, dtype=a.dtype)
    print(f"exported {src} → {out} ({'merged weights' if a.merged else 'base + LoRA adapter'})")
    return 0


def cmd_pick(a: argparse.Namespace) -> int:
    from rlog.tables import format_table
    from train.pick import pick_checkpoint

    recipe = _recipe(a)
    run = _run_dir(a, recipe)
    for v in _variants(a):
        rec = pick_checkpoint(recipe, run, v, a.stage, last=a.last, progress=not a.quiet)
        rows = [[r["candidate"], r["average_precision"], r["best_f1"], r["scored_s"]] for r in rec["candidates"]]
        print(f"{v} {a.stage}: picked {rec['picked']} on validation ({rec['examples']} sessions, "
              f"{rec['abnormal']} abnormal)")
        print(format_table(["candidate", "AP", "best F1", "scored s"], rows))
    return 0


def _stages(items: list[str] | None) -> dict[str, str]:
    """``--stage grpo`` (every variant) or ``--stage fast=sft`` (one variant), repeatable."""
    out: dict[str, str] = {}
    for item in items or []:
        variant, _, stage = item.rpartition("=")
        if stage not in ("sft", "grpo") or variant not in ("", "fast", "full"):
            raise SystemExit(f"rlog train ship: --stage {item!r}: use sft, grpo, fast=STAGE or full=STAGE")
        out.update({variant: stage} if variant else {"fast": stage, "full": stage})
    return out


def cmd_ship(a: argparse.Namespace) -> int:
    from train.ship import ship

    recipe = _recipe(a)
    variants = ("fast", "full") if a.variant == "both" else (a.variant,)
    out = ship(recipe, _run_dir(a, recipe), a.out, stages=_stages(a.stage), variants=variants,
               explain_results=a.explain_results)
    print(f"shipped {', '.join(variants)} and MODEL_CARD.md → {out}")
    return 0


def cmd_data(a: argparse.Namespace) -> int:
    from collections import Counter

    from transformers import AutoTokenizer

    from rlog.models import resolve_model
    from train.data import build_examples, summarize
    from train.runs import token_counter

    recipe = _recipe(a)
    stats: Counter = Counter()
    tok = AutoTokenizer.from_pretrained(resolve_model(recipe.base_model))
    splits = build_examples(recipe, a.variant, stats=stats, count=token_counter(tok))
    examples = [e for part in splits.values() for e in part]
    print(yaml.safe_dump({"counts": summarize(examples), "notes": dict(stats)}, sort_keys=False))
    if a.out:
        with open(a.out, "w", encoding="utf-8") as f:
            for e in examples:
                f.write(json.dumps(e.row(), ensure_ascii=False) + "\n")
        print(f"{len(examples)} examples → {a.out}")
    return 0


def add_parsers(sub) -> None:
    tr = sub.add_parser("train", help="reproduce the R-Log recipe: SFT, GRPO, evaluation, export",
                        description="Train R-Log-fast (answer-first) and R-Log (think-first) with TRL. Recipes: "
                                    "tiny (CPU, minutes) and paper (GPUs); see train/recipes/.")
    tsub = tr.add_subparsers(dest="train_command", metavar="STAGE", required=True)

    def common(p: argparse.ArgumentParser, both: bool = True) -> None:
        p.add_argument("--recipe", default="tiny", help="recipe name (tiny, paper) or YAML file")
        p.add_argument("--variant", choices=["fast", "full", "both"] if both else ["fast", "full"],
                       default="both" if both else "fast", help="fast: R-Log-fast (answer first); full: R-Log")
        p.add_argument("--run", help="run folder (default: runs/<recipe>)")
        p.add_argument("--base-model", help="override the recipe's base model (a built-in name or a local folder)")
        p.add_argument("--data-dir", help="the shared data folder (default: ../shared/data or $RLOG_SHARED_DATA)")
        p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a recipe field, e.g. sft.epochs=2")

    p = tsub.add_parser("plan", help="validate a recipe (TRL's own config checks) and print every stage's command, "
                                     "the export and the vllm serve commands; trains nothing")
    common(p)
    p.add_argument("--json", help="also write the plan as JSON here")
    p.set_defaults(func=cmd_plan)

    p = tsub.add_parser("sft", help="supervised cold start (loss on the completion only)")
    common(p)
    p.add_argument("--dry-run", action="store_true", help="validate and print the plan (rlog train plan); train nothing")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint of the run")
    p.set_defaults(func=cmd_sft)

    p = tsub.add_parser("grpo", help="reinforcement learning with the joint reward")
    common(p)
    p.add_argument("--dry-run", action="store_true", help="validate and print the plan (rlog train plan); train nothing")
    p.add_argument("--start", help="model to start from (default: <run>/<variant>/sft/final)")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint of the run")
    p.set_defaults(func=cmd_grpo)

    p = tsub.add_parser("calibrate", help="fit R-Log-fast's threshold and unsure band on validation; store them "
                                          "with the adapter")
    common(p, both=False)
    p.add_argument("--stage", choices=["sft", "grpo"], default="grpo", help="which model of the run")
    p.add_argument("--adapter", help="calibrate this LoRA adapter on the recipe's base instead")
    p.add_argument("--dtype", choices=["auto", "float32", "bfloat16"], default="auto",
                   help="precision the scores are read at (auto: what a worker here uses); the calibration is "
                        "stored for it, beside those of other precisions")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_calibrate)

    p = tsub.add_parser("category", help="fit the alert's category model on simulated incidents of the recipe's "
                                         "seed grid; store it with an R-Log adapter")
    p.add_argument("--recipe", default="tiny", help="recipe name (tiny, paper) or YAML file: its sim_seed grid")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a recipe field")
    p.add_argument("--adapter", default="rlog", help="the R-Log adapter to store it with (default: the built-in)")
    p.add_argument("--runs", type=int, default=8, help="simulated runs (seeds sim_seed, sim_seed + 100, …)")
    p.add_argument("--lines", type=int, default=20000, help="lines per run")
    p.add_argument("--fault-gap-s", type=float, default=15.0, help="mean quiet time between faults")
    p.add_argument("--benign-gap-s", type=float, default=40.0, help="mean quiet time between look-alikes")
    p.add_argument("--l2", type=float, default=0.01, help="L2 penalty of the softmax regression")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_category)

    p = tsub.add_parser("eval", help="precision/recall/F1, parsing accuracy, overlap and latency per sample")
    common(p)
    p.add_argument("--stage", choices=["base", "sft", "grpo"], default="grpo", help="which model of the run")
    p.add_argument("--model", help="evaluate this model folder instead (full weights)")
    p.add_argument("--adapter", help="evaluate this LoRA adapter on the recipe's base instead")
    p.add_argument("--split", choices=["val", "test"], help="default: the recipe's eval.split")
    p.add_argument("--limit", type=int, help="at most this many examples per task")
    p.add_argument("--out", help="report JSON (default: <run>/<variant>/eval-<stage>-<split>.json)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_eval)

    p = tsub.add_parser("export", help="write a folder that transformers and vLLM both load")
    common(p, both=False)
    p.add_argument("--stage", choices=["sft", "grpo"], default="grpo")
    p.add_argument("--source", help="model or adapter folder to export (default: the run's stage)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--merged", action="store_true", help="merge the LoRA adapter into the base weights")
    p.add_argument("--dtype", choices=["float32", "float16", "bfloat16"], default="float32",
                   help="weight dtype written (adapter or merged)")
    p.set_defaults(func=cmd_export)

    p = tsub.add_parser("pick", help="score every checkpoint of a stage on validation; the best becomes its final")
    common(p)
    p.add_argument("--stage", choices=["sft", "grpo"], default="sft", help="which stage's checkpoints")
    p.add_argument("--last", type=int, default=None, metavar="N",
                   help="score only the last N candidates, the final model included (default: all; each costs "
                        "one pass over the validation split)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_pick)

    p = tsub.add_parser("ship", help="export the adapters as the stream's defaults, with a model card")
    p.add_argument("--recipe", default="tiny", help="recipe name or YAML file")
    p.add_argument("--run", help="run folder (default: runs/<recipe>)")
    p.add_argument("--variant", choices=["fast", "full", "both"], default="both",
                   help="re-ship one variant and keep the other's shipped folder and record")
    p.add_argument("--stage", action="append", metavar="[VARIANT=]STAGE",
                   help="stage to ship: grpo (default), sft, or per variant, e.g. fast=sft")
    p.add_argument("--out", default="rlog/adapters", help="destination (default: rlog/adapters)")
    p.add_argument("--explain-results", metavar="RESULTS_JSON",
                   help="an `rlog bench --preset explain` results.json measured on this R-Log: its figures go into "
                        "the model card")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a recipe field")
    p.set_defaults(func=cmd_ship)

    p = tsub.add_parser("data", help="show (and dump) the examples a recipe trains and evaluates on")
    common(p, both=False)
    p.add_argument("--out", help="JSONL file of every example")
    p.set_defaults(func=cmd_data)
