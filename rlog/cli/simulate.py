"""`rlog simulate`: labelled logs of a small estate with injected faults, to a folder or a topic."""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from rlog.config import ConfigError
from rlog.tables import format_table


def add_parsers(sub) -> None:
    sm = sub.add_parser("simulate", help="generate labelled logs of a small distributed system with injected faults",
                        description="Simulate a storage cluster (HDFS layout), compute nodes (BGL/RAS), Java web "
                                    "services (log4j) and their Linux hosts (rsyslog), interleaved in time, with "
                                    "faults and benign look-alikes injected. Writes logs + ground truth to --out "
                                    "and/or produces them to a Kafka topic. Same seed, same bytes.")
    sm.add_argument("--out", "-o", metavar="DIR", help="write logs.jsonl, truth.csv, incidents.jsonl, sessions.csv, "
                    "manifest.json here")
    sm.add_argument("--lines", "-n", type=int, help="number of lines (default 5000)")
    sm.add_argument("--duration", type=float, metavar="SECONDS", help="simulated time to cover (with --lines, "
                    "whichever comes first)")
    sm.add_argument("--seed", type=int, help="random seed (default 0)")
    sm.add_argument("--rate", type=float, help="mean normal lines per simulated second (default 10)")
    sm.add_argument("--start", help="simulated start time, ISO 8601 (default 2026-01-05T08:00:00Z)")
    sm.add_argument("--faults", metavar="A,B", help="fault scenarios drawn at random (default all; 'none' for none)")
    sm.add_argument("--benign", metavar="A,B", help="look-alike scenarios drawn at random (default all; 'none')")
    sm.add_argument("--fault-gap", type=float, metavar="SECONDS", help="mean quiet time between random faults "
                    "(default 90; 0 = only --inject)")
    sm.add_argument("--benign-gap", type=float, metavar="SECONDS", help="mean quiet time between look-alikes "
                    "(default 120; 0 = none)")
    sm.add_argument("--warmup", type=float, metavar="SECONDS", help="normal traffic before the first random incident")
    sm.add_argument("--inject", action="append", metavar="SCENARIO@SECONDS",
                    help="inject a scenario at a time after the start, e.g. disk_failure@600; repeatable")
    sm.add_argument("--plan", metavar="YAML", help="simulation settings as YAML (fields of SimConfig); flags win")
    sm.add_argument("--window-by", choices=["count", "time"], help="windows of sessions.csv and of `rlog analyze "
                    "DIR`: lines or seconds (default count)")
    sm.add_argument("--window-size", type=float, help="window length in lines or seconds (default 40)")
    sm.add_argument("--to-kafka", metavar="TOPIC", help="also produce each line (JSON envelope, key = component)")
    sm.add_argument("--broker", metavar="HOST:PORT", help="Kafka bootstrap servers (default $RLOG_KAFKA_BROKER)")
    sm.add_argument("--partitions", type=int, default=4, help="partitions if the topic has to be created (default 4)")
    sm.add_argument("--speedup", type=float, default=1.0,
                    help="pace of --to-kafka: 1 = real time, 60 = a minute per second, 0 = as fast as possible")
    sm.add_argument("--list", action="store_true", help="list the scenarios and exit")
    sm.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    sm.set_defaults(func=cmd_simulate)



def cmd_simulate(a: argparse.Namespace) -> int:
    from rlog.sim.engine import Injection, SimConfig
    from rlog.sim.output import DEFAULT_SESSION, simulate
    from rlog.sim.scenarios import SCENARIOS

    if a.list:
        rows = [(sc.name, sc.kind, sc.category or "-", ",".join(sc.components), sc.title) for sc in SCENARIOS.values()]
        print(format_table(("scenario", "kind", "category", "components", "what happens"), rows))
        return 0
    if not a.out and not a.to_kafka:
        raise ConfigError("give --out DIR (logs + ground truth) and/or --to-kafka TOPIC")
    data: dict = {}
    if a.plan:
        try:
            data = yaml.safe_load(Path(a.plan).read_text(encoding="utf-8")) or {}
        except FileNotFoundError:
            raise ConfigError(f"simulation plan not found: {a.plan}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"simulation plan {a.plan} must be a mapping of SimConfig fields")
    for flag, key in (("seed", "seed"), ("rate", "rate"), ("fault_gap", "fault_gap_s"), ("benign_gap", "benign_gap_s"),
                      ("warmup", "warmup_s"), ("start", "start")):
        if getattr(a, flag) is not None:
            data[key] = getattr(a, flag)
    if a.lines is not None or a.duration is not None:
        data["lines"], data["duration_s"] = a.lines, a.duration
    for flag in ("faults", "benign"):
        v = getattr(a, flag)
        if v is not None:
            data[flag] = [x.strip() for x in v.split(",") if x.strip() and x.strip() != "none"]
    if a.inject:
        data["inject"] = [*data.get("inject", []), *(Injection.parse(x).model_dump() for x in a.inject)]
    from pydantic import ValidationError

    try:
        cfg = SimConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError("invalid simulation settings:\n" + "\n".join(
            f"  {'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())) from None
    sink = None
    if a.to_kafka:
        import os

        from stream.kafka_io import BROKER_ENV, ensure_topics
        from stream.replay import KafkaSink

        broker = a.broker or os.environ.get(BROKER_ENV)
        if not broker:
            raise ConfigError(f"--to-kafka needs --broker HOST:PORT (or {BROKER_ENV})")
        ensure_topics(broker, {a.to_kafka: a.partitions})
        sink = KafkaSink(a.to_kafka, broker, a.speedup)
    session = DEFAULT_SESSION
    if a.window_size is not None or a.window_by is not None:
        from pydantic import ValidationError as VE

        from rlog.config import SessionConfig

        try:
            session = SessionConfig(mode="fixed", by=a.window_by or DEFAULT_SESSION.by,
                                    size=a.window_size or DEFAULT_SESSION.size)
        except VE as e:
            raise ConfigError(f"invalid window: {e.errors()[0]['msg']}") from None
    m = simulate(cfg, a.out, sink=sink, session=session, progress=not a.quiet)
    rows = [(name, SCENARIOS[name].kind, SCENARIOS[name].category or "-", n) for name, n in m["incidents"].items()]
    rate = m["lines"] / m["elapsed_s"] if m["elapsed_s"] else 0
    print(f"rlog simulate: {m['lines']:,} lines ({m['abnormal_lines']:,} abnormal) over {m['simulated_seconds']:,.0f} "
          f"simulated seconds in {m['elapsed_s']:.1f}s ({rate:,.0f} lines/s)")
    print("lines by component: " + ", ".join(f"{k} {v:,}" for k, v in m["lines_by_source"].items()))
    if rows:
        print(format_table(("scenario", "kind", "category", "incidents"), rows))
    if m["sessions"]:
        c = m["sessions"]
        unit = "line" if session.by == "count" else "second"
        print(f"sessions ({session.size:g}-{unit} windows per component): {c.get('abnormal', 0)} abnormal, "
              f"{c.get('lookalike', 0)} benign look-alike, {c.get('normal', 0)} normal")
    if a.out:
        print(f"wrote {a.out}/: logs.jsonl, truth.csv, incidents.jsonl, sessions.csv, manifest.json  "
              f"(next: rlog analyze {a.out})")
    if m["kafka"]:
        print(f"produced {m['kafka']['sent']:,} records to topic {m['kafka']['topic']}")
    return 0
