"""The fault lab as a benchmark: every method on the same sessions of real daemons, leave one daemon out.

Each daemon of a lab corpus (``rlog lab corpus``) is a dataset. Its first ``fit_runs`` runs are
its past: what the trained baselines learn the daemon's normal from, what the pipeline has read
(so templates are new or known as in a deployment that has been running), and what the
cascade's memory is warmed on (its own verdicts, never labels). Its later runs are scored.

What was fitted on labels never saw the scored daemon:

- R-Log-fast's weights: the shipped adapters trained on the simulator, BGL and the published
  trajectories, no lab run (``rlog.adapters``); a lab-trained adapter is scored the same way
  only when its recipe excluded the daemon (``cascade.fast.adapter`` of the run's config);
- the fusion and the threshold (``train.calibrate.fit_scorer``): refitted for each scored
  daemon on the other daemons' sessions (every daemon weighing the same), never on its own.
  ``rlog-fast (shipped calibration)`` is the adapter's own calibration as it ships (fitted on
  the simulator and BGL), and ``rlog-fast (model alone)`` the threshold without the fusion;
- R-Log's explanations are scored on incidents of the scored daemon against the injector's
  own cause and fix.

``rlog`` is the cascade's detect role: R-Log-fast behind the verdict memory, the known-normal
memory and open incidents, warmed on the daemon's past. R-Log is not asked for verdicts: under
the default policy (``cascade.verdict: fast``) it explains flags and never changes one.

The model reads each kind of session once (``MemoScores``, ``score_sessions``: one session per
verdict-memory key, as the stream's memory does): every row that needs R-Log-fast's P(abnormal)
reuses it, so refitting per daemon costs nothing in model calls.
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from tqdm import tqdm

from benchmarks.datasets import BenchData, _config
from benchmarks.explain import wilson
from benchmarks.spec import BenchSpec, LabSpec
from rlog.config import RlogConfig
from rlog.contract.evidence import evidence_of, logit
from rlog.contract.representation import view_of
from rlog.labcorpus import LabIncident, LabRun, read_corpus
from rlog.pipeline.lines import Line
from rlog.pipeline.pipeline import Pipeline
from rlog.pipeline.sessions import Session

SHIPPED = "rlog-fast (shipped calibration)"
MODEL_ALONE = "rlog-fast (model alone)"
LAB_FAST, LAB_CASCADE = "rlog-fast +lab", "rlog +lab"  # R-Log-fast trained on the lab without the daemon scored


def _say(msg: str) -> None:
    print(f"rlog bench: faultlab: {msg}", file=sys.stderr, flush=True)


@dataclass
class DaemonSet:
    """One daemon's sessions: its past (fit) and its scored runs, with what the injector recorded."""

    daemon: str
    data: BenchData
    fit_seeds: list[int]
    test_seeds: list[int]
    incidents: dict[str, LabIncident] = field(default_factory=dict)

    def category(self, s: Session) -> str | None:
        """The lab fault category of an abnormal session's dominant incident."""
        t = s.truth
        inc = self.incidents.get(t.incident or "") if t is not None and t.label else None
        return inc.category if inc else None

    def fault(self, s: Session) -> str | None:
        t = s.truth
        return t.scenario if t is not None and t.label else None


def load_daemon(runs: Sequence[LabRun], base: RlogConfig, fit_runs: int, max_test_sessions: int | None = None
                ) -> DaemonSet:
    """Every run through one ``Pipeline`` (as one long-running deployment reads them), in seed order."""
    if len(runs) <= fit_runs:
        from rlog.config import ConfigError

        raise ConfigError(f"faultlab: {runs[0].daemon} has {len(runs)} run(s); fit_runs {fit_runs} leaves none to "
                          "score (build more seeds or lower faultlab.fit_runs)")
    cfg = _config(base, runs[0].config)
    pipe = Pipeline(cfg)
    fit: list[Session] = []
    test: list[Session] = []
    seq = 0
    incidents: dict[str, LabIncident] = {}
    test_lines = 0
    for i, run in enumerate(runs):
        into = fit if i < fit_runs else test
        incidents.update(run.incidents)
        for text, truth in run.lines():
            seq += 1
            test_lines += i >= fit_runs
            into.extend(pipe.feed(run.daemon, Line(seq, text), truth)[0])
        into.extend(pipe.flush()[0])  # a run ends with its daemon stopped: its last window closes
    if max_test_sessions is not None:
        test = test[:max_test_sessions]
    labels = [bool(s.truth and s.truth.label) for s in test]
    name = f"lab-{runs[0].daemon}"
    data = BenchData(name, cfg, fit, [bool(s.truth and s.truth.label) for s in fit], test, labels,
                     test_lines=test_lines,
                     truth_note=f"fault lab, {runs[0].daemon}: runs {runs[fit_runs].seed}-{runs[-1].seed} scored, "
                                f"{runs[0].seed}-{runs[fit_runs - 1].seed} its past")
    return DaemonSet(runs[0].daemon, data, [r.seed for r in runs[:fit_runs]], [r.seed for r in runs[fit_runs:]],
                     incidents)


def load_lab(spec: LabSpec, base: RlogConfig) -> list[DaemonSet]:
    corpus = read_corpus(spec.corpus, spec.daemons)
    return [load_daemon(runs, base, spec.fit_runs, spec.max_test_sessions) for runs in corpus.values()]


class MemoScores:
    """R-Log-fast behind a memory of its scores: a prompt is read by the model once.

    Stands in for the backend wherever the cascade scores (it delegates everything else), with a
    calibration of its own: the same model under a fusion and threshold fitted without the daemon
    it scores. Scores are shared between instances (``memo``)."""

    _NONE = object()

    def __init__(self, backend: Any, memo: dict[bytes, float] | None = None, calibration: Any = _NONE) -> None:
        self._backend = backend
        self.memo: dict[bytes, float] = {} if memo is None else memo
        self.by_key: dict[str, float] = {}  # per verdict-memory key (``score_sessions``)
        self.calibration = getattr(backend, "calibration", None) if calibration is MemoScores._NONE else calibration
        self.model_calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)

    @staticmethod
    def key(prompt) -> bytes:
        return orjson.dumps([prompt.messages, prompt.prefill])

    def score(self, prompts: Sequence) -> list[float]:
        keys = [self.key(p) for p in prompts]
        todo: dict[bytes, Any] = {}
        for k, p in zip(keys, prompts, strict=True):
            if k not in self.memo:
                todo.setdefault(k, p)
        if todo:
            self.model_calls += len(todo)
            for k, v in zip(todo, self._backend.score(list(todo.values())), strict=True):
                self.memo[k] = float(v)
        return [self.memo[k] for k in keys]


@dataclass
class Scored:
    """R-Log-fast's raw P(abnormal), the evidence features and the labels of some sessions."""

    probs: list[float] = field(default_factory=list)
    evidence: list[dict[str, float]] = field(default_factory=list)
    labels: list[bool] = field(default_factory=list)


def score_sessions(memo: MemoScores, cascade, sessions: Sequence[Session], labels: Sequence[bool], *,
                   bar: tqdm) -> Scored:
    """R-Log-fast's P(abnormal) of sessions, read as the stream's verdict memory reads them: once per memory
    key (``cascade.memory.key``: the same kind of session with a few more or fewer repeats), the first
    session of a key standing for the rest, in the stream's batch size. The evidence is each session's own."""
    from rlog.contract.representation import signature_key

    chunk = max(1, cascade.cfg.fast.batch_size)
    views = [view_of(s, cascade.cfg.view) for s in sessions]
    keys = [signature_key(s, cascade.cfg) for s in sessions]
    first: dict[str, int] = {}
    for i, k in enumerate(keys):
        if k not in memo.by_key:
            first.setdefault(k, i)
    todo = list(first.items())
    for i in range(0, len(todo), chunk):
        part = todo[i: i + chunk]
        for (k, _), p in zip(part, memo.score([cascade._prompt_of(views[j], "fast") for _, j in part]), strict=True):
            memo.by_key[k] = p
        bar.update(len(part))
    bar.update(len(sessions) - len(todo))
    return Scored([memo.by_key[k] for k in keys], [evidence_of(v) for v in views], list(labels))


def fusion_sample(d: DaemonSet, n: int | None, seed: int) -> tuple[list[Session], list[bool]]:
    """The scored sessions of ``d`` another daemon's scorer is fitted on: all, or a seeded sample of ``n``
    (in order). Its past runs are never used: a lab-trained adapter has read them."""
    idx = list(range(len(d.data.test)))
    if n is not None and n < len(idx):
        import random

        idx = sorted(random.Random(seed).sample(idx, n))
    return [d.data.test[i] for i in idx], [d.data.test_labels[i] for i in idx]


def lodo_scorers(daemon: str, scored: dict[str, Scored], c: float) -> dict[str, Any]:
    """The fused and the model-alone scorer fitted on every daemon but ``daemon`` (each weighing the same)."""
    from train.calibrate import fit_scorer

    probs: list[float] = []
    evidence: list[dict[str, float]] = []
    labels: list[bool] = []
    groups: list[str] = []
    for d, s in scored.items():
        if d == daemon:
            continue
        probs += s.probs
        evidence += s.evidence
        labels += s.labels
        groups += [d] * len(s.probs)
    return {"fused": fit_scorer(probs, evidence, labels, groups=groups, c=c),
            "model": fit_scorer(probs, None, labels, groups=groups, c=c),
            "fitted_on": sorted(set(groups)), "n": len(probs)}


def _flags(cal, probs: Sequence[float], evidence: Sequence[dict[str, float]]) -> list[bool]:
    if cal is None:
        return [p >= 0.5 for p in probs]
    if cal.fusion is None:
        return [p >= cal.threshold for p in probs]
    return [cal.fusion.apply(logit(p), ev) >= cal.threshold for p, ev in zip(probs, evidence, strict=True)]


def category_recall(sets: Sequence[DaemonSet], preds: dict[str, dict[str, list[bool]]]) -> list[dict]:
    """Per method and lab fault category: the share of its abnormal scored sessions flagged (pooled over
    daemons, each daemon's sessions judged by what was fitted for it), with a Wilson interval."""
    rows = []
    methods = sorted({m for p in preds.values() for m in p})
    for m in methods:
        hits: dict[str, list[bool]] = defaultdict(list)
        for d in sets:
            pred = preds[d.daemon].get(m)
            if pred is None:
                continue
            for s, y, p in zip(d.data.test, d.data.test_labels, pred, strict=True):
                cat = d.category(s) if y else None
                if cat:
                    hits[cat].append(p)
        for cat, hs in sorted(hits.items()):
            rows.append({"method": m, "category": cat, "abnormal": len(hs), "flagged": sum(hs),
                         "recall": round(sum(hs) / len(hs), 4), "recall_ci": wilson(sum(hs), len(hs))})
    return rows


def targets(rows: list[dict], daemons: Sequence[str], margin: float = 0.05, max_fpr: float = 0.02) -> list[dict]:
    """Issue 31's bar, per daemon and rlog variant: F1 at least the best baseline's + ``margin``, FPR at most
    ``max_fpr``."""
    from benchmarks.spec import BASELINES

    out = []
    for d in daemons:
        mine = [r for r in rows if r["dataset"] == f"lab-{d}" and r["level"] == "session"]
        base = [r for r in mine if r["method"] in BASELINES and r["f1"] is not None]
        best = max(base, key=lambda r: r["f1"], default=None)
        for ours in (r for r in mine if r["method"] in ("rlog", LAB_CASCADE)):
            if best is None:
                continue
            gap = round((ours["f1"] or 0.0) - best["f1"], 4)
            out.append({"daemon": d, "method": ours["method"], "rlog_f1": ours["f1"], "rlog_fpr": ours["fpr"],
                        "best_baseline": best["method"], "best_baseline_f1": best["f1"], "gap": gap,
                        "f1_met": gap >= margin, "fpr_met": ours["fpr"] is not None and ours["fpr"] <= max_fpr})
    return out


def run_faultlab(spec: BenchSpec, cfg: RlogConfig, *, llm: bool, progress: bool,
                 rows: list[dict], info: dict[str, dict], memory: dict) -> dict:
    """The ``faultlab`` part of a benchmark run: appends detection rows and dataset info; returns its own section."""
    from benchmarks.run import _baselines, score_row

    lab = spec.faultlab
    assert lab is not None
    t0 = time.perf_counter()
    _say(f"reading the corpus at {lab.corpus}")
    sets = load_lab(lab, cfg)
    if llm and len(sets) < 2:
        from rlog.config import ConfigError

        raise ConfigError("faultlab: leaving one daemon out needs at least two daemons in the corpus "
                          f"(found {', '.join(d.daemon for d in sets) or 'none'})")
    preds: dict[str, dict[str, list[bool]]] = {d.daemon: {} for d in sets}
    section: dict[str, Any] = {"corpus": str(lab.corpus), "fit_runs": lab.fit_runs, "daemons": {}}
    for d in sets:
        data = d.data
        info[data.name] = {"source": data.truth_note, "fit_sessions": len(data.fit), "test_sessions": len(data.test),
                           "test_abnormal": sum(data.test_labels), "test_lines": data.test_lines, "unlabelled": 0,
                           "templates": 0, "templates_abnormal": 0,
                           "session": data.cfg.session.model_dump(mode="json", include={"mode", "by", "size", "step"})}
        _say(f"{d.daemon}: {len(data.fit)} fit / {len(data.test)} scored sessions ({sum(data.test_labels)} abnormal); "
             "baselines")
        preds[d.daemon].update(_baselines(spec, data, rows))
        section["daemons"][d.daemon] = {"fit_seeds": d.fit_seeds, "test_seeds": d.test_seeds}
    if llm:
        from benchmarks.run import own_peak_rss_mb

        memory["bench_peak_rss_mb_without_models"] = own_peak_rss_mb()  # the corpus and the baselines included
        _models(spec, cfg, sets, preds, rows, section, progress)
        memory["bench_peak_rss_mb_with_models"] = own_peak_rss_mb()
    pooled_truth = [y for d in sets for y in d.data.test_labels]
    for m in sorted({m for p in preds.values() for m in p}):
        if all(m in preds[d.daemon] for d in sets):
            rows.append(score_row(m, "lab-all", "session", pooled_truth,
                                  [p for d in sets for p in preds[d.daemon][m]]))
    section["categories"] = category_recall(sets, preds)
    section["targets"] = targets(rows, [d.daemon for d in sets])
    section["elapsed_s"] = round(time.perf_counter() - t0, 1)
    return section


def _models(spec: BenchSpec, cfg: RlogConfig, sets: list[DaemonSet], preds: dict, rows: list[dict],
            section: dict, progress: bool) -> None:
    from benchmarks.explain import evaluate_explanations, incident_sessions
    from rlog.backends import load_stage_backends
    from rlog.cascade.cascade import Cascade
    from stream.runner import load_models

    lab = spec.faultlab
    assert lab is not None
    explain = lab.explain_incidents > 0
    _say(f"loading models (fast: {cfg.cascade.fast.model}{', full: ' + cfg.cascade.full.model if explain else ''})")
    fast, full = load_models(cfg, ("detect", "explain") if explain else ("detect",))
    memo = MemoScores(fast)
    cascade = Cascade(memo, None, cfg.cascade)
    samples = {d.daemon: fusion_sample(d, lab.fusion_sessions, spec.seed) for d in sets}
    t0 = time.perf_counter()
    total = sum(len(d.data.test) for d in sets)
    with tqdm(total=total, unit="session", desc="R-Log-fast on the lab", disable=not progress, file=sys.stderr) as bar:
        scored = {d.daemon: score_sessions(memo, cascade, d.data.test, d.data.test_labels, bar=bar) for d in sets}
    section["model"] = {"sessions_scored": total, "seconds": round(time.perf_counter() - t0, 1)}
    fit_on = {d.daemon: _subset(scored[d.daemon], d, *samples[d.daemon]) for d in sets}
    cals: dict[str, Any] = {}
    for d in sets:
        cals[d.daemon] = _lodo_daemon(d, fast, memo, scored[d.daemon], fit_on, lab.fusion_c, cfg, preds, rows,
                                      section, progress, shipped=getattr(fast, "calibration", None))
        if explain and full is not None:
            chosen = incident_sessions(d.data.test, lab.explain_incidents)
            refs = {k: {"cause": v.cause, "action": v.fix} for k, v in d.incidents.items()}
            _say(f"{d.daemon}: R-Log explains {len(chosen)} incidents (references: the injector's cause and fix)")
            res = evaluate_explanations(Cascade(MemoScores(fast, memo.memo, cals[d.daemon]), full, cfg.cascade), chosen,
                                        refs, progress=progress)
            section.setdefault("explanations", {})[d.daemon] = res
            lab_full = _lab_adapter(lab.full_adapters, d.daemon, "R-Log", section)
            if lab_full is not None:
                own = cfg.cascade.model_copy(update={"full": cfg.cascade.full.model_copy(update={"adapter": lab_full})})
                _, full_d = load_stage_backends(own, fast=fast, full=True)
                _say(f"{d.daemon}: R-Log trained without it explains the same incidents ({lab_full})")
                res = evaluate_explanations(Cascade(MemoScores(fast, memo.memo, cals[d.daemon]), full_d, own), chosen,
                                            refs, progress=progress)
                section.setdefault("explanations_lab", {})[d.daemon] = {**res, "adapter": lab_full}
                del full_d
    section["model"]["model_calls"] = memo.model_calls
    for d in sets:
        adapter = _lab_adapter(lab.fast_adapters, d.daemon, "R-Log-fast", section)
        if adapter is None:
            continue
        _say(f"{d.daemon}: R-Log-fast trained without it ({adapter})")
        own = cfg.cascade.model_copy(update={"fast": cfg.cascade.fast.model_copy(update={"adapter": adapter})})
        fast_d, _ = load_stage_backends(own, fast=True, full=False)
        memo_d = MemoScores(fast_d)
        casc = Cascade(memo_d, None, cfg.cascade)
        n = len(d.data.test) + sum(len(samples[o.daemon][0]) for o in sets if o is not d)
        with tqdm(total=n, unit="session", desc=f"R-Log-fast without {d.daemon}", disable=not progress,
                  file=sys.stderr) as bar:
            mine = score_sessions(memo_d, casc, d.data.test, d.data.test_labels, bar=bar)
            others = {o.daemon: score_sessions(memo_d, casc, *samples[o.daemon], bar=bar) for o in sets if o is not d}
        _lodo_daemon(d, fast_d, memo_d, mine, others, lab.fusion_c, cfg, preds, rows, section, progress,
                     names=(LAB_FAST, LAB_CASCADE), adapter=str(adapter))
        section["daemons"][d.daemon]["lab_adapter_model_calls"] = memo_d.model_calls
        del fast_d, memo_d, casc


def _lab_adapter(adapters: dict[str, str], daemon: str, stage: str, section: dict) -> str | None:
    """The lab-trained adapter of ``stage`` made without ``daemon``, when the spec names one and it is there
    (a missing one is said in the results, not fatal: the adapters take hours of CPU to make)."""
    adapter = adapters.get(daemon)
    if adapter is None:
        return None
    if not (Path(adapter) / "adapter_config.json").is_file():
        why = f"no adapter at {adapter} (train it: train/make_lab_adapters.sh)"
        section.setdefault("skipped", {})[f"{stage} +lab {daemon}"] = why
        _say(f"{daemon}: {why}")
        return None
    return adapter


def _subset(scored: Scored, d: DaemonSet, sessions: list[Session], labels: list[bool]) -> Scored:
    """The rows of ``scored`` (all of ``d``'s scored sessions) that are the fusion sample."""
    pos = {id(s): i for i, s in enumerate(d.data.test)}
    idx = [pos[id(s)] for s in sessions]
    return Scored([scored.probs[i] for i in idx], [scored.evidence[i] for i in idx], list(labels))


def _lodo_daemon(d: DaemonSet, fast: Any, memo: MemoScores, mine: Scored, fit_on: dict[str, Scored], c: float,
                 cfg: RlogConfig, preds: dict, rows: list[dict], section: dict, progress: bool, *,
                 shipped: Any = None, names: tuple[str, str] = ("rlog-fast", "rlog"), adapter: str | None = None):
    """Score one daemon with a scorer fitted on the others: R-Log-fast's rows, then the cascade's."""
    from benchmarks.llm import run_cascade, warm_up
    from benchmarks.run import score_row
    from rlog.cascade.cascade import Cascade

    data = d.data
    fitted = lodo_scorers(d.daemon, fit_on, c)
    cal = fitted["fused"]
    variants = {names[0]: cal}
    if adapter is None:
        variants.update({MODEL_ALONE: fitted["model"], SHIPPED: shipped})
    for name, v in variants.items():
        pred = _flags(v, mine.probs, mine.evidence)
        preds[d.daemon][name] = pred
        rows.append(score_row(name, data.name, "session", data.test_labels, pred))
    cascade = Cascade(MemoScores(fast, memo.memo, cal), None, cfg.cascade)
    warm = warm_up(cascade, data.fit, desc=f"warming lab-{d.daemon}", progress=progress) if data.fit else None
    run = run_cascade(cascade, data.test, desc=f"cascade lab-{d.daemon}", progress=progress)
    preds[d.daemon][names[1]] = run.cascade_pred
    rows.append(score_row(names[1], data.name, "session", data.test_labels, run.cascade_pred))
    key = "calibration" if adapter is None else "lab_calibration"
    section["daemons"][d.daemon][key] = {
        "fitted_on": fitted["fitted_on"], "sessions": fitted["n"], "threshold": cal.threshold, "band": cal.band,
        "fusion": cal.fusion.summary() if cal.fusion else None, "model_alone_threshold": fitted["model"].threshold,
        **({"adapter": adapter} if adapter else {}),
        "cascade": {"warmed_on": warm, **{k: run.stats[k] for k in ("sessions", "fast_calls", "memory_hits",
                                                                    "known_normal_hits", "incident_hits")
                                          if k in run.stats}}}
    return cal
