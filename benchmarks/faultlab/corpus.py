"""Many lab runs as one corpus: daemons × seeds, each run in its own folder, and a manifest that
says what was built (runs, lines, labelled sessions per daemon and fault, checksums) so a corpus
too large to commit is rebuilt by its command and checked against the committed manifest.
A build is resumable: a run whose folder already holds a finished, intact run is kept."""

from __future__ import annotations

import csv
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import orjson

from benchmarks.faultlab.daemons import make_daemon
from benchmarks.faultlab.runner import READ_AS, run_lab
from rlog.config import load_config
from rlog.pipeline.lines import Line
from rlog.pipeline.pipeline import Pipeline
from rlog.truth import LineTruth


def count_sessions(run: Path, manifest: dict) -> dict:
    """Sessions of a run folder as ``rlog analyze RUN`` cuts them (its manifest's config), by label
    and by the fault that dominates each abnormal one."""
    cfg = load_config(env={}, base=manifest["config"])
    pipe = Pipeline(cfg)
    truth = {}
    with open(run / manifest["files"]["truth"], newline="", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            truth[int(r["line"])] = LineTruth(r["label"] == "1", r["incident"] or None, r["scenario"] or None,
                                              r["category"] or None)
    sessions = []
    text = (run / manifest["files"]["logs"]).read_text(encoding="utf-8").splitlines()
    for n, ln in enumerate(text, 1):
        sessions += pipe.feed(manifest["daemon"], Line(n, ln), truth.get(n))[0]
    sessions += pipe.flush()[0]
    by_fault: Counter = Counter()
    abnormal = 0
    for s in sessions:
        t = s.truth
        if t is not None and t.label:
            abnormal += 1
            by_fault[t.scenario] += 1
    return {"sessions": len(sessions), "abnormal": abnormal, "by_fault": dict(by_fault)}


def finished_run(folder: Path, daemon: str, seed: int, settings: dict | None = None) -> dict | None:
    """The manifest of a run already built in ``folder`` whose files still match their checksums (a
    build stopped halfway resumes where it was), else None."""
    import hashlib

    try:
        m = orjson.loads((folder / "manifest.json").read_bytes())
        if m.get("daemon") != daemon or m.get("seed") != seed:
            return None
        if settings is not None and any(m.get("settings", {}).get(k) != v for k, v in settings.items()):
            return None  # built with another workload
        if all(hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest
               for name, digest in m["sha256"].items()):
            return m
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return None


def build_corpus(out: str | Path, daemons: Sequence[str], seeds: Sequence[int], *, warmup_s: float = 5.0,
                 gap_s: float = 6.0, rate_per_s: float = 4.0, parallel: bool = True, progress: bool = True) -> dict:
    """Run every daemon with every seed into ``out/<daemon>/seed-<n>/``; write ``out/corpus.json``.

    ``parallel``: the daemons run side by side (each its own thread, ports and folder; a run is
    mostly waiting, so this divides the wall time, not the labels' accuracy), seeds one after
    another per daemon. A daemon that cannot run here is named in the manifest, not left out
    silently."""
    out = Path(out).resolve()  # daemons run in their own folder: every path they are given is absolute
    skipped = {name: why for name in daemons if (why := make_daemon(name).missing()) is not None}
    todo = [name for name in daemons if name not in skipped]
    results: dict[str, list[dict]] = {name: [] for name in todo}
    errors: dict[str, str] = {}
    t0 = time.time()

    def one_daemon(name: str) -> None:
        for seed in seeds:
            folder = out / name / f"seed-{seed}"
            m = finished_run(folder, name, seed, {"warmup_s": warmup_s, "gap_s": gap_s, "rate_per_s": rate_per_s})
            if progress:
                state = "kept from an earlier build" if m is not None else "running"
                print(f"rlog lab corpus: {name} seed {seed} ({state})", file=sys.stderr, flush=True)
            try:
                if m is None:
                    m = run_lab(make_daemon(name), folder, seed=seed, warmup_s=warmup_s, gap_s=gap_s,
                                rate_per_s=rate_per_s, progress=progress)
            except Exception as e:  # noqa: BLE001 - one daemon failing ends its runs, not the others'; said below
                errors[name] = f"seed {seed}: {type(e).__name__}: {e}"[:500]
                return
            results[name].append({"daemon": name, "seed": seed, "folder": str(folder.relative_to(out)),
                                  "lines": m["lines"], "abnormal_lines": m["abnormal_lines"],
                                  "untraced": m["untraced"], "sha256": m["sha256"], "version": m["version"],
                                  **count_sessions(folder, m)})

    if parallel:
        threads = [threading.Thread(target=one_daemon, args=(name,), name=f"lab-{name}") for name in todo]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    else:
        for name in todo:
            one_daemon(name)
    runs = [r for name in todo for r in results[name]]
    totals: Counter = Counter()
    faults: Counter = Counter()
    for r in runs:
        totals.update({"runs": 1, "lines": r["lines"], "sessions": r["sessions"], "abnormal_sessions": r["abnormal"]})
        faults.update({f"{r['daemon']}/{k}": v for k, v in r["by_fault"].items()})
    manifest = {"kind": "rlog.faultlab.corpus/v1", "built_s": round(time.time() - t0, 1), "read_as": READ_AS,
                "daemons": list(daemons), "seeds": list(seeds), "rate_per_s": rate_per_s, "skipped": skipped,
                "failed": errors, "totals": dict(totals), "abnormal_sessions_by_fault": dict(sorted(faults.items())),
                "runs": runs}
    out.mkdir(parents=True, exist_ok=True)
    (out / "corpus.json").write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
    (out / "corpus.md").write_text(corpus_table(manifest), encoding="utf-8")
    return manifest


def corpus_table(m: dict) -> str:
    """The corpus as a reader checks it: per daemon and per fault, runs, lines and sessions."""
    per: dict[str, Counter] = {}
    for r in m["runs"]:
        per.setdefault(r["daemon"], Counter()).update({"runs": 1, "lines": r["lines"], "sessions": r["sessions"],
                                                       "abnormal": r["abnormal"], "untraced": len(r["untraced"])})
    versions = {r["daemon"]: r["version"] for r in m["runs"]}
    out = [f"# Fault-lab corpus: {m['totals'].get('runs', 0)} runs, {m['totals'].get('sessions', 0):,} sessions "
           f"({m['totals'].get('abnormal_sessions', 0):,} abnormal)", "",
           f"Seeds {m['seeds'][0]}-{m['seeds'][-1]}, workload {m.get('rate_per_s')} visits/s, sessions as `rlog "
           f"analyze` cuts a run folder ({m['read_as']['session']['size']}-line windows). Built in "
           f"{m['built_s'] / 60:.0f} min.", "",
           "| daemon | version | runs | lines | sessions | abnormal sessions | faults without a trace |",
           "|---|---|---|---|---|---|---|"]
    for name, c in per.items():
        out.append(f"| {name} | {versions[name]} | {c['runs']} | {c['lines']:,} | {c['sessions']:,} | "
                   f"{c['abnormal']:,} | {c['untraced']} |")
    out += ["", "| daemon / fault | abnormal sessions |", "|---|---|"]
    out += [f"| {k} | {v} |" for k, v in m["abnormal_sessions_by_fault"].items()]
    if m.get("skipped") or m.get("failed"):
        out += ["", *(f"- {k} not run: {v}" for k, v in {**m.get("skipped", {}), **m.get("failed", {})}.items())]
    return "\n".join(out) + "\n"
