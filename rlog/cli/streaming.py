"""`rlog run`, `rlog demo`, `rlog replay`: the streaming plugin and getting logs into Kafka."""

from __future__ import annotations

import argparse
from pathlib import Path

from rlog.cli.common import add_config_flags, add_pipeline_flags, flag_overrides
from rlog.config import ConfigError, load_config


def add_parsers(sub) -> None:
    rn = sub.add_parser("run", help="run the streaming worker (Kafka in, alerts out)",
                        description="Start the Faust worker: parse raw lines from the input topic, sessionize, "
                                    "judge with R-Log-fast, escalate to R-Log, publish alerts. Without --broker or "
                                    "$RLOG_KAFKA_BROKER an embedded Kafka-protocol broker is started on loopback.")
    add_config_flags(rn)
    add_pipeline_flags(rn)
    rn.add_argument("--broker", metavar="HOST:PORT", help="Kafka bootstrap servers (default $RLOG_KAFKA_BROKER; "
                    "none: embedded broker)")
    rn.add_argument("--role", action="append", choices=["parse", "detect", "explain"],
                    help="run only these stages (repeatable; default all): CPU parsers and GPU model workers "
                         "scale as separate consumer groups")
    rn.add_argument("--input-topic", help="raw lines topic (default rlog.raw)")
    rn.add_argument("--prefix", help="prefix of the internal topics (default rlog)")
    rn.add_argument("--app-id", help="consumer group / app id (default rlog)")
    rn.add_argument("--web-port", type=int, help="health + /metrics port (default 6066)")
    rn.set_defaults(func=cmd_run)

    tp = sub.add_parser("topics", help="create the input and internal topics (partitions, replication, retention)",
                        description="Create the topics a worker needs on the cluster, before the first worker starts "
                                    "(the Helm chart runs this as a pre-install Job): the input topic and "
                                    "<prefix>.sessions, .escalations, .alerts, .dead-letters with stream.partitions "
                                    "partitions, stream.replication copies and stream.retention_ms; "
                                    "<prefix>.parse-state with one partition, compacted. Existing topics are kept; "
                                    "a setting they have otherwise is reported with the command that fixes it.")
    add_config_flags(tp)
    tp.add_argument("--broker", metavar="HOST:PORT", help="Kafka bootstrap servers (default $RLOG_KAFKA_BROKER, "
                    "else stream.broker)")
    tp.add_argument("--input-topic", help="raw lines topic (default rlog.raw)")
    tp.add_argument("--prefix", help="prefix of the internal topics (default rlog)")
    tp.add_argument("--partitions", type=int, help="partitions (default stream.partitions)")
    tp.add_argument("--replication", type=int, help="replication factor (default stream.replication)")
    tp.add_argument("--retention-ms", type=int, help="retention.ms of all but the parse-state topic")
    tp.add_argument("--strict", action="store_true", help="exit 1 when an existing topic's settings differ")
    tp.set_defaults(func=cmd_topics)

    dm = sub.add_parser("demo", help="the whole plugin on this machine: embedded broker, worker, simulated incidents",
                        description="Simulate a small estate with injected incidents, start an embedded Kafka-protocol "
                                    "broker and a worker, replay the logs through it, print alerts as they arrive and "
                                    "a summary scored against the ground truth, then stop everything.")
    add_config_flags(dm)
    add_pipeline_flags(dm)
    dm.add_argument("--out", "-o", default="out/demo", help="folder for the simulation, alerts and worker log")
    dm.add_argument("--lines", type=int, default=1200, help="simulated lines (default 1200)")
    dm.add_argument("--seed", type=int, default=7)
    dm.add_argument("--rate", type=float, default=3.0, help="simulated lines per second (default 3)")
    dm.add_argument("--fault-gap", type=float, default=20.0, help="mean seconds between faults (default 20)")
    dm.add_argument("--benign-gap", type=float, default=40.0, help="mean seconds between look-alikes (default 40)")
    dm.add_argument("--warmup", type=float, default=10.0, help="normal traffic before the first incident")
    dm.set_defaults(func=cmd_demo)

    rp = sub.add_parser("replay", help="replay a log file into a Kafka topic",
                        description="Produce every line of FILE (or a `rlog simulate` folder) to TOPIC, paced by "
                                    "the lines' own timestamps (--speedup), at a fixed rate (--rate) or at full speed.")
    rp.add_argument("file", help="log file, or a folder written by `rlog simulate`")
    rp.add_argument("--topic", "-t", default="rlog.raw", help="target topic (default rlog.raw)")
    rp.add_argument("--broker", metavar="HOST:PORT", help="Kafka bootstrap servers (default $RLOG_KAFKA_BROKER)")
    rp.add_argument("--rate", type=float, help="lines per second")
    rp.add_argument("--speedup", type=float, help="by original timestamps: 1 = real time, 60 = a minute per second")
    rp.add_argument("--format", "-f", help="format preset or pattern to read timestamps of plain lines")
    rp.add_argument("--key", help="record key for every line (default: envelope source, else the file name)")
    rp.add_argument("--partitions", type=int, default=4, help="partitions if the topic has to be created")
    rp.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    rp.set_defaults(func=cmd_replay)



def _stream_overrides(a: argparse.Namespace, cfg_over: dict) -> dict:
    st = cfg_over.setdefault("stream", {})
    for flag, key in (("input_topic", "input_topic"), ("prefix", "prefix"), ("web_port", "web_port"),
                      ("app_id", "app_id")):
        if getattr(a, flag, None) is not None:
            st[key] = getattr(a, flag)
    return cfg_over


def cmd_run(a: argparse.Namespace) -> int:
    from stream.runner import run_worker

    cfg = load_config(a.config, overrides=_stream_overrides(a, flag_overrides(a)))
    roles = a.role or ["parse", "detect", "explain"]
    return run_worker(cfg, roles, a.broker, loglevel=["warning", "info", "debug"][min(a.verbose, 2)])


def cmd_topics(a: argparse.Namespace) -> int:
    from stream.kafka_io import check_reachable
    from stream.runner import create_topics, resolve_bootstrap

    stream: dict = {}
    over = {"stream": stream}
    for flag, key in (("input_topic", "input_topic"), ("prefix", "prefix"), ("partitions", "partitions"),
                      ("replication", "replication"), ("retention_ms", "retention_ms")):
        if getattr(a, flag, None) is not None:
            stream[key] = getattr(a, flag)
    cfg = load_config(a.config, overrides=over)
    bootstrap = resolve_bootstrap(cfg, a.broker)
    if not bootstrap:
        raise ConfigError("rlog topics needs --broker HOST:PORT, $RLOG_KAFKA_BROKER or stream.broker")
    check_reachable(bootstrap, 10.0)
    report = create_topics(cfg, bootstrap)
    for name in report["created"]:
        print(f"created {name}")
    for name in report["existing"]:
        print(f"exists  {name}")
    for msg in report["mismatches"]:
        print(f"differs {msg}")
    return 1 if a.strict and report["mismatches"] else 0


def cmd_replay(a: argparse.Namespace) -> int:
    import os

    from rlog.pipeline.formats import get_format
    from stream.kafka_io import BROKER_ENV, ensure_topics, make_producer
    from stream.replay import MAX_LINE_BYTES, replay

    path = Path(a.file)
    if path.is_dir():
        from rlog.sim.output import read_manifest

        m = read_manifest(path)
        if m is None:
            raise ConfigError(f"{path} is a folder without manifest.json: give a log file")
        path = path / m["files"]["logs"]
    if not path.is_file():
        raise ConfigError(f"log file not found: {path}")
    if a.rate is not None and a.speedup is not None:
        raise ConfigError("give --rate or --speedup, not both")
    broker = a.broker or os.environ.get(BROKER_ENV)
    if not broker:
        raise ConfigError(f"replay needs --broker HOST:PORT (or {BROKER_ENV})")
    fmt = get_format(a.format) if a.format else None
    ensure_topics(broker, {a.topic: a.partitions})
    producer = make_producer(broker)
    try:
        st = replay(path, a.topic, producer, rate=a.rate, speedup=a.speedup, fmt=fmt, key=a.key, progress=not a.quiet)
    finally:
        producer.close()
    span = f", {st.last_ts - st.first_ts:,.0f} s of log time" if st.first_ts is not None and st.last_ts else ""
    cut = f"; {st.truncated:,} over {MAX_LINE_BYTES:,} bytes sent cut to their head" if st.truncated else ""
    cut += f"; {st.skipped:,} refused by the producer as too large, not sent" if st.skipped else ""
    print(f"rlog replay: {st.lines:,} lines ({st.bytes:,} bytes{span}) to {a.topic} in {st.elapsed_s:.1f}s "
          f"({st.lines / st.elapsed_s if st.elapsed_s else 0:,.0f} lines/s){cut}")
    return 0


def cmd_demo(a: argparse.Namespace) -> int:
    from rlog.sim.engine import SimConfig
    from stream.demo import run_demo

    cfg = load_config(a.config, overrides=flag_overrides(a))
    sim = SimConfig(seed=a.seed, lines=a.lines, rate=a.rate, fault_gap_s=a.fault_gap, benign_gap_s=a.benign_gap,
                    warmup_s=a.warmup)
    Path(a.out).mkdir(parents=True, exist_ok=True)
    return run_demo(cfg, sim, a.out)
