"""`rlog analyze`: the whole flow over a file offline, a readable summary, alerts as JSONL."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from pathlib import Path

from rlog.cli.common import add_config_flags, add_pipeline_flags, config_from_args
from rlog.config import ConfigError, RlogConfig
from rlog.tables import format_table

log = logging.getLogger("rlog")


def add_parsers(sub) -> None:
    an = sub.add_parser("analyze", help="run the whole cascade over a log file offline",
                        description="Parse FILE, group lines into sessions, judge each session with R-Log-fast, "
                                    "escalate flagged ones to R-Log, print a summary and write alerts as JSONL. "
                                    "With labels (BGL's first field, or --labels CSV) prints precision/recall/F1.")
    an.add_argument("file", help="log file (any encoding; invalid UTF-8 is replaced and counted), or a folder "
                    "written by `rlog simulate` (its formats, sessions and ground truth are used)")
    add_config_flags(an)
    add_pipeline_flags(an)
    an.add_argument("--labels", metavar="CSV", help="session labels: id,label rows (Anomaly/Normal, 1/0)")
    an.add_argument("--truth", metavar="CSV", help="per-line ground truth (a simulator's truth.csv): adds per-scenario "
                    "detection and root-cause accuracy")
    an.add_argument("--alerts", metavar="JSONL", help="write one alert per line here")
    an.add_argument("--dead-letters", metavar="JSONL", help="write rejected lines with the reason here")
    an.add_argument("--report", metavar="JSON", help="write every figure of the summary here")
    an.add_argument("--parse-only", action="store_true", help="stop before the models (templates and sessions)")
    an.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    an.set_defaults(func=cmd_analyze)



class OutputFile:
    """A JSONL output of the run that fails clearly: opened before the models load (a bad path is
    an error in a second), and a write that fails (disk full, a closed pipe) stops this output
    only; the analysis goes on, the summary still prints, and the error is said at the end."""

    def __init__(self, path: str, what: str) -> None:
        self.path, self.what = path, what
        self.error: OSError | None = None
        self.lost = 0
        try:
            self._f = open(path, "wb")  # noqa: SIM115 - closed by close(), which reports its own failure
        except OSError as e:
            raise ConfigError(f"cannot write {what} to {path}: {e.strerror or e}") from None

    def write(self, data: bytes) -> None:
        if self.error is None:
            try:
                self._f.write(data)
                return
            except OSError as e:
                self.error = e
        self.lost += 1

    def close(self) -> None:
        try:
            self._f.close()
        except OSError as e:
            self.error = self.error or e

    def problem(self) -> str | None:
        if self.error is None:
            return None
        lost = f"; {self.lost} record(s) not written" if self.lost else ""
        return f"writing {self.what} to {self.path} failed ({self.error.strerror or self.error}){lost}"


def cmd_analyze(a: argparse.Namespace) -> int:
    from rlog.analyze import analyze_file, read_labels
    from rlog.backends import load_stage_backends
    from rlog.cascade.cascade import Cascade

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
    cfg = config_from_args(a, manifest["config"] if manifest else None, f"{path.parent / 'manifest.json'}")
    if not path.is_file():
        raise ConfigError(f"log file not found: {path}")
    if truth_path is not None and not truth_path.is_file():
        raise ConfigError(f"truth file not found: {truth_path}")
    labels = read_labels(a.labels) if a.labels else None
    outputs = {k: OutputFile(p, what) for k, p, what in (("alerts", a.alerts, "alerts"),
                                                         ("dead", a.dead_letters, "dead letters")) if p}
    cascade = None
    if not a.parse_only:
        log.info("loading models (fast: %s, full: %s)", cfg.cascade.fast.model, cfg.cascade.full.model)
        fast, full = load_stage_backends(cfg.cascade)
        cascade = Cascade(fast, full, cfg.cascade)
    with contextlib.ExitStack() as files:
        from rlog.truth import TruthReader

        truth = files.enter_context(TruthReader(truth_path)) if truth_path else None
        for out in outputs.values():
            files.callback(out.close)
        report = analyze_file(path, cfg, cascade, labels=labels, truth=truth, alerts_out=outputs.get("alerts"),
                              dead_out=outputs.get("dead"), progress=not a.quiet)
    print(render_report(report, cfg))
    problems = [p for p in (out.problem() for out in outputs.values()) if p]
    if a.report:
        import orjson

        try:
            Path(a.report).write_bytes(orjson.dumps(report.to_dict(), option=orjson.OPT_INDENT_2))
        except OSError as e:
            problems.append(f"writing the report to {a.report} failed ({e.strerror or e})")
    for p in problems:
        print(f"rlog: error: {p}", file=sys.stderr)
    return 2 if problems else 0


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
        from rlog.cascade.alerts import headline  # pulls Drain3: only when there are alerts to show

        arows = []
        for al in r.alerts:
            conf = f"{al.confidence:.2f}" if al.confidence is not None else "-"
            summary = (al.root_cause if "root_cause" not in al.fallback else "") or al.headline or headline(al.templates)
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
