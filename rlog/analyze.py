"""Offline analysis: the whole flow over a file, with progress, alerts and scores (`rlog analyze`).

The same ``Pipeline`` and ``Cascade`` the stream runs, driven from a file instead of a
topic, so an archive replayed here gets the decisions the live stream would make.
"""

from __future__ import annotations

import csv
import logging
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import orjson
from tqdm import tqdm

from rlog.cascade.alerts import Alert
from rlog.cascade.cascade import Cascade
from rlog.config import RlogConfig
from rlog.metrics import BinaryScores, TruthScorer, binary_scores
from rlog.pipeline.lines import DeadLetter, read_lines
from rlog.pipeline.pipeline import Pipeline
from rlog.pipeline.sessions import Session
from rlog.terminal import printable
from rlog.truth import TruthReader

log = logging.getLogger(__name__)

_ABNORMAL_WORDS = {"anomaly", "abnormal", "1", "true", "yes", "fail", "failure"}
_NORMAL_WORDS = {"normal", "0", "false", "no", "success", "-"}


def read_labels(path: str | Path) -> dict[str, bool]:
    """Session labels from a CSV of (id, label), e.g. Loghub's HDFS ``anomaly_label.csv``.

    The first column is the session id, the second the label (Anomaly/Normal, 1/0, ...).
    A header row is detected and skipped; unknown label words are an error, not a guess.
    """
    out: dict[str, bool] = {}
    with open(path, newline="", encoding="utf-8") as f:
        for i, row in enumerate(csv.reader(f)):
            if len(row) < 2 or not row[0].strip():
                continue
            word = row[1].strip().lower()
            if word in _ABNORMAL_WORDS:
                out[row[0].strip()] = True
            elif word in _NORMAL_WORDS:
                out[row[0].strip()] = False
            elif i == 0:
                continue  # header
            else:
                raise ValueError(f"{path}:{i + 1}: label {row[1]!r} is neither normal nor anomaly")
    return out


@dataclass
class AnalyzeReport:
    path: str
    lines: int = 0
    records: int = 0
    dead_letters: Counter = field(default_factory=Counter)
    flags: Counter = field(default_factory=Counter)
    templates: int = 0
    sessions: int = 0
    sessions_by_reason: dict[str, int] = field(default_factory=dict)
    evicted: int = 0
    unsessioned: int = 0
    verdicts: Counter = field(default_factory=Counter)
    alerts: list[Alert] = field(default_factory=list)  # the first few, for display
    n_alerts: int = 0
    scores: BinaryScores | None = None
    labelled_sessions: int = 0
    root_cause: dict | None = None  # with a truth file: accuracy of the category on detected incidents
    by_scenario: dict = field(default_factory=dict)  # scenario -> {"sessions", "flagged"}
    cascade: dict = field(default_factory=dict)
    elapsed_s: float = 0.0

    def to_dict(self) -> dict:
        d = {k: v for k, v in self.__dict__.items() if k not in ("alerts", "scores")}
        d["dead_letters"], d["flags"], d["verdicts"] = dict(self.dead_letters), dict(self.flags), dict(self.verdicts)
        d["scores"] = self.scores.as_dict() if self.scores else None
        d["lines_per_s"] = round(self.lines / self.elapsed_s, 1) if self.elapsed_s else None
        return d


def judge_isolating(cascade: Cascade, sessions: list[Session]) -> tuple[list, list[tuple[Session, BaseException]]]:
    """``cascade.judge(sessions)``, stepping over a session the models fail on while others pass.

    The same rule as the stream's (``stream.poison``): a batch that fails is tried session by
    session; those that still fail are poison when the rest passed or the fast model answers a
    plain canary. When everything fails, the canary too, the model is down: offline there is no
    input to hold, so the run stops with that error (as before), naming it.
    """
    try:
        return cascade.judge(sessions), []
    except Exception as e:  # noqa: BLE001 - decided below: one session's poison, or an outage
        first = e
    good: list = []
    bad: list[tuple[Session, BaseException]] = []
    for s in sessions:
        try:
            good.extend(cascade.judge([s]))
        except Exception as e:  # noqa: BLE001 - kept with the session
            bad.append((s, e))
    if bad and not good and not cascade.answers("fast"):
        raise first
    return good, bad


def session_truth(s: Session, labels: dict[str, bool] | None) -> bool | None:
    if labels is not None and s.kind == "id":
        return labels.get(s.session_id.split("#", 1)[0])
    return s.label


def analyze_file(path: str | Path, cfg: RlogConfig, cascade: Cascade | None, *,
                 labels: dict[str, bool] | None = None, truth: TruthReader | None = None,
                 alerts_out: IO[bytes] | None = None, dead_out: IO[bytes] | None = None, progress: bool = True,
                 show_alerts: int = 10) -> AnalyzeReport:
    """Parse, sessionize and judge ``path``; write alerts/dead letters as JSONL if asked.

    ``truth`` (a simulator's truth file) labels every line and adds root-cause accuracy and
    per-scenario detection to the report.
    """
    path = Path(path)
    pipe = Pipeline(cfg)
    report = AnalyzeReport(str(path))
    scorer = TruthScorer() if truth is not None else None
    pairs: list[tuple[bool, bool]] = []
    pending: list[Session] = []
    model_dead: Counter = Counter()  # sessions the models failed on (parse dead letters are the pipeline's)
    chunk = max(1, cfg.cascade.fast.batch_size * 4)
    t0 = time.perf_counter()

    def dead_letter(s: Session, e: BaseException) -> None:
        """A session the models fail on while others pass (a prompt over the context, a bug some
        input finds): a dead letter with the reason, as the stream makes it, and the run goes on."""
        reason = f"model stage failed on this session ({type(e).__name__}: {e})"
        model_dead["model stage failed"] += 1
        log.warning("session %s: %s; written to the dead letters, the run goes on", printable(s.session_id), reason)
        if dead_out is not None:
            dead_out.write(orjson.dumps({"source": s.source, "session_id": s.session_id, "seq": s.lines[0].seq
                                         if s.lines else -1, "reason": reason, "raw": ""}) + b"\n")

    def judge(sessions: list[Session]) -> None:
        if cascade is None:
            judged = [(s, None) for s in sessions]
        else:
            decisions, poison = judge_isolating(cascade, sessions)
            for s, e in poison:
                dead_letter(s, e)
            judged = [(s, d) for s, d, _ in decisions]
            for a in cascade.alerts(decisions):
                report.n_alerts += 1
                if len(report.alerts) < show_alerts:
                    report.alerts.append(a)
                if alerts_out is not None:
                    alerts_out.write(a.to_json() + b"\n")
        for s, d in judged:
            verdict = d.verdict if d is not None else "unjudged"
            report.verdicts[verdict] += 1
            label = session_truth(s, labels)
            if label is not None and d is not None:
                pairs.append((label, verdict == "abnormal"))
            if scorer is not None and d is not None:
                st = s.truth
                if st is not None:
                    full = d.full if d.full is not None and d.full.ok else None
                    scorer.add(st, verdict, full.category if full else None)

    def take(sessions: list[Session], dead: list[DeadLetter]) -> None:
        report.sessions += len(sessions)
        pending.extend(sessions)
        if len(pending) >= chunk:
            judge(pending[:])
            pending.clear()
        if dead_out is not None:
            for d in dead:
                dead_out.write(orjson.dumps({"source": d.source, "seq": d.seq, "reason": d.reason,
                                             "raw": d.raw[:4096]}) + b"\n")

    size = path.stat().st_size
    with open(path, "rb") as f, tqdm(total=size, unit="B", unit_scale=True, desc=f"analyze {printable(path.name)}",
                                     disable=not progress, file=sys.stderr, mininterval=0.5) as bar:
        last = 0
        for line in read_lines(f, cfg.parse.max_line_chars):
            take(*pipe.feed(path.name, line, truth.get(line.seq) if truth is not None else None))
            if line.seq % 256 == 0:
                pos = f.tell()
                bar.update(pos - last)
                last = pos
        take(*pipe.flush())
        if pending:
            judge(pending)
        bar.update(size - last)

    ps, ss = pipe.stats, pipe.sessionizer.stats
    report.lines, report.records = ps.lines, ps.records
    report.dead_letters, report.flags = ps.dead_letters + model_dead, ps.flags
    report.templates = sum(len(t) for t in pipe.templates().values())
    report.sessions_by_reason = dict(ss.by_reason)
    report.evicted, report.unsessioned = ss.evicted, ss.unsessioned
    report.labelled_sessions = len(pairs)
    report.scores = binary_scores(pairs) if pairs else None
    if scorer is not None and cascade is not None:
        report.root_cause = scorer.root_cause()
        report.by_scenario = dict(sorted(scorer.by_scenario.items()))
    report.cascade = cascade.stats.summary() if cascade is not None else {}
    report.elapsed_s = time.perf_counter() - t0
    return report
