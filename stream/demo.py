"""`rlog demo`: the whole plugin on a laptop, no Kafka installed.

Simulates a small estate with injected incidents, starts an embedded Kafka-protocol broker
and a worker (`rlog run`, all roles) against it, replays the simulated logs into the raw
topic, prints alerts as they arrive, and when every session has been judged prints a
summary scored against the simulator's ground truth; then stops the worker and the broker.
"""

from __future__ import annotations

import contextlib
import csv
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import orjson
import yaml

from rlog.config import RlogConfig
from rlog.metrics import binary_scores
from rlog.sim.engine import SimConfig
from rlog.sim.output import analysis_config, simulate
from stream.broker import EmbeddedBroker, free_port
from stream.kafka_io import make_producer
from stream.replay import replay


def _metrics(port: int) -> dict[str, float]:
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    except OSError:
        return {}
    out: dict[str, float] = {}
    for ln in text.splitlines():
        if ln and not ln.startswith("#"):
            name, _, value = ln.rpartition(" ")
            with contextlib.suppress(ValueError):
                out[name] = float(value)
    return out


def _judged(m: dict[str, float]) -> tuple[int, int, int]:
    """(sessions published, sessions through the fast stage, escalations explained)."""
    fast = sum(v for k, v in m.items() if k.startswith('rlog_verdicts_total{stage="fast"'))
    full = sum(v for k, v in m.items() if k.startswith('rlog_verdicts_total{stage="full"'))
    return int(m.get("rlog_sessions_total", 0)), int(fast), int(full)


def run_demo(cfg: RlogConfig, sim: SimConfig, out: str | Path, *, timeout_s: float = 3600) -> int:
    out = Path(out)
    sim_dir = out / "sim"
    print(f"rlog demo: simulating {sim.lines} lines with injected incidents into {sim_dir}", flush=True)
    manifest = simulate(sim, sim_dir, progress=False)
    with open(sim_dir / "sessions.csv", newline="") as f:
        truth = {r["session_id"]: r for r in csv.DictReader(f)}
    print(f"  {manifest['lines']:,} lines, incidents: "
          + ", ".join(f"{k} x{v}" for k, v in manifest["incidents"].items()), flush=True)
    conf = analysis_config()
    conf["session"]["timeout_s"] = 5.0  # close the last partial windows soon after the replay ends
    conf["cascade"] = cfg.cascade.model_dump(mode="json")
    port = free_port()
    conf["stream"] = {**cfg.stream.model_dump(mode="json"), "broker": None, "web_port": port,
                      "app_id": "rlog-demo", "prefix": "rlog-demo", "input_topic": "rlog-demo.raw"}
    cfg_path = out / "demo-config.yaml"
    cfg_path.write_text(yaml.safe_dump(conf, sort_keys=False))
    worker_log = out / "worker.log"
    alerts_path = out / "alerts.jsonl"
    with EmbeddedBroker() as broker:
        print(f"rlog demo: embedded Kafka-protocol broker (tansu) on {broker.bootstrap}", flush=True)
        with open(worker_log, "wb") as logf:
            proc = subprocess.Popen([sys.executable, "-m", "rlog.cli", "-v", "run", "--broker", broker.bootstrap,
                                     "--config", str(cfg_path)], stdout=logf, stderr=subprocess.STDOUT,
                                    start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            deadline = time.monotonic() + 120
            while not _metrics(port):
                if proc.poll() is not None or time.monotonic() > deadline:
                    print(worker_log.read_text(errors="replace")[-3000:], file=sys.stderr)
                    print("rlog demo: the worker did not start (log above)", file=sys.stderr)
                    return 1
                time.sleep(1)
            print(f"rlog demo: worker up (health http://127.0.0.1:{port}/health, metrics /metrics, log {worker_log})",
                  flush=True)
            producer = make_producer(broker.bootstrap)
            st = replay(sim_dir / "logs.jsonl", "rlog-demo.raw", producer, progress=False)
            producer.close()
            print(f"rlog demo: replayed {st.lines:,} lines; alerts as they arrive:", flush=True)
            return _follow(broker.bootstrap, port, truth, alerts_path, proc, timeout_s, t0=time.monotonic())
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
            print("rlog demo: worker and broker stopped", flush=True)


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
    with open(alerts_path, "wb") as out:
        while time.monotonic() - t0 < timeout_s:
            for recs in consumer.poll(timeout_ms=1000).values():
                for r in recs:
                    a = orjson.loads(r.value)
                    if a["alert_id"] in seen:
                        continue
                    seen[a["alert_id"]] = a
                    out.write(r.value + b"\n")
                    t = truth.get(a["session_id"], {})
                    real = f"truth: {t.get('scenario') or 'normal'}" if t else "truth: ?"
                    what = a.get("root_cause") or a.get("interpretation") or (a["templates"][0]["template"]
                                                                               if a["templates"] else "")
                    print(f"  ALERT {a['session_id']:<26} {a['verdict']:<8} {a.get('category') or '-':<13} "
                          f"{what[:60]:<60} [{real}]", flush=True)
            m = _metrics(port)
            published, fast, full = _judged(m)
            esc = int(m.get("rlog_escalations_total", 0))
            if published >= expected and fast >= published and full >= esc:
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
    m = _metrics(port)
    print(f"rlog demo: {len(truth)} sessions judged in {time.monotonic() - t0:.0f}s; {len(seen)} alerts "
          f"({len(flagged)} abnormal); precision {s.precision:.3f} recall {s.recall:.3f} F1 {s.f1:.3f} "
          f"(tp {s.tp}, fp {s.fp}, fn {s.fn}, tn {s.tn}); escalations {int(m.get('rlog_escalations_total', 0))}; "
          f"alerts in {alerts_path}", flush=True)
    return 0
