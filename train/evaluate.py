"""Evaluation through the serving backend: what is measured is what the stream will get.

Models are loaded with ``rlog.backends.load_backend`` and answer as the stream has them
answer (R-Log-fast scored in one pass; R-Log's detection answers written under constraint,
``rlog.cascade.explain``; other tasks decoded greedily up to ``</answer>``), over the
recipe's validation or test split. Reported per variant:

- anomaly detection: precision, recall and F1 (abnormal is positive), accuracy, the share
  of malformed answers, per data source as well; the full model's root-cause category
  accuracy on abnormal simulated sessions;
- parsing: exact-template accuracy and mean token F1;
- interpretation, root cause, solution: mean BLEU-4 and ROUGE-1/2/L against the reference;
- latency per sample (seconds of batched generation divided by the batch size) and the
  number of generated tokens.
"""

from __future__ import annotations

import statistics
import time
from collections import defaultdict
from pathlib import Path

from rlog.backends import GenerationParams, load_backend
from rlog.cascade.explain import structured_answer, written_budget
from rlog.config import ExplainConfig, ModelSpec
from rlog.contract.answers import FullAnswer, check_format
from rlog.metrics import binary_scores, percentile
from train.data import Example, cap_per_task
from train.recipe import Recipe
from train.rewards import OVERLAP_TASKS, PREFILL, TASKS, overlap, score, split_answer, template_f1
from train.runs import final_dir, is_adapter, load_tokenizer, prepared_examples


def model_spec_for(recipe: Recipe, run: str | Path, variant: str, stage: str, *, model: str | None = None,
                   adapter: str | None = None) -> ModelSpec:
    """The serving spec of a run's stage (base, sft or grpo), or of an explicit model/adapter."""
    device = recipe.device
    if model:
        return ModelSpec(model=model, adapter=adapter, device=device)
    if adapter or stage == "base":
        return ModelSpec(model=recipe.base_model, adapter=adapter, device=device)
    final = final_dir(run, variant, stage)
    if not final.is_dir():
        raise FileNotFoundError(f"{final} does not exist: run `rlog train {stage} --variant {variant}` first")
    if is_adapter(final):
        return ModelSpec(model=recipe.base_model, adapter=str(final), device=device)
    return ModelSpec(model=str(final), adapter=None, device=device)


def structured_completion(ans: FullAnswer) -> str:
    """A structured answer as the completion text it stands for (what the rewards and metrics read)."""
    return (f"{ans.reasoning}</think><answer>\nverdict: {ans.verdict}\ncategory: {ans.category}\n"
            f"interpretation: {ans.interpretation}\nroot_cause: {ans.root_cause}\naction: {ans.action}\n</answer>")


def evaluate_examples(backend, examples: list[Example], variant: str, *, batch_size: int, max_new_tokens: int,
                      structured: ExplainConfig | None = None, progress: bool = True) -> dict:
    """Generate for every example and score it; returns the metrics and per-sample timing.

    ``structured``: R-Log's detection examples are answered as the stream answers escalations
    (``rlog.cascade.explain``) where the backend can; its other tasks are decoded."""
    from tqdm import tqdm

    params = GenerationParams(max_new_tokens, 0.0, ("</answer>",), logprobs=False)
    outputs: list[tuple[Example, str]] = []
    per_sample: list[float] = []
    tokens: list[int] = []
    bar = tqdm(total=len(examples), desc=f"eval {variant}", unit="ex", disable=not progress)
    stepwise = variant == "full" and structured is not None and callable(getattr(backend, "transcript", None))
    written = [e for e in examples if stepwise and e.task == "anomaly"]
    decoded = [e for e in examples if not (stepwise and e.task == "anomaly")]
    for e in written:  # as the stream's explain role writes it: the answer's fields under constraint
        t0 = time.perf_counter()
        with backend.transcript(e.prompt, written_budget(structured)) as t:
            text = structured_completion(structured_answer(t, structured))
        per_sample.append(time.perf_counter() - t0)
        outputs.append((e, text))
        tokens.append(backend.count_tokens(text))
        bar.update(1)
    for i in range(0, len(decoded), batch_size):
        batch = decoded[i:i + batch_size]
        t0 = time.perf_counter()
        gens = backend.generate([e.prompt for e in batch], params)
        dt = time.perf_counter() - t0
        per_sample.extend([dt / len(batch)] * len(batch))
        for e, g in zip(batch, gens, strict=True):
            outputs.append((e, g.text))
            tokens.append(g.completion_tokens)
        bar.update(len(batch))
    bar.close()
    by_task: dict[str, list[float]] = defaultdict(list)
    for (e, _), dt in zip(outputs, per_sample, strict=True):
        by_task[e.task].append(dt)
    return {**score_outputs(outputs, variant),
            "latency": {"per_sample_by_task_s": {t: round(statistics.fmean(v), 4) for t, v in by_task.items()},
                        "per_sample_mean_s": round(statistics.fmean(per_sample), 4) if per_sample else 0.0,
                        "per_sample_p50_s": round(percentile(per_sample, 0.5) or 0.0, 4),
                        "per_sample_p95_s": round(percentile(per_sample, 0.95) or 0.0, 4),
                        "generated_tokens_mean": round(statistics.fmean(tokens), 1) if tokens else 0.0,
                        "batch_size": batch_size},
            "samples": [{"key": e.key, "task": e.task, "source": e.source, "label": e.label if e.task == "anomaly"
                         else None, "output": text[:400]} for e, text in outputs[:12]]}


def score_detection(backend, examples: list[Example], *, batch_size: int, progress: bool = True) -> dict:
    """R-Log-fast as served: P(abnormal) in one pass, flagged at the adapter's calibrated
    threshold (0.5 without one); the same metrics as the decoded path, nothing decoded."""
    from tqdm import tqdm

    cal = getattr(backend, "calibration", None)
    threshold = cal.threshold if cal else 0.5
    probs: list[float] = []
    per_sample: list[float] = []
    bar = tqdm(total=len(examples), desc="eval fast (scored)", unit="ex", disable=not progress)
    for i in range(0, len(examples), batch_size):
        batch = examples[i:i + batch_size]
        t0 = time.perf_counter()
        probs.extend(backend.score([e.prompt for e in batch]))
        per_sample.extend([(time.perf_counter() - t0) / len(batch)] * len(batch))
        bar.update(len(batch))
    bar.close()
    pairs = [(e.label == "abnormal", p >= threshold) for e, p in zip(examples, probs, strict=True)]
    by_source: dict[str, list[tuple[bool, bool]]] = defaultdict(list)
    for e, pair in zip(examples, pairs, strict=True):
        by_source[e.source].append(pair)
    b = binary_scores(pairs)
    return {"anomaly": {"n": len(pairs), "precision": round(b.precision, 4), "recall": round(b.recall, 4),
                        "f1": round(b.f1, 4), "accuracy": round((b.tp + b.tn) / len(pairs), 4) if pairs else 0.0,
                        "tp": b.tp, "fp": b.fp, "fn": b.fn, "tn": b.tn, "malformed_rate": 0.0,
                        "scoring": "logits", "threshold": threshold, "calibrated": cal is not None,
                        "by_source": {src: {"n": len(q), "f1": round(binary_scores(q).f1, 4),
                                            "accuracy": round(sum(t == x for t, x in q) / len(q), 4)}
                                      for src, q in sorted(by_source.items())}},
            "format_ok": 1.0,
            "latency": {"per_sample_by_task_s": {"anomaly": round(statistics.fmean(per_sample), 4)} if per_sample else {},
                        "per_sample_mean_s": round(statistics.fmean(per_sample), 4) if per_sample else 0.0,
                        "per_sample_p50_s": round(percentile(per_sample, 0.5) or 0.0, 4),
                        "per_sample_p95_s": round(percentile(per_sample, 0.95) or 0.0, 4),
                        "generated_tokens_mean": 0.0, "batch_size": batch_size},
            "samples": [{"key": e.key, "task": e.task, "source": e.source, "label": e.label, "p_abnormal": round(p, 4)}
                        for e, p in list(zip(examples, probs, strict=True))[:12]]}


def score_outputs(outputs: list[tuple[Example, str]], variant: str) -> dict:
    """Metrics of (example, generated text) pairs; pure."""
    by_task: dict[str, list[tuple[Example, str]]] = defaultdict(list)
    for e, text in outputs:
        by_task[e.task].append((e, text))
    report: dict = {}
    anomaly = by_task.get("anomaly", [])
    if anomaly:
        pairs, malformed, by_source, cats, rewards = [], 0, defaultdict(list), [], []
        for e, text in anomaly:
            s = score(text, task="anomaly", mode=variant, label=e.label, category=e.category)
            rewards.append(s.reward)
            malformed += not s.format_ok
            pred = s.verdict == "abnormal"
            pairs.append((e.label == "abnormal", pred))
            by_source[e.source].append((e.label == "abnormal", pred))
            if s.category_correct is not None:
                cats.append(s.category_correct)
        b = binary_scores(pairs)
        report["anomaly"] = {
            "n": len(anomaly), "precision": round(b.precision, 4), "recall": round(b.recall, 4), "f1": round(b.f1, 4),
            "accuracy": round((b.tp + b.tn) / len(pairs), 4), "tp": b.tp, "fp": b.fp, "fn": b.fn, "tn": b.tn,
            "malformed_rate": round(malformed / len(anomaly), 4), "mean_reward": round(statistics.fmean(rewards), 4),
            "by_source": {src: {"n": len(p), "f1": round(binary_scores(p).f1, 4),
                                "accuracy": round(sum(t == q for t, q in p) / len(p), 4)}
                          for src, p in sorted(by_source.items())},
        }
        if cats:
            report["anomaly"]["category_accuracy"] = round(sum(cats) / len(cats), 4)
            report["anomaly"]["category_n"] = len(cats)
    parsing = by_task.get("parsing", [])
    if parsing:
        f1s, exact, ok = [], 0, 0
        for e, text in parsing:
            parts = split_answer("<think>" + text, "full")
            answer = parts[1] if parts else ""
            ok += parts is not None
            f1s.append(template_f1(answer, e.label))
            exact += " ".join(answer.split()) == " ".join(e.label.split())
        report["parsing"] = {"n": len(parsing), "accuracy": round(exact / len(parsing), 4),
                             "token_f1": round(statistics.fmean(f1s), 4), "format_ok": round(ok / len(parsing), 4)}
    for task in OVERLAP_TASKS:
        rows = by_task.get(task, [])
        if not rows:
            continue
        scores, ok = [], 0
        for e, text in rows:
            parts = split_answer("<think>" + text, "full")
            ok += parts is not None
            scores.append(overlap(parts[1] if parts else "", e.label))
        report[task] = {"n": len(rows), "format_ok": round(ok / len(rows), 4),
                        **{m: round(statistics.fmean(getattr(s, m) for s in scores), 4)
                           for m in ("bleu4", "rouge1", "rouge2", "rougeL")}}
    report["format_ok"] = round(sum(check_format(PREFILL[variant] + t, variant)
                                    for _, t in outputs) / len(outputs), 4) if outputs else 0.0
    return report


def evaluate_stage(recipe: Recipe, variant: str, run: str | Path, stage: str, *, model: str | None = None,
                   adapter: str | None = None, split: str | None = None, limit: int | None = None,
                   progress: bool = True) -> dict:
    """Evaluate one model of a run (or an explicit model/adapter) on the recipe's split."""
    from rlog.models import resolve_model

    recipe = recipe.for_variant(variant)
    spec = model_spec_for(recipe, run, variant, stage, model=model, adapter=adapter)
    split = split or recipe.eval.split
    tok = load_tokenizer(resolve_model(spec.model))
    splits, stats = prepared_examples(recipe, variant, tok, recipe.data.max_prompt_tokens)
    examples = splits[split]
    if limit:
        examples = cap_per_task(examples, dict.fromkeys(TASKS, limit), recipe.seed)
    backend = load_backend(spec)
    t0 = time.perf_counter()
    max_new = recipe.eval.fast_max_new_tokens if variant == "fast" else recipe.eval.full_max_new_tokens
    if variant == "fast" and callable(getattr(backend, "score", None)) and all(e.task == "anomaly" for e in examples):
        # served as a one-pass scorer (cascade.scoring auto), so measured as one
        metrics = score_detection(backend, examples, batch_size=recipe.eval.batch_size, progress=progress)
    else:
        metrics = evaluate_examples(backend, examples, variant, batch_size=recipe.eval.batch_size,
                                    max_new_tokens=max_new, structured=ExplainConfig(), progress=progress)
    return {"recipe": recipe.name, "variant": variant, "stage": stage, "split": split, "model": backend.model_id,
            "model_spec": spec.model_dump(), "examples": len(examples), "data_stats": dict(stats),
            "elapsed_s": round(time.perf_counter() - t0, 1), **metrics}


def render_report(r: dict) -> str:
    """A short table of one evaluation report."""
    from rlog.tables import format_table

    rows = []
    if "anomaly" in r:
        a = r["anomaly"]
        rows.append(["anomaly", a["n"], f"P {a['precision']:.3f}  R {a['recall']:.3f}  F1 {a['f1']:.3f}  "
                     f"malformed {a['malformed_rate']:.0%}" + (f"  category {a['category_accuracy']:.2f}"
                                                               if "category_accuracy" in a else "")])
    if "parsing" in r:
        p = r["parsing"]
        rows.append(["parsing", p["n"], f"accuracy {p['accuracy']:.3f}  token F1 {p['token_f1']:.3f}"])
    for task in OVERLAP_TASKS:
        if task in r:
            t = r[task]
            rows.append([task, t["n"], f"BLEU-4 {t['bleu4']:.3f}  ROUGE-1 {t['rouge1']:.3f}  ROUGE-2 {t['rouge2']:.3f}  "
                         f"ROUGE-L {t['rougeL']:.3f}"])
    lat = r["latency"]
    rows.append(["latency", r["examples"], f"{lat['per_sample_mean_s']:.3f} s/sample (p95 {lat['per_sample_p95_s']:.3f}), "
                 f"{lat['generated_tokens_mean']:.0f} tokens"])
    head = f"{r['variant']} model {r['model']} [{r['stage']}] on {r['split']}"
    return head + "\n" + format_table(["task", "n", "scores"], rows)
