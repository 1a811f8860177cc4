"""`rlog bench`: every method on the same sessions, one run, one results folder.

Order matters for the memory figures: datasets, parsing and the baselines run before the
models are loaded, so the process's peak RSS is read once without and once with them.
"""

from __future__ import annotations

import platform
import resource
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import orjson

from benchmarks.baselines import make_baselines
from benchmarks.datasets import BenchData, load_dataset
from benchmarks.spec import BenchSpec, DatasetSpec
from benchmarks.stages import measure_stages
from rlog.config import RlogConfig
from rlog.metrics import BinaryScores, binary_scores, bootstrap_intervals

LOGHUB_SYSTEMS = ("Android", "Apache", "BGL", "HDFS", "HPC", "Hadoop", "HealthApp", "Linux", "Mac", "OpenSSH",
                  "OpenStack", "Proxifier", "Spark", "Thunderbird", "Windows", "Zookeeper")
PACKAGES = ("rlog", "torch", "transformers", "peft", "drain3", "faust-streaming", "kafka-python", "scikit-learn",
            "numpy", "matplotlib", "vllm")


def _say(msg: str) -> None:
    print(f"rlog bench: {msg}", file=sys.stderr, flush=True)


def own_peak_rss_mb() -> float:
    """This process's peak RSS (getrusage; the worker's, a child never waited for, comes from /proc)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def environment(cfg: RlogConfig) -> dict[str, Any]:
    """What the numbers were measured on: hardware, versions, models."""
    import torch

    cpu = platform.processor()
    try:
        for ln in Path("/proc/cpuinfo").read_text().splitlines():
            if ln.startswith("model name"):
                cpu = ln.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for p in PACKAGES:
        try:
            versions[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            versions[p] = None
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    models = {}
    for stage in ("fast", "full"):
        m = getattr(cfg.cascade, stage)
        models[stage] = {"model": m.model, "adapter": str(m.adapter) if m.adapter else None, "backend": m.backend,
                         "device": m.device, "max_new_tokens": m.max_new_tokens, "batch_size": m.batch_size}
        if m.backend == "transformers":  # the precision scores are read at picks the calibration (rlog.models)
            from rlog.backends.transformers_backend import pick_dtype

            models[stage]["precision"] = str(pick_dtype(m.dtype, m.device)).removeprefix("torch.")
    return {"python": platform.python_version(), "platform": platform.platform(), "cpu": cpu,
            "cpu_count": _cpu_count(), "gpu": gpu, "torch_threads": torch.get_num_threads(),
            "packages": versions, "models": models, "verdict_policy": cfg.cascade.verdict,
            "escalate": cfg.cascade.escalate, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def _cpu_count() -> int:
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def score_row(method: str, dataset: str, level: str, truth: list[bool], pred: list[bool], **extra: Any) -> dict:
    """A row with bootstrap 95% intervals on F1 and FPR (``f1_ci``, ``fpr_ci``), the same
    resamples for every method of a dataset (fixed seed), so rows compare like for like."""
    ci = bootstrap_intervals(truth, pred)
    return scores_row(method, dataset, level, binary_scores(zip(truth, pred, strict=True)),
                      f1_ci=_rounded(ci["f1"]) if any(truth) else None, fpr_ci=_rounded(ci["fpr"]), **extra)


def _rounded(ci: tuple[float, float] | None) -> list[float] | None:
    return [round(ci[0], 4), round(ci[1], 4)] if ci is not None else None


def scores_row(method: str, dataset: str, level: str, s: BinaryScores, **extra: Any) -> dict:
    """One table row; precision, recall and F1 are None where undefined (no flags, no anomalies)."""
    positives = s.tp + s.fn
    negatives = s.fp + s.tn
    return {"method": method, "dataset": dataset, "level": level, "n": positives + negatives, "abnormal": positives,
            "tp": s.tp, "fp": s.fp, "fn": s.fn, "tn": s.tn,
            "precision": round(s.precision, 4) if s.tp + s.fp else None,
            "recall": round(s.recall, 4) if positives else None,
            "f1": round(s.f1, 4) if positives else None,
            "fpr": round(s.fp / negatives, 4) if negatives else None, **extra}


def _baselines(spec: BenchSpec, data: BenchData, rows: list[dict]) -> dict[str, list[bool]]:
    """Each baseline fitted on the dataset's fit part and scored on its test part; their session verdicts."""
    preds: dict[str, list[bool]] = {}
    for det in make_baselines(spec.baselines, spec.seed):
        t0 = time.perf_counter()
        det.fit(data.fit, data.fit_labels)
        fit_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        pred = det.predict(data.test)
        pred_s = time.perf_counter() - t0
        preds[det.name] = pred
        rows.append(score_row(det.name, data.name, "session", data.test_labels, pred, fit_s=round(fit_s, 3),
                              sessions_per_s=round(len(pred) / pred_s, 1) if pred_s > 0 else None))
        if data.templates and not det.session_level_only:
            rows.append(score_row(det.name, data.name, "template", data.template_labels,
                                  det.predict(data.templates)))
    return preds


def parsing(data_dir: Path, systems: list[str]) -> list[dict]:
    from rlog.loghub import loghub_parsing_accuracy

    out = []
    for name in systems:
        d = data_dir / "loghub" / name
        if not (d / f"{name}_2k.log").is_file():
            continue
        ours, vanilla = loghub_parsing_accuracy(d), loghub_parsing_accuracy(d, vanilla=True)
        out.append({"system": name, "lines": ours.lines, "true_templates": ours.true_templates,
                    "templates": ours.templates, "grouping_accuracy": round(ours.grouping_accuracy, 4),
                    "lines_per_s": round(ours.lines_per_s, 1), "drain3_templates": vanilla.templates,
                    "drain3_grouping_accuracy": round(vanilla.grouping_accuracy, 4),
                    "drain3_lines_per_s": round(vanilla.lines_per_s, 1)})
    return out


def _cost(run, lines: int) -> dict:
    st = run.stats
    per_k = 1000 / lines if lines else 0.0
    return {"lines": lines, "sessions": st["sessions"], "fast_calls": st["fast_calls"], "full_calls": st["full_calls"],
            "fast_calls_per_1k_lines": round(st["fast_calls"] * per_k, 2),
            "full_calls_per_1k_lines": round(st["full_calls"] * per_k, 2),
            "model_calls_per_1k_lines": round((st["fast_calls"] + st["full_calls"]) * per_k, 2),
            "cache_hit_ratio": st["cache_hit_ratio"], "escalations": st["escalations"],
            "incident_hits": st["incident_hits"], "explanations_reused": st["explanations_reused"],
            "malformed_fast": st["malformed_fast"], "malformed_full": st["malformed_full"],
            "undecided": st["undecided"], "model_s": round(run.model_s, 2),
            "fast_batch_ms": st["fast_batch_ms"], "full_batch_ms": st["full_batch_ms"]}


def _explanations(spec: BenchSpec, cfg: RlogConfig, cascade, out: Path, progress: bool) -> dict:
    """R-Log on simulated incidents of the spec's own seed (``benchmarks.explain``)."""
    from benchmarks.explain import evaluate_explanations, incident_sessions, load_incidents

    assert spec.explain is not None
    ds = DatasetSpec(name="explain", kind="sim", sim=spec.explain.sim, fit_lines=spec.explain.fit_lines, llm=False)
    _say("explanations: simulating incidents")
    data = load_dataset(ds, cfg, out / "data" / "explain", None, spec.seed)
    chosen = incident_sessions(data.test, spec.explain.incidents)
    _say(f"explanations: R-Log on {len(chosen)} incidents")
    res = evaluate_explanations(cascade, chosen, load_incidents(out / "data" / "explain" / "test"), progress=progress)
    return {"source": data.truth_note, **res}


def run_bench(spec: BenchSpec, cfg: RlogConfig, out: Path, *, data_dir: Path | None, llm: bool = True,
              stream: bool = True, progress: bool = True) -> dict[str, Any]:
    from benchmarks.report import write_outputs

    t_start = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    have_data = data_dir is not None and (data_dir / "loghub").is_dir()
    skipped: dict[str, str] = {}
    datasets: list[tuple[DatasetSpec, BenchData]] = []
    rows: list[dict] = []
    stages: dict[str, dict] = {}
    info: dict[str, dict] = {}
    for ds in spec.datasets:
        if ds.kind == "loghub" and not have_data:
            skipped[ds.name] = f"needs Loghub samples under {data_dir}/loghub (absent)"
            _say(f"skipping {ds.name}: {skipped[ds.name]}")
            continue
        _say(f"dataset {ds.name}: loading and sessionizing")
        data = load_dataset(ds, cfg, out / "data" / ds.name, data_dir if have_data else None, spec.seed)
        datasets.append((ds, data))
        info[ds.name] = {"source": data.truth_note, "fit_sessions": len(data.fit), "test_sessions": len(data.test),
                         "test_abnormal": sum(data.test_labels), "test_lines": data.test_lines,
                         "unlabelled": data.unlabelled, "templates": len(data.templates),
                         "templates_abnormal": sum(data.template_labels),
                         "session": data.cfg.session.model_dump(mode="json", include={"mode", "by", "size", "step"})}
        stages[ds.name] = measure_stages(data.sample, data.cfg)
        _say(f"dataset {ds.name}: {len(data.fit)} fit / {len(data.test)} scored sessions "
             f"({sum(data.test_labels)} abnormal); baselines")
        _baselines(spec, data, rows)
    systems = list(LOGHUB_SYSTEMS) if spec.parsing_systems == "all" else list(spec.parsing_systems)
    parse_rows = parsing(data_dir, systems) if have_data and data_dir is not None else []
    if not have_data:
        skipped["parsing"] = f"needs Loghub samples under {data_dir}/loghub (absent)"
    memory = {"bench_peak_rss_mb_without_models": own_peak_rss_mb()}
    faultlab: dict | None = None
    if spec.faultlab is not None:
        from benchmarks.lodo import run_faultlab

        faultlab = run_faultlab(spec, cfg, llm=llm, progress=progress, rows=rows, info=info, memory=memory)
    cost: dict[str, dict] = {}
    root_cause: dict[str, dict] = {}
    probe_summary: dict | None = None
    explanations: dict | None = None
    llm_sets = [(ds, d) for ds, d in datasets if ds.llm and d.test] if llm else []
    if llm_sets or (llm and spec.explain is not None):
        from benchmarks.cost_floor import cost_floor
        from benchmarks.llm import pick_probe_sessions, probe, run_cascade, warm_up
        from rlog.cascade.cascade import Cascade
        from stream.runner import load_models

        _say(f"loading models (fast: {cfg.cascade.fast.model}, full: {cfg.cascade.full.model})")
        t0 = time.perf_counter()
        fast, full = load_models(cfg, ("detect", "explain"))
        memory["model_load_s"] = round(time.perf_counter() - t0, 1)

        def cascade_factory() -> Cascade:
            return Cascade(fast, full, cfg.cascade)

        for ds, data in llm_sets:
            cascade = cascade_factory()
            warm = warm_up(cascade, data.fit, desc=f"warming {ds.name}", progress=progress) \
                if spec.warm_memory and data.fit else None
            run = run_cascade(cascade, data.test, desc=f"cascade {ds.name}", progress=progress)
            lines = data.test_lines
            extra = {"sessions_per_s": round(len(data.test) / run.model_s, 3) if run.model_s else None}
            rows.append(score_row("rlog-fast", ds.name, "session", data.test_labels, run.fast_pred, **extra))
            rows.append(score_row("rlog", ds.name, "session", data.test_labels, run.cascade_pred, **extra))
            floor = cost_floor(cfg.cascade, data.fit, data.fit_labels, data.test, data.test_labels, lines,
                               warm=spec.warm_memory)
            cost[ds.name] = {**_cost(run, lines), "warmed_on": warm, "floor": floor}
            st = stages[ds.name]
            pipeline_s = st["seconds"]["pipeline"] * lines / max(1, st["lines"])
            st["lines_per_s"]["models"] = round(lines / run.model_s, 2) if run.model_s else None
            st["lines_per_s"]["end_to_end"] = round(lines / (run.model_s + pipeline_s), 2) if run.model_s else None
            st["sessions_per_s_models"] = extra["sessions_per_s"]
            if run.root_cause is not None:
                root_cause[ds.name] = run.root_cause
            if data.templates:
                trun = run_cascade(cascade_factory(), data.templates, desc=f"templates {ds.name}", progress=progress)
                rows.append(score_row("rlog-fast", ds.name, "template", data.template_labels, trun.fast_pred))
                rows.append(score_row("rlog", ds.name, "template", data.template_labels, trun.cascade_pred))
        if spec.probe_sessions and full is not None and llm_sets:
            ds, data = llm_sets[0]
            chosen = pick_probe_sessions(data.test, data.test_labels, spec.probe_sessions)
            p = probe(cascade_factory(), chosen, progress=progress)
            probe_summary = {"dataset": ds.name, **p.summary()}
            fast_f1 = next((r["f1"] for r in rows if r["method"] == "rlog-fast" and r["dataset"] == ds.name
                            and r["level"] == "session"), None)
            full_f1 = next((r["f1"] for r in rows if r["method"] == "rlog" and r["dataset"] == ds.name
                            and r["level"] == "session"), None)
            probe_summary["fast_f1_over_cascade_f1"] = round(fast_f1 / full_f1, 3) if fast_f1 and full_f1 else None
        if spec.explain is not None and full is not None:
            explanations = _explanations(spec, cfg, cascade_factory(), out, progress)
            if spec.explain.trajectories and have_data and data_dir is not None:
                from benchmarks.explain import trajectory_overlap

                _say(f"explanations: R-Log on {spec.explain.trajectories} validation trajectories per text task")
                explanations["trajectories"] = trajectory_overlap(
                    full, data_dir, per_task=spec.explain.trajectories, max_new_tokens=spec.explain.trajectory_tokens,
                    progress=progress)
            if spec.explain.real_incidents and have_data and data_dir is not None and hasattr(full, "transcript"):
                from benchmarks.explain import real_incident_overlap

                _say("explanations: R-Log on the held-out real incidents (joined trajectories), as escalations")
                explanations["real_incidents"] = real_incident_overlap(full, cfg.cascade, data_dir, progress=progress)
        memory["bench_peak_rss_mb_with_models"] = own_peak_rss_mb()
    elif llm and faultlab is None:
        skipped["models"] = "no dataset asks for the models"
    streams: dict[str, dict] = {}
    if stream and llm:
        from benchmarks.streaming import run_stream

        for ds, data in datasets:
            if not ds.stream:
                continue
            _say(f"dataset {ds.name}: streaming path (embedded broker + worker + replay"
                 f"{f' at {ds.stream_rate:g} lines/s' if ds.stream_rate else ', full speed'})")
            res = run_stream(data, cfg, out / "stream" / ds.name, rate=ds.stream_rate, timeout_s=spec.stream_timeout_s,
                             progress=progress)
            streams[ds.name] = res.to_dict()
            if res.scores is not None:
                rows.append(scores_row("rlog (stream)", ds.name, "session", res.scores))
            if res.error:
                _say(f"stream {ds.name}: {res.error}")
    results = {"preset": spec.name, "description": spec.description, "environment": environment(cfg),
               "datasets": info, "skipped": skipped, "detection": rows, "cost": cost, "root_cause": root_cause,
               "probe": probe_summary, "explanations": explanations, "stages": stages, "stream": streams,
               "parsing": parse_rows, "memory": memory, "faultlab": faultlab,
               "spec": spec.model_dump(mode="json"), "elapsed_s": round(time.perf_counter() - t_start, 1)}
    (out / "results.json").write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    write_outputs(results, out)
    return results
