"""`rlog lab`: real daemons, real injected faults, logs labelled by the injector (benchmarks/faultlab)."""

from __future__ import annotations

import argparse

from rlog.tables import format_table


def add_parsers(sub) -> None:
    lab = sub.add_parser("lab", help="run real daemons with real injected faults and label their logs",
                         description="The fault lab: a Debian daemon (MQTT broker Mosquitto, …) on loopback under a "
                                     "seeded workload, real faults injected at recorded times while it works, and the "
                                     "daemon's own log written with a per-line label from the injector (in the fault's "
                                     "window and matching its expected trace), the fault, its category, root cause and "
                                     "fix. `rlog analyze RUN_FOLDER` reads a run as it reads a simulation.")
    lsub = lab.add_subparsers(dest="lab_command", metavar="{list,run,corpus}")
    ls = lsub.add_parser("list", help="the daemons and their faults")
    ls.set_defaults(func=cmd_list)
    run = lsub.add_parser("run", help="one seeded run of a daemon with its faults")
    run.add_argument("--daemon", "-d", required=True, help="which daemon (rlog lab list)")
    run.add_argument("--out", "-o", required=True, metavar="DIR", help="the run folder (log, truth.csv, manifest.json)")
    run.add_argument("--seed", type=int, default=0, help="seed of the fault order, the workload and the faults' details")
    run.add_argument("--faults", metavar="A,B", help="which faults, in this order (default: all, in a seeded order)")
    run.add_argument("--warmup", type=float, default=5.0, metavar="S", help="normal work before the first fault")
    run.add_argument("--gap", type=float, default=6.0, metavar="S", help="mean normal work between faults")
    run.add_argument("--rate", type=float, default=4.0, help="client visits per second of the normal workload")
    run.set_defaults(func=cmd_run)
    corpus = lsub.add_parser("corpus", help="many runs (daemons x seeds) and a corpus manifest with checksums")
    corpus.add_argument("--out", "-o", required=True, metavar="DIR", help="<DIR>/<daemon>/seed-<n>/ and DIR/corpus.json")
    corpus.add_argument("--daemons", default="all", metavar="A,B", help="which daemons (default: all)")
    corpus.add_argument("--seeds", default="1-5", metavar="N-M|A,B", help="seeds, a range or a list (default 1-5)")
    corpus.add_argument("--warmup", type=float, default=5.0, metavar="S", help="normal work before the first fault")
    corpus.add_argument("--gap", type=float, default=6.0, metavar="S", help="mean normal work between faults")
    corpus.add_argument("--rate", type=float, default=4.0, help="client visits per second of the normal workload")
    corpus.add_argument("--one-at-a-time", action="store_true", help="run the daemons one after another, not side by side")
    corpus.set_defaults(func=cmd_corpus)
    lab.set_defaults(func=lambda a: (lab.print_help(), 2)[1])


def cmd_list(a: argparse.Namespace) -> int:
    from benchmarks.faultlab.daemons import DAEMONS

    rows = []
    for name, cls in DAEMONS.items():
        d = cls()
        why = d.missing()
        for f in d.faults.values():
            rows.append((name, f.name, f.category, f.root, f.cause[:70]))
        if why:
            rows.append((name, "(not runnable here)", "", "", why[:70]))
    print(format_table(("daemon", "fault", "category", "root cause", "what happens"), rows))
    return 0


def cmd_run(a: argparse.Namespace) -> int:
    from benchmarks.faultlab.daemons import make_daemon
    from benchmarks.faultlab.runner import run_lab
    from rlog.config import ConfigError

    daemon = make_daemon(a.daemon)
    why = daemon.missing()
    if why is not None:
        raise ConfigError(f"{a.daemon}: {why}")
    faults = [f.strip() for f in a.faults.split(",") if f.strip()] if a.faults else None
    m = run_lab(daemon, a.out, seed=a.seed, faults=faults, warmup_s=a.warmup, gap_s=a.gap, rate_per_s=a.rate)
    rows = [(i["incident"], i["category"], i["root"], i["traced_lines"], f"{i['end'] - i['start']:.1f}s")
            for i in m["injections"]]
    print(format_table(("injection", "category", "root cause", "lines in its trace", "window"), rows))
    print(f"{m['daemon']} ({m['version']}): {m['lines']} lines, {m['abnormal_lines']} labelled abnormal, "
          f"written to {a.out}; `rlog analyze {a.out}` reads it")
    return 1 if m["untraced"] else 0


def _seeds(text: str) -> list[int]:
    try:
        if "-" in text:
            lo, hi = (int(x) for x in text.split("-", 1))
            return list(range(lo, hi + 1))
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"--seeds {text!r}: write a range (1-20) or a list (1,4,9)") from None


def cmd_corpus(a: argparse.Namespace) -> int:
    from benchmarks.faultlab.corpus import build_corpus
    from benchmarks.faultlab.daemons import DAEMONS

    names = list(DAEMONS) if a.daemons == "all" else [d.strip() for d in a.daemons.split(",") if d.strip()]
    unknown = sorted(set(names) - set(DAEMONS))
    if unknown:
        raise ValueError(f"no daemon {', '.join(unknown)} in the lab: {', '.join(DAEMONS)}")
    m = build_corpus(a.out, names, _seeds(a.seeds), warmup_s=a.warmup, gap_s=a.gap, rate_per_s=a.rate,
                     parallel=not a.one_at_a_time)
    rows = [(k, v) for k, v in m["abnormal_sessions_by_fault"].items()]
    print(format_table(("daemon/fault", "abnormal sessions"), rows))
    t = m["totals"]
    print(f"{t.get('runs', 0)} runs, {t.get('lines', 0):,} lines, {t.get('sessions', 0):,} sessions "
          f"({t.get('abnormal_sessions', 0):,} abnormal) in {a.out}; manifest {a.out}/corpus.json")
    for name, why in m["skipped"].items():
        print(f"rlog lab corpus: {name} not run here: {why}")
    for name, why in m["failed"].items():
        print(f"rlog lab corpus: {name} stopped: {why}")
    return 1 if m["failed"] else 0
