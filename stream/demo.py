"""`rlog demo`: the whole plugin on a laptop, no Kafka installed.

Simulates a small estate with injected incidents, starts an embedded Kafka-protocol broker
and a worker (`rlog run`, all roles) against it, replays the simulated logs into the raw
topic, prints alerts as they arrive, and when every session has been judged prints a
summary scored against the simulator's ground truth; then stops the worker and the broker.
"""

from __future__ import annotations

import csv
import sys
import time
from pathlib import Path

from rlog.cascade.cards import one_line
from rlog.config import RlogConfig
from rlog.metrics import binary_scores
from rlog.sim.engine import SimConfig
from rlog.sim.output import analysis_config, simulate
from rlog.terminal import printable
from rlog.wire import RecordError
from rlog.wire.alerts import decode_alert
from stream.broker import EmbeddedBroker, free_port
from stream.kafka_io import make_producer
from stream.replay import replay
from stream.worker_proc import (
    all_judged,
    judged_counts,
    scrape_metrics,
    start_worker,
    stop_worker,
    wait_ready,
    worker_config,
    write_config,
)


def run_demo(cfg: RlogConfig, sim: SimConfig, out: str | Path, *, timeout_s: float = 3600) -> int:
    out = Path(out)
    sim_dir = out / "sim"
    print(f"rlog demo: simulating {sim.lines} lines with injected incidents into {sim_dir}", flush=True)
    manifest = simulate(sim, sim_dir, progress=False)
    with open(sim_dir / "sessions.csv", newline="") as f:
        truth = {r["session_id"]: r for r in csv.DictReader(f)}
    print(f"  {manifest['lines']:,} lines, incidents: "
          + ", ".join(f"{k} x{v}" for k, v in manifest["incidents"].items()), flush=True)
    port = free_port()
    cfg_path = write_config(worker_config(analysis_config(), cfg, port=port, name="rlog-demo"),
                            out / "demo-config.yaml")
    worker_log = out / "worker.log"
    alerts_path = out / "alerts.jsonl"
    with EmbeddedBroker() as broker:
        print(f"rlog demo: embedded Kafka-protocol broker (tansu) on {broker.bootstrap}", flush=True)
        proc = start_worker(cfg_path, broker.bootstrap, worker_log)
        try:
            if not wait_ready(port, proc, worker_log, timeout_s=120):
                print("rlog demo: the worker did not start (log above)", file=sys.stderr)
                return 1
            print(f"rlog demo: worker up (health http://127.0.0.1:{port}/health, metrics /metrics, log {worker_log})",
                  flush=True)
            producer = make_producer(broker.bootstrap)
            st = replay(sim_dir / "logs.jsonl", "rlog-demo.raw", producer, progress=False)
            producer.close()
            print(f"rlog demo: replayed {st.lines:,} lines; alerts as they arrive:", flush=True)
            return _follow(broker.bootstrap, port, truth, alerts_path, proc, timeout_s, t0=time.monotonic())
        finally:
            stop_worker(proc)
            print("rlog demo: worker and broker stopped", flush=True)


PROGRESS_EVERY_S = 10.0


def progress_line(m: dict[str, float], expected: int, alerts: int, elapsed_s: float) -> str:
    """Where the worker is, from its own metrics: what a user watching the demo wants to know."""
    published, fast, full = judged_counts(m)
    hits = sum(v for k, v in m.items() if k.startswith("rlog_memory_hits_total"))
    esc = int(m.get("rlog_escalations_total", 0))
    return (f"… {elapsed_s:.0f}s: {int(m.get('rlog_lines_total', 0)):,} lines read, {int(published)}/{expected} "
            f"sessions closed, {int(fast)} judged by R-Log-fast ({int(hits)} from memory), "
            f"{int(full)}/{esc} escalations explained by R-Log, {alerts} alerts")


def _follow(bootstrap: str, port: int, truth: dict, alerts_path: Path, proc, timeout_s: float, t0: float) -> int:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    parts = None
    while parts is None and time.monotonic() - t0 < 60:
        parts = consumer.partitions_for_topic("rlog-demo.alerts")
        time.sleep(0.5)
    consumer.assign([TopicPartition("rlog-demo.alerts", p) for p in sorted(parts or [0])])
    consumer.seek_to_beginning()
    seen: dict[str, dict] = {}
    expected = len(truth)
    done_since = None
    last_said = time.monotonic()
    with open(alerts_path, "wb") as out:
        while time.monotonic() - t0 < timeout_s:
            m = scrape_metrics(port)
            if time.monotonic() - last_said >= PROGRESS_EVERY_S:  # never minutes of silence while models work
                print("  " + progress_line(m, expected, len(seen), time.monotonic() - t0), flush=True)
                last_said = time.monotonic()
            for recs in consumer.poll(timeout_ms=1000).values():
                for r in recs:
                    try:
                        a = decode_alert(r.value)
                    except RecordError as e:  # the demo's own topic, but a reader never trusts a record
                        print(printable(f"  (record at offset {r.offset} is not an alert: {e.detail[:120]})"))
                        continue
                    if a.get("alert_id") in seen:
                        continue
                    seen[a["alert_id"]] = a
                    out.write(r.value + b"\n")
                    t = truth.get(a["session_id"], {})
                    real = f"truth: {t.get('scenario') or 'normal'}" if t else "truth: ?"
                    print(f"  ALERT {printable(a['session_id']):<26} {one_line(a, 60):<86} [{real}]", flush=True)
                    last_said = time.monotonic()
            if all_judged(m, expected):
                done_since = done_since or time.monotonic()
                if time.monotonic() - done_since > 3:
                    break
            if proc.poll() is not None:
                print("rlog demo: the worker exited early", file=sys.stderr)
                return 1
    consumer.close()
    flagged = {a["session_id"] for a in seen.values() if a["verdict"] == "abnormal"}
    pairs = [(r["label"] == "1", sid in flagged) for sid, r in truth.items()]
    s = binary_scores(pairs)
    m = scrape_metrics(port)
    print(f"rlog demo: {len(truth)} sessions judged in {time.monotonic() - t0:.0f}s; {len(seen)} alerts "
          f"({len(flagged)} abnormal); precision {s.precision:.3f} recall {s.recall:.3f} F1 {s.f1:.3f} "
          f"(tp {s.tp}, fp {s.fp}, fn {s.fn}, tn {s.tn}); escalations {int(m.get('rlog_escalations_total', 0))}; "
          f"alerts in {alerts_path}", flush=True)
    return 0
