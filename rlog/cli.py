"""The ``rlog`` command line. Each subcommand is a thin shell over library functions."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from rlog.alerts import headline
from rlog.config import ConfigError, RlogConfig, load_config

log = logging.getLogger("rlog")


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain aligned text table (no terminal features needed: logs and CI read it too)."""
    cells = [[str(h) for h in headers]] + [[("" if c is None else str(c)) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    line = "  ".join("-" * w for w in widths)
    fmt = [("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True))).rstrip() for r in cells]
    return "\n".join([fmt[0], line, *fmt[1:]])


def _overrides(a: argparse.Namespace) -> dict:
    """CLI flags that map onto config fields (only the ones given)."""
    o: dict[str, dict] = {"parse": {}, "session": {}, "cascade": {"fast": {}, "full": {}}}
    if a.format:
        o["parse"]["format"] = a.format
    if getattr(a, "no_multiline", False):
        o["parse"]["multiline"] = False
    s = o["session"]
    if a.session:
        s["mode"] = a.session
    if a.id_pattern:
        s["id_patterns"] = a.id_pattern
        s.setdefault("mode", "id")
    for flag, key in (("window_by", "by"), ("window_size", "size"), ("window_step", "step"),
                      ("timeout", "timeout_s"), ("max_open", "max_open")):
        if getattr(a, flag, None) is not None:
            s[key] = getattr(a, flag)
    c = o["cascade"]
    for stage in ("fast", "full"):
        for attr, key in (("model", "model"), ("adapter", "adapter"), ("batch_size", "batch_size"),
                          ("max_new_tokens", "max_new_tokens")):
            v = getattr(a, f"{stage}_{attr}", None)
            if v is not None:
                c[stage][key] = v
    if getattr(a, "no_escalate", False):
        c["escalate"] = False
    return o


def _config(a: argparse.Namespace, base: dict | None = None, base_origin: str = "") -> RlogConfig:
    return load_config(a.config, overrides=_overrides(a) if hasattr(a, "format") else None, base=base,
                       base_origin=base_origin)


def _add_config_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="YAML", help="config file (sections parse, session, cascade); "
                   "RLOG_SECTION__FIELD variables override it, flags override both")


def _add_pipeline_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("parsing and sessions")
    g.add_argument("--format", "-f", help="log format preset (see `rlog formats`) or a Loghub-style pattern "
                   "such as '<Date> <Time> <Level>: <Content>'")
    g.add_argument("--no-multiline", action="store_true", help="do not join continuation lines (stack traces)")
    g.add_argument("--session", choices=["id", "fixed", "sliding"], help="group lines by id, or in fixed/sliding windows")
    g.add_argument("--id-pattern", action="append", metavar="REGEX",
                   help="session id regex (group 1 = id) or preset hdfs|openstack|hadoop; repeatable")
    g.add_argument("--window-by", choices=["count", "time"], help="window unit: lines or seconds")
    g.add_argument("--window-size", type=float, help="window length in lines or seconds")
    g.add_argument("--window-step", type=float, help="sliding step (default half the size)")
    g.add_argument("--timeout", type=float, help="close id sessions after this many idle seconds (event time)")
    g.add_argument("--max-open", type=int, help="bound on open sessions (oldest closed early)")
    m = p.add_argument_group("models")
    for stage, what in (("fast", "R-Log-fast (answer-first verdicts)"), ("full", "R-Log (escalations: root cause, fix)")):
        m.add_argument(f"--{stage}-model", help=f"{what}: local HF folder or 'smollm2-135m-instruct'")
        m.add_argument(f"--{stage}-adapter", help=f"LoRA adapter folder for the {stage} model")
        m.add_argument(f"--{stage}-batch-size", type=int, help=f"sessions per {stage} generate call")
        m.add_argument(f"--{stage}-max-new-tokens", type=int, help=f"decode budget of the {stage} model")
    m.add_argument("--no-escalate", action="store_true", help="fast model only (no root cause / action)")


def cmd_analyze(a: argparse.Namespace) -> int:
    from rlog.backends import load_backend
    from stream.cascade import Cascade
    from stream.offline import analyze_file, read_labels

    path = Path(a.file)
    truth_path = Path(a.truth) if a.truth else None
    manifest = None
    if path.is_dir():
        from rlog.sim.output import MANIFEST, read_manifest

        manifest = read_manifest(path)
        if manifest is None:
            raise ConfigError(f"{path} is a folder without {MANIFEST}: give a log file, or a folder written by "
                              "`rlog simulate`")
        truth_path = truth_path or path / manifest["files"]["truth"]
        path = path / manifest["files"]["logs"]
    cfg = _config(a, manifest["config"] if manifest else None, f"{path.parent / 'manifest.json'}")
    if not path.is_file():
        raise ConfigError(f"log file not found: {path}")
    if truth_path is not None and not truth_path.is_file():
        raise ConfigError(f"truth file not found: {truth_path}")
    labels = read_labels(a.labels) if a.labels else None
    cascade = None
    if not a.parse_only:
        log.info("loading models (fast: %s, full: %s)", cfg.cascade.fast.model, cfg.cascade.full.model)
        fast = load_backend(cfg.cascade.fast)
        full = None
        if cfg.cascade.escalate:
            same = cfg.cascade.full.model_dump(include={"model", "adapter", "backend", "device"}) == \
                cfg.cascade.fast.model_dump(include={"model", "adapter", "backend", "device"})
            full = fast if same else load_backend(cfg.cascade.full)
        cascade = Cascade(fast, full, cfg.cascade)
    with contextlib.ExitStack() as files:
        from stream.truth import TruthReader

        truth = files.enter_context(TruthReader(truth_path)) if truth_path else None
        alerts_out = files.enter_context(open(a.alerts, "wb")) if a.alerts else None
        dead_out = files.enter_context(open(a.dead_letters, "wb")) if a.dead_letters else None
        report = analyze_file(path, cfg, cascade, labels=labels, truth=truth, alerts_out=alerts_out,
                              dead_out=dead_out, progress=not a.quiet)
    print(render_report(report, cfg))
    if a.report:
        import orjson

        Path(a.report).write_bytes(orjson.dumps(report.to_dict(), option=orjson.OPT_INDENT_2))
    return 0


def render_report(r, cfg: RlogConfig) -> str:
    """The human summary of an analysis: volumes, sessions, models, alerts, scores."""
    rate = f"{r.lines / r.elapsed_s:,.0f} lines/s" if r.elapsed_s else ""
    fmt = f"format {cfg.parse.format}"
    if cfg.parse.formats:
        fmt = "formats " + ", ".join(f"{k}: {v}" for k, v in cfg.parse.formats.items())
    rows = [
        ("lines", f"{r.lines:,}", rate),
        ("records", f"{r.records:,}", fmt),
        ("dead letters", sum(r.dead_letters.values()), ", ".join(f"{k}: {v}" for k, v in r.dead_letters.items())),
        ("repaired lines", sum(r.flags.values()), ", ".join(f"{k}: {v}" for k, v in r.flags.items())),
        ("templates", r.templates, ""),
        ("sessions", r.sessions, ", ".join(f"{k}: {v}" for k, v in r.sessions_by_reason.items())),
        ("evicted / unsessioned", f"{r.evicted} / {r.unsessioned}", ""),
        ("verdicts", sum(r.verdicts.values()), ", ".join(f"{k}: {v}" for k, v in sorted(r.verdicts.items()))),
    ]
    c = r.cascade
    if c:
        rows += [
            ("model calls fast / full", f"{c['fast_calls']} / {c['full_calls']}",
             f"cache hit ratio {c['cache_hit_ratio']:.1%}"),
            ("malformed answers", f"{c['malformed_fast']} fast / {c['malformed_full']} full",
             f"{c['undecided']} sessions undecided"),
            ("batch latency p50 (ms)", f"{c['fast_batch_ms']['p50']} fast / {c['full_batch_ms']['p50']} full", ""),
            ("alerts", r.n_alerts, f"{c['escalations']} escalations"),
        ]
    out = [f"rlog analyze {r.path}  ({r.elapsed_s:.1f}s)", format_table(("what", "count", "detail"), rows)]
    if r.alerts:
        arows = []
        for al in r.alerts:
            conf = f"{al.confidence:.2f}" if al.confidence is not None else "-"
            summary = al.root_cause or al.interpretation or headline(al.templates)
            arows.append((al.session_id[-28:], al.n_lines, conf, al.category or "-", summary[:70]))
        out += ["", f"first {len(r.alerts)} of {r.n_alerts} alerts",
                format_table(("session", "lines", "conf", "category", "root cause / key template"), arows)]
    if r.scores is not None:
        s = r.scores
        out += ["", f"scores over {r.labelled_sessions} labelled sessions (abnormal = positive)",
                format_table(("precision", "recall", "f1", "tp", "fp", "fn", "tn"),
                             [(f"{s.precision:.3f}", f"{s.recall:.3f}", f"{s.f1:.3f}", s.tp, s.fp, s.fn, s.tn)])]
    if r.by_scenario:
        srows = []
        for name, row in r.by_scenario.items():
            kind = "fault" if row["abnormal"] else ("normal" if name == "normal" else "look-alike")
            what = "detected" if row["abnormal"] else "false alarms"
            srows.append((name, kind, row["sessions"], row["flagged"], f"{row['flagged'] / row['sessions']:.0%} {what}"))
        out += ["", "sessions by injected scenario (from the truth file)",
                format_table(("scenario", "kind", "sessions", "flagged", "rate"), srows)]
    if r.root_cause is not None and r.root_cause["caught"]:
        rc = r.root_cause
        out += ["", f"root-cause accuracy: {rc['accuracy']:.3f} ({rc['correct']} of {rc['caught']} detected abnormal "
                    f"sessions have the right category; {rc['answered']} had a category at all)"]
    return "\n".join(out)


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

        from rlog.sim.output import KafkaSink
        from stream.kafka_io import BROKER_ENV, ensure_topics

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


def _stream_overrides(a: argparse.Namespace, cfg_over: dict) -> dict:
    st = cfg_over.setdefault("stream", {})
    for flag, key in (("input_topic", "input_topic"), ("prefix", "prefix"), ("web_port", "web_port"),
                      ("app_id", "app_id")):
        if getattr(a, flag, None) is not None:
            st[key] = getattr(a, flag)
    return cfg_over


def cmd_run(a: argparse.Namespace) -> int:
    from stream.runner import run_worker

    cfg = load_config(a.config, overrides=_stream_overrides(a, _overrides(a)))
    roles = a.role or ["parse", "detect", "explain"]
    return run_worker(cfg, roles, a.broker, loglevel=["warning", "info", "debug"][min(a.verbose, 2)])


def cmd_replay(a: argparse.Namespace) -> int:
    import os

    from stream.formats import get_format
    from stream.kafka_io import BROKER_ENV, ensure_topics, make_producer
    from stream.replay import replay

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
    print(f"rlog replay: {st.lines:,} lines ({st.bytes:,} bytes{span}) to {a.topic} in {st.elapsed_s:.1f}s "
          f"({st.lines / st.elapsed_s if st.elapsed_s else 0:,.0f} lines/s)")
    return 0


def cmd_demo(a: argparse.Namespace) -> int:
    from rlog.sim.engine import SimConfig
    from stream.demo import run_demo

    cfg = load_config(a.config, overrides=_overrides(a))
    sim = SimConfig(seed=a.seed, lines=a.lines, rate=a.rate, fault_gap_s=a.fault_gap, benign_gap_s=a.benign_gap,
                    warmup_s=a.warmup)
    Path(a.out).mkdir(parents=True, exist_ok=True)
    return run_demo(cfg, sim, a.out)


def cmd_formats(a: argparse.Namespace) -> int:
    from stream.formats import PRESETS

    rows = [(f.name, f.pattern, ",".join(f.time_fields) or "-", f.label_field or "-") for f in PRESETS.values()]
    print(format_table(("name", "pattern", "time", "label"), rows))
    return 0


def cmd_config(a: argparse.Namespace) -> int:
    cfg = _config(a)
    print(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False), end="")
    return 0


def cmd_model_prepare(a: argparse.Namespace) -> int:
    from rlog.models import resolve_model

    print(resolve_model(a.name))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rlog",
        description="Reasoning-based log anomaly detection: Drain3 templates, sessions, an answer-first "
                    "R-Log-fast model, escalation to R-Log for root cause and fix.",
    )
    p.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    an = sub.add_parser("analyze", help="run the whole cascade over a log file offline",
                        description="Parse FILE, group lines into sessions, judge each session with R-Log-fast, "
                                    "escalate flagged ones to R-Log, print a summary and write alerts as JSONL. "
                                    "With labels (BGL's first field, or --labels CSV) prints precision/recall/F1.")
    an.add_argument("file", help="log file (any encoding; invalid UTF-8 is replaced and counted), or a folder "
                    "written by `rlog simulate` (its formats, sessions and ground truth are used)")
    _add_config_flags(an)
    _add_pipeline_flags(an)
    an.add_argument("--labels", metavar="CSV", help="session labels: id,label rows (Anomaly/Normal, 1/0)")
    an.add_argument("--truth", metavar="CSV", help="per-line ground truth (a simulator's truth.csv): adds per-scenario "
                    "detection and root-cause accuracy")
    an.add_argument("--alerts", metavar="JSONL", help="write one alert per line here")
    an.add_argument("--dead-letters", metavar="JSONL", help="write rejected lines with the reason here")
    an.add_argument("--report", metavar="JSON", help="write every figure of the summary here")
    an.add_argument("--parse-only", action="store_true", help="stop before the models (templates and sessions)")
    an.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    an.set_defaults(func=cmd_analyze)

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

    rn = sub.add_parser("run", help="run the streaming worker (Kafka in, alerts out)",
                        description="Start the Faust worker: parse raw lines from the input topic, sessionize, "
                                    "judge with R-Log-fast, escalate to R-Log, publish alerts. Without --broker or "
                                    "$RLOG_KAFKA_BROKER an embedded Kafka-protocol broker is started on loopback.")
    _add_config_flags(rn)
    _add_pipeline_flags(rn)
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

    dm = sub.add_parser("demo", help="the whole plugin on this machine: embedded broker, worker, simulated incidents",
                        description="Simulate a small estate with injected incidents, start an embedded Kafka-protocol "
                                    "broker and a worker, replay the logs through it, print alerts as they arrive and "
                                    "a summary scored against the ground truth, then stop everything.")
    _add_config_flags(dm)
    _add_pipeline_flags(dm)
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

    fm = sub.add_parser("formats", help="list the log format presets",
                        description="List built-in header formats; any Loghub-style pattern works too.")
    fm.set_defaults(func=cmd_formats)

    cf = sub.add_parser("config", help="print the effective configuration (file + RLOG_* env) as YAML",
                        description="Validate and print the configuration; errors name the field and its source.")
    _add_config_flags(cf)
    cf.set_defaults(func=cmd_config)

    md = sub.add_parser("model", help="prepare local models", description="Model utilities (nothing is downloaded).")
    msub = md.add_subparsers(dest="model_command", metavar="ACTION", required=True)
    mp = msub.add_parser("prepare", help="convert the built-in SmolLM2 GGUF to an HF folder in the cache; print its path")
    mp.add_argument("name", nargs="?", default="smollm2-135m-instruct")
    mp.set_defaults(func=cmd_model_prepare)

    from rlog.bench.cli import add_bench_parser
    from train.cli import add_train_parser

    add_bench_parser(sub)
    add_train_parser(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    a = parser.parse_args(argv)
    logging.basicConfig(level=[logging.WARNING, logging.INFO, logging.DEBUG][min(a.verbose, 2)],
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if a.command is None:
        parser.print_help()
        return 2
    from rlog.backends.base import BackendError
    from rlog.models import ModelNotFound
    from stream.broker import BrokerError
    from stream.formats import FormatError
    from stream.kafka_io import BrokerUnavailable

    try:
        return a.func(a)
    except (ConfigError, FormatError, ModelNotFound, BackendError, BrokerError, BrokerUnavailable, ValueError) as e:
        print(f"rlog: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rlog: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
