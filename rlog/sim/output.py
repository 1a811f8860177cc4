"""Where simulated lines go: a folder of logs plus ground truth, and/or a sink (a Kafka topic).

The folder layout (``rlog analyze DIR`` reads it directly):

- ``logs.jsonl``: one JSON envelope per line, ``{"ts", "source", "host", "message"}``,
  the shape log shippers produce, in event-time order;
- ``truth.csv``: per line, its label, incident, scenario and root-cause category;
- ``incidents.jsonl``: per injected incident, its scenario, category, recommended action,
  hosts, time span and line range;
- ``sessions.csv``: per session of the default sessionization (``manifest.json``), its
  label, scenario, category and action;
- ``manifest.json``: the simulation config, the rlog config to analyze it with, counts.
"""

from __future__ import annotations

import csv
import logging
import sys
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any, Protocol

import orjson

from rlog.config import ParseConfig, SessionConfig
from rlog.pipeline.sessions import Session, SessionLine
from rlog.sim.engine import Incident, SimConfig, SimLine, Simulator
from rlog.sim.world import FORMATS
from rlog.truth import TRUTH_COLUMNS, truth_row

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
SESSION_COLUMNS = ("session_id", "source", "first_line", "last_line", "lines", "label", "scenario", "category",
                   "incident", "action")
# How `rlog analyze DIR` reads a simulation unless told otherwise: each component in its own
# format, 40-line windows per component.
DEFAULT_SESSION = SessionConfig(mode="fixed", by="count", size=40)


def envelope(line: SimLine) -> bytes:
    return orjson.dumps({"ts": line.t_ms / 1000, "source": line.source, "host": line.host, "message": line.text})


def analysis_config(session: SessionConfig = DEFAULT_SESSION) -> dict[str, Any]:
    """The rlog config (parse + session sections) that reads a simulation as intended."""
    parse = ParseConfig(format="raw", formats=dict(FORMATS), envelope="json")
    return {"parse": parse.model_dump(mode="json", include={"format", "formats", "envelope"}),
            "session": session.model_dump(mode="json")}


class SessionTruthWriter:
    """Runs the analyzer's own sessionizer over the truth so window ids and bounds match it."""

    def __init__(self, f: IO[str], session: SessionConfig, incidents: Mapping[str, Incident]) -> None:
        from rlog.pipeline.sessions import make_sessionizer

        self.sessionizer = make_sessionizer(session)
        self.writer = csv.writer(f)
        self.writer.writerow(SESSION_COLUMNS)
        self.incidents = incidents
        self.counts: Counter = Counter()

    def add(self, line: SimLine) -> None:
        sl = SessionLine(line.n, line.event_ts, "", "", "", line.truth.label, host=line.host, truth=line.truth)
        self._write(self.sessionizer.add(line.source, sl))

    def close(self) -> None:
        self._write(self.sessionizer.flush())

    def _write(self, sessions: list[Session]) -> None:
        for s in sessions:
            t = s.truth
            if t is None:
                continue
            self.counts["abnormal" if t.label else ("lookalike" if t.lookalike else "normal")] += 1
            self.writer.writerow([s.session_id, s.source, s.lines[0].seq, s.lines[-1].seq, len(s.lines) + s.dropped_lines,
                                  int(t.label), t.scenario or "", t.category or "", t.incident or "",
                                  self._action(t.incident) if t.label else ""])

    def _action(self, incident: str | None) -> str:
        inc = self.incidents.get(incident or "")
        return inc.action if inc is not None else ""


class LineSink(Protocol):
    """Where ``simulate`` sends each line besides the folder (``stream.replay.KafkaSink``:
    a Kafka topic); ``kafka`` in the manifest reports its ``topic`` and ``sent`` count."""

    topic: str
    sent: int

    def send(self, line: SimLine) -> None: ...

    def close(self) -> None: ...


def simulate(cfg: SimConfig, out_dir: str | Path | None = None, *, sink: LineSink | None = None,
             session: SessionConfig = DEFAULT_SESSION, progress: bool = True) -> dict[str, Any]:
    """Run the simulator into ``out_dir`` and/or ``sink``; return the manifest (also written to the folder)."""
    from tqdm import tqdm

    sim = Simulator(cfg)
    started = time.perf_counter()
    by_source: Counter = Counter()
    abnormal = 0
    incidents: Counter = Counter()
    files: list[IO] = []
    out = Path(out_dir) if out_dir is not None else None
    logs_f = truth_w = inc_f = sess_w = None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        logs_f = open(out / "logs.jsonl", "wb")  # noqa: SIM115 - closed below
        truth_f = open(out / "truth.csv", "w", newline="", encoding="utf-8")  # noqa: SIM115
        inc_f = open(out / "incidents.jsonl", "wb")  # noqa: SIM115
        sess_f = open(out / "sessions.csv", "w", newline="", encoding="utf-8")  # noqa: SIM115
        files = [logs_f, truth_f, inc_f, sess_f]
        truth_w = csv.writer(truth_f)
        truth_w.writerow(TRUTH_COLUMNS)
        sess_w = SessionTruthWriter(sess_f, session, sim.info)

    def finished(done: list[Incident]) -> None:
        for inc in done:
            incidents[inc.scenario] += 1
            if inc_f is not None:
                inc_f.write(orjson.dumps(inc.to_dict()) + b"\n")

    total = cfg.lines
    try:
        with tqdm(total=total, unit="line", desc="simulate", disable=not progress, file=sys.stderr,
                  mininterval=0.5) as bar:
            for line in sim.lines():
                by_source[line.source] += 1
                abnormal += line.truth.label
                if logs_f is not None:
                    logs_f.write(envelope(line) + b"\n")
                    truth_w.writerow(truth_row(line.n, line.event_ts, line.source, line.host, line.truth))
                    sess_w.add(line)
                if sink is not None:
                    sink.send(line)
                if line.n % 512 == 0:
                    bar.update(512)
                    finished(sim.drain_finished())
            bar.update(sim.written - bar.n)
        finished(sim.drain_finished())
        if sess_w is not None:
            sess_w.close()
    finally:
        for f in files:
            f.close()
        if sink is not None:
            sink.close()
    first_ts = cfg.start.timestamp()
    manifest = {
        "generator": "rlog simulate",
        "simulation": cfg.model_dump(mode="json"),
        "files": {"logs": "logs.jsonl", "truth": "truth.csv", "incidents": "incidents.jsonl", "sessions": "sessions.csv"},
        "config": analysis_config(session),
        "lines": sim.written,
        "abnormal_lines": abnormal,
        "lines_by_source": dict(by_source),
        "incidents": dict(sorted(incidents.items())),
        "sessions": dict(sess_w.counts) if sess_w is not None else {},
        "simulated_seconds": round(sim.last_ms / 1000 - first_ts, 3) if sim.written else 0,
        "elapsed_s": round(time.perf_counter() - started, 3),
        "kafka": {"topic": sink.topic, "sent": sink.sent} if sink is not None else None,
    }
    if out is not None:
        (out / MANIFEST).write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
    return manifest


def read_manifest(path: str | Path) -> dict[str, Any] | None:
    """The manifest of a simulation folder, or None when ``path`` is not one."""
    p = Path(path)
    m = p / MANIFEST if p.is_dir() else None
    if m is None or not m.is_file():
        return None
    data = orjson.loads(m.read_bytes())
    if not isinstance(data, dict) or "files" not in data:
        raise ValueError(f"{m} is not an rlog simulation manifest")
    return data
