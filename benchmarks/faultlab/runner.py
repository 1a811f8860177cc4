"""A lab run: start a daemon, drive its seeded normal workload, inject faults at recorded times
while the workload goes on, collect its log, label every line, write the run folder.

The folder is what ``rlog analyze FOLDER`` reads (as it reads a simulation): ``<daemon>.log``
(the daemon's lines as it wrote them), ``truth.csv`` (one row per line: label, incident, fault,
root-cause category), ``manifest.json`` (seed, daemon version, every injection with its window,
cause and fix, how many lines each left, checksums, and how ``rlog analyze`` should read it).
"""

from __future__ import annotations

import csv
import hashlib
import random
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import orjson

from benchmarks.faultlab.daemon import Daemon, DaemonError
from benchmarks.faultlab.labels import label_lines, traced
from benchmarks.faultlab.model import Injection
from rlog.truth import TRUTH_COLUMNS

# as a new user reads an unknown log: no preset, 20-line windows
READ_AS = {"parse": {"format": "raw"}, "session": {"mode": "fixed", "by": "count", "size": 20}}


class Workload:
    """The daemon's normal work in a thread at a seeded pace; failures (the daemon is down during
    a fault) are counted, never raised: devices keep trying."""

    def __init__(self, daemon: Daemon, seed: int, rate_per_s: float) -> None:
        self.daemon, self.rng, self.rate = daemon, random.Random(seed), rate_per_s
        self.done = self.failed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"{daemon.name}-workload", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.daemon.work(self.rng)
                self.done += 1
            except (OSError, ValueError):
                self.failed += 1
            self._stop.wait(self.rng.expovariate(self.rate))

    def __enter__(self) -> Workload:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)


def run_lab(daemon: Daemon, out: str | Path, *, seed: int = 0, faults: Sequence[str] | None = None,
            warmup_s: float = 5.0, gap_s: float = 6.0, rate_per_s: float = 4.0, progress: bool = True) -> dict:
    """One seeded run of ``daemon`` with ``faults`` (default: all of its faults, in a seeded order)."""
    why = daemon.missing()
    if why is not None:
        raise DaemonError(f"{daemon.name}: {why}")
    unknown = sorted(set(faults or ()) - set(daemon.faults))
    if unknown:
        raise ValueError(f"{daemon.name} has no fault {', '.join(unknown)}: it has {', '.join(daemon.faults)}")
    rng = random.Random(seed)
    order = list(faults) if faults else rng.sample(sorted(daemon.faults), k=len(daemon.faults))
    out = Path(out).resolve()  # daemons run in their own folder: every path they are given is absolute
    out.mkdir(parents=True, exist_ok=True)
    say = (lambda m: print(f"rlog lab: {daemon.name}: {m}", file=sys.stderr, flush=True)) if progress else \
        (lambda m: None)
    t0 = time.time()
    daemon.start(out / "run", rng)
    injections: list[Injection] = []
    try:
        with Workload(daemon, seed + 1, rate_per_s) as work:
            time.sleep(warmup_s)
            for i, name in enumerate(order, 1):
                spec = daemon.faults[name]
                time.sleep(rng.uniform(0.5, 1.5) * gap_s)
                say(f"[{i}/{len(order)}] {name} ({spec.category})")
                start = time.time()
                detail = daemon.inject(name, rng)
                injections.append(Injection(f"{name}#{i}", name, spec.category, spec.root, start,
                                            time.time() + spec.settle_s, spec.cause, spec.fix, detail))
                time.sleep(spec.settle_s)
            time.sleep(gap_s)
        stats = {"visits": work.done, "failed_visits": work.failed}
    finally:
        daemon.stop()
    lines = daemon.lines()
    labels = label_lines(lines, injections, daemon.faults)
    counts = traced(labels)
    log_name = f"{daemon.name}.log"
    (out / log_name).write_text("".join(ln.text + "\n" for ln in lines), encoding="utf-8")
    by_n = {inj.fault: inj for inj in injections}
    with open(out / "truth.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(TRUTH_COLUMNS)
        for ln, lb in zip(lines, labels, strict=True):
            inj = by_n.get(lb.fault) if lb.label else None
            w.writerow([ln.n, f"{ln.at:.6f}", daemon.name, "localhost", lb.label, inj.incident if inj else "",
                        lb.fault, inj.root if inj else ""])
    manifest = {
        "kind": "rlog.faultlab.run/v1", "daemon": daemon.name, "version": daemon.version(), "seed": seed,
        "started": t0, "duration_s": round(time.time() - t0, 1), "lines": len(lines),
        "abnormal_lines": sum(lb.label for lb in labels), "workload": stats,
        "settings": {"faults": order, "warmup_s": warmup_s, "gap_s": gap_s, "rate_per_s": rate_per_s},
        "injections": [{**inj.as_dict(), "traced_lines": counts.get(inj.fault, 0)} for inj in injections],
        "untraced": [inj.fault for inj in injections if not counts.get(inj.fault)],
        "files": {"logs": log_name, "truth": "truth.csv"}, "config": READ_AS,
    }
    manifest["sha256"] = {name: hashlib.sha256((out / name).read_bytes()).hexdigest() for name in (log_name, "truth.csv")}
    (out / "manifest.json").write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
    say(f"{len(lines)} lines, {manifest['abnormal_lines']} in a fault's trace; "
        + (f"no trace from {', '.join(manifest['untraced'])}" if manifest["untraced"] else "every fault left a trace"))
    return manifest
