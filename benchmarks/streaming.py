"""The full streaming path: embedded broker, a real `rlog run` worker process, kafka-python replay.

Produce-to-alert latency is measured per alert from the moment the session's last line
was handed to the producer to the alert record's timestamp (set by the worker's producer;
same host, same clock). Sessions are the ones a fresh pipeline cuts from the replayed
file, which is what the worker cuts too: ids match, so alerts are scored exactly.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from benchmarks.datasets import BenchData, feed_lines, labelled_lines, session_label
from rlog.config import RlogConfig, load_config
from rlog.metrics import BinaryScores, binary_scores, percentiles
from rlog.pipeline.pipeline import Pipeline
from stream import worker_proc as wp
from stream.broker import EmbeddedBroker, free_port
from stream.kafka_io import make_producer, read_topic_to_end
from stream.replay import replay


@dataclass
class Reference:
    """A session as the worker will cut it: its label and the line that completes it."""

    label: bool | None
    last_line: int
    scenario: str | None = None


def reference_sessions(path: Path, truth_path: Path | None, cfg: RlogConfig,
                       labels: dict[str, bool] | None = None) -> dict[str, Reference]:
    """Cut ``path`` the way the worker does (source = the replay's key, the file name)."""
    pipe = Pipeline(cfg)
    lines = labelled_lines(path, truth_path, cfg.parse.max_line_chars)
    out: dict[str, Reference] = {}
    for s in feed_lines(pipe, path.name, lines) + pipe.flush()[0]:
        t = s.truth
        out[s.session_id] = Reference(session_label(s, labels), max(ln.seq for ln in s.lines),
                                      t.scenario if t is not None else None)
    return out


@dataclass
class StreamResult:
    sessions: int = 0
    rate: float | None = None  # replay pace, lines/s (None: as fast as possible)
    judged: int = 0
    alerts: int = 0
    unexpected_alerts: int = 0  # alerts for sessions the reference does not know (should be 0)
    scores: BinaryScores | None = None
    latency_ms: list[float] = field(default_factory=list)
    lines: int = 0
    replay_s: float = 0.0
    total_s: float = 0.0
    worker_peak_rss_mb: float | None = None
    metrics: dict = field(default_factory=dict)
    completed: bool = False
    error: str | None = None

    def to_dict(self) -> dict:
        d = {k: v for k, v in self.__dict__.items() if k not in ("scores", "latency_ms")}
        d["scores"] = self.scores.as_dict() if self.scores else None
        d["latency_ms"] = {**percentiles(self.latency_ms), "n": len(self.latency_ms)}
        d["latency_ms_all"] = [round(x, 1) for x in self.latency_ms]
        d["lines_per_s"] = round(self.lines / self.total_s, 2) if self.total_s else None
        d["replay_lines_per_s"] = round(self.lines / self.replay_s, 1) if self.replay_s else None
        return d


def run_stream(data: BenchData, cfg: RlogConfig, work: Path, *, rate: float | None, timeout_s: float,
               progress: bool = True) -> StreamResult:
    """Replay ``data``'s scored lines through a worker; score its alerts; measure latency."""
    assert data.stream_file is not None
    work.mkdir(parents=True, exist_ok=True)
    port = free_port()
    name = f"rlog-bench-{data.name}".replace("_", "-")
    conf = wp.worker_config(data.stream_config, cfg, port=port, name=name)
    cfg_path = wp.write_config(conf, work / "worker-config.yaml")
    wcfg = load_config(cfg_path, env={})
    refs = reference_sessions(data.stream_file, data.stream_truth, wcfg, data.labels)
    res = StreamResult(sessions=len(refs), rate=rate)
    log_path = work / "worker.log"
    sent: dict[int, float] = {}
    with EmbeddedBroker() as broker:
        proc = wp.start_worker(cfg_path, broker.bootstrap, log_path)
        try:
            if not wp.wait_ready(port, proc, log_path):
                res.error = f"the worker did not start; see {log_path}"
                return res
            producer = make_producer(broker.bootstrap)
            t0 = time.monotonic()
            st = replay(data.stream_file, f"{name}.raw", producer, rate=rate, progress=progress,
                        on_send=lambda n: sent.__setitem__(n, time.time()))
            producer.close()
            res.lines, res.replay_s = st.lines, st.elapsed_s
            deadline, done_since = time.monotonic() + timeout_s, None
            last_report = 0.0
            while time.monotonic() < deadline:
                m = wp.scrape_metrics(port)
                if wp.all_judged(m, len(refs)):
                    done_since = done_since or time.monotonic()
                    if time.monotonic() - done_since > 3:
                        res.completed = True
                        break
                if proc.poll() is not None:
                    res.error = f"the worker exited early; see {log_path}"
                    break
                if progress and time.monotonic() - last_report > 15:
                    published, fast, _ = wp.judged_counts(m)
                    print(f"  stream {data.name}: {published}/{len(refs)} sessions published, {fast} judged",
                          file=sys.stderr, flush=True)
                    last_report = time.monotonic()
                time.sleep(1)
            else:
                res.error = f"not every session was judged within {timeout_s:.0f}s"
            # until every session was judged (the 3 s of stability that confirm it are not counted)
            res.total_s = (done_since if res.completed and done_since else time.monotonic()) - t0
            m = wp.scrape_metrics(port)
            res.worker_peak_rss_mb = wp.peak_rss_mb(proc.pid)
            res.metrics = {k: v for k, v in m.items() if k.startswith(("rlog_", "process_resident"))
                           and not k.endswith(("_bucket", "_created"))}
            res.judged = wp.judged_counts(m)[1]
            alerts = read_topic_to_end(broker.bootstrap, f"{name}.alerts", timeout_s=60)
        finally:
            wp.stop_worker(proc)
    flagged: set[str] = set()
    seen: set[str] = set()
    for rec in alerts:
        a = orjson.loads(rec.value)
        if a["alert_id"] in seen:
            continue
        seen.add(a["alert_id"])
        res.alerts += 1
        ref = refs.get(a["session_id"])
        if ref is None:
            res.unexpected_alerts += 1
            continue
        if a["verdict"] == "abnormal":
            flagged.add(a["session_id"])
        if ref.last_line in sent:
            res.latency_ms.append(max(0.0, rec.timestamp - sent[ref.last_line] * 1000))
    pairs = [(r.label, sid in flagged) for sid, r in refs.items() if r.label is not None]
    res.scores = binary_scores(pairs) if pairs else None
    return res
