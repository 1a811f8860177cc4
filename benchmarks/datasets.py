"""Labelled logs → the fit sessions and the scored (test) sessions every method sees.

Lines go through the plugin's own ``Pipeline`` (parser, Drain3 miner, sessionizer), fit
part first, so the test sessions carry the templates a running deployment would have;
baselines learn only from the fit part. Labels ride on each line (``LineTruth``), so a
session is abnormal exactly when one of its lines is, whatever the windowing.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.spec import DatasetSpec
from rlog.config import ConfigError, RlogConfig, load_config
from rlog.pipeline.lines import Line, read_lines
from rlog.pipeline.pipeline import Pipeline
from rlog.pipeline.sessions import Session, SessionLine
from rlog.sim.engine import SimConfig
from rlog.sim.output import MANIFEST, read_manifest, simulate
from rlog.truth import LineTruth, TruthReader

LabelledLine = tuple[str, LineTruth | None]


@dataclass
class BenchData:
    """One dataset, ready to score: sessions with labels, and what the stream path replays."""

    name: str
    cfg: RlogConfig  # parse + session of this dataset, cascade of the run
    fit: list[Session]
    fit_labels: list[bool | None]
    test: list[Session]
    test_labels: list[bool]
    test_lines: int
    unlabelled: int = 0
    templates: list[Session] = field(default_factory=list)  # one-template sessions (template-level scoring)
    template_labels: list[bool] = field(default_factory=list)
    stream_file: Path | None = None  # the scored lines, as the stream path replays them
    stream_truth: Path | None = None  # their truth.csv (one row per line), when labelled
    stream_config: dict = field(default_factory=dict)  # parse + session sections for the worker
    labels: dict[str, bool] | None = None  # session labels by id (a labels CSV), when given
    sample: list[str] = field(default_factory=list)  # scored raw lines, for per-stage throughput
    truth_note: str = ""

    @property
    def has_categories(self) -> bool:
        return any(s.truth is not None and s.truth.category for s in self.test)


def session_label(s: Session, labels: dict[str, bool] | None = None) -> bool | None:
    """A session's ground truth: a labels CSV for id sessions, else its lines' truth or labels."""
    if labels is not None and s.kind == "id":
        return labels.get(s.session_id.split("#", 1)[0])
    t = s.truth
    return t.label if t is not None else s.label


def feed_lines(pipe: Pipeline, source: str, lines: Iterable[LabelledLine]) -> list[Session]:
    """Every line into ``pipe`` (numbered from 1, as the worker numbers them); the sessions it closed."""
    out: list[Session] = []
    for i, (text, truth) in enumerate(lines, 1):
        sessions, _ = pipe.feed(source, Line(i, text), truth)
        out.extend(sessions)
    return out


def labelled_lines(path: Path, truth_path: Path | None, max_chars: int = 1 << 20) -> Iterator[LabelledLine]:
    """Lines of ``path`` with their row of a per-line ``truth.csv`` (None without one)."""
    with open(path, "rb") as f:
        reader = TruthReader(truth_path) if truth_path else None
        try:
            for ln in read_lines(f, max_chars):
                yield ln.text, reader.get(ln.seq) if reader else None
        finally:
            if reader:
                reader.close()


def _sim_lines(folder: Path) -> Iterator[LabelledLine]:
    return labelled_lines(folder / "logs.jsonl", folder / "truth.csv")


def loghub_lines(data_dir: Path, system: str, corrections: bool) -> list[LabelledLine]:
    """Lines of ``<system>_2k.log`` with their per-line labels (BGL, Thunderbird: '-' is normal)."""
    d = data_dir / "loghub" / system
    log = d / f"{system}_2k.log"
    if not log.is_file():
        raise ConfigError(f"{log} not found (Loghub 2k samples live in ../shared/data/loghub; --data-dir sets it)")
    if system == "BGL":
        from rlog.loghub import bgl_lines, load_corrections

        fixed = load_corrections(data_dir) if corrections else None
        return [(t, LineTruth(lab)) for t, lab in bgl_lines(data_dir, fixed)]
    raw = log.read_text("utf-8", errors="replace").splitlines()
    with open(d / f"{system}_2k.log_structured.csv", encoding="utf-8", newline="") as f:
        header = next(csv.reader(f))
    if "Label" not in header:
        raise ConfigError(f"Loghub {system} 2k has no per-line labels: use it for parsing accuracy only")
    return [(t, LineTruth(not t.startswith("- "))) for t in raw]


def _split(n: int, fit_fraction: float) -> int:
    """Items that go to fit. The test share is rounded in two halves, like the training
    recipe's validation + test splits, so BGL's scored part is exactly what training held out."""
    return n - 2 * round(n * (1 - fit_fraction) / 2)


def _config(base: RlogConfig, sections: dict) -> RlogConfig:
    return load_config(env={}, overrides={**sections, "cascade": base.cascade.model_dump(mode="json")})


def _template_units(sessions: list[Session], fit_fraction: float) -> tuple[list[Session], list[bool]]:
    """Unique templates in order of first appearance, the newest held out; one-line sessions.

    A template is abnormal when most of its lines are (the training recipe's rule), and is
    shown with its first line as evidence.
    """
    votes: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    first: dict[str, SessionLine] = {}
    for s in sessions:
        for ln in s.lines:
            first.setdefault(ln.template, ln)
            t = ln.truth
            votes[ln.template][bool(t.label if t is not None else ln.label)] += 1
    ordered = sorted(first, key=lambda t: first[t].seq)
    held = ordered[_split(len(ordered), fit_fraction):]
    units = [Session(f"template:{first[t].template_id}", "templates", "template", [first[t]], "template") for t in held]
    return units, [votes[t][1] > votes[t][0] for t in held]


def _sections(spec: DatasetSpec, own: dict | None) -> dict:
    """Parse + session sections: the data's own (a simulation's manifest) unless the spec says."""
    if spec.kind == "loghub":
        sections: dict = {"parse": {"format": (spec.system or "").lower(), "multiline": False}}
    else:
        sections = dict(own or {"parse": {"format": "raw"}})
    if spec.format:
        sections["parse"] = {**sections.get("parse", {}), "format": spec.format}
    if spec.session is not None:
        sections["session"] = spec.session
    elif "session" not in sections:
        sections["session"] = {"mode": "fixed", "by": "count", "size": 20}
    return sections


def load_dataset(spec: DatasetSpec, base: RlogConfig, work: Path, data_dir: Path | None, seed: int = 0) -> BenchData:
    """Build one dataset's sessions; simulated logs and the stream path's input go under ``work``."""
    work.mkdir(parents=True, exist_ok=True)
    labels: dict[str, bool] | None = None
    if spec.kind == "sim":
        sim = SimConfig(**{"seed": seed, **spec.sim})
        test_dir, fit_dir = work / "test", work / "fit"
        manifest = simulate(sim, test_dir, progress=False)
        if spec.fit_lines:
            simulate(sim.model_copy(update={"seed": sim.seed + 1000, "lines": spec.fit_lines, "duration_s": None}),
                     fit_dir, progress=False)
        cfg = _config(base, _sections(spec, manifest["config"]))
        pipe = Pipeline(cfg)
        fit = (feed_lines(pipe, "sim", _sim_lines(fit_dir)) if spec.fit_lines else []) + pipe.flush()[0]
        scored = list(_sim_lines(test_dir))
        test = feed_lines(pipe, "sim", scored) + pipe.flush()[0]
        everything = fit + test
        if spec.max_test_sessions is not None:
            test = test[: spec.max_test_sessions]
        note = f"simulated, seed {sim.seed}, {manifest['lines']:,} lines; baselines fit on seed {sim.seed + 1000}"
    else:
        own = None
        if spec.kind == "loghub":
            if data_dir is None:
                raise ConfigError(f"dataset {spec.name} needs the shared data folder (--data-dir)")
            lines = loghub_lines(data_dir, spec.system or "", spec.corrections)
            note = f"Loghub {spec.system} 2k" + (" with RationAnomaly label corrections"
                                                  if spec.system == "BGL" and spec.corrections else "")
        else:
            path = Path(spec.path or "")
            truth_path = Path(spec.truth) if spec.truth else None
            if path.is_dir():
                manifest = read_manifest(path)
                if manifest is None:
                    raise ConfigError(f"{path} is a folder without {MANIFEST}")
                truth_path = truth_path or path / manifest["files"]["truth"]
                own = manifest["config"]
                path = path / manifest["files"]["logs"]
            if not path.is_file():
                raise ConfigError(f"dataset {spec.name}: log file not found: {path}")
            lines = list(labelled_lines(path, truth_path))
            if spec.labels:
                from rlog.analyze import read_labels

                labels = read_labels(spec.labels)
            note = str(path)
        cfg = _config(base, _sections(spec, own))
        pipe = Pipeline(cfg)
        everything = feed_lines(pipe, spec.system or spec.name, lines) + pipe.flush()[0]
        n_fit = _split(len(everything), spec.fit_fraction)
        fit, test = everything[:n_fit], everything[n_fit:]
        if spec.max_test_sessions is not None:
            test = test[: spec.max_test_sessions]
        seqs = [ln.seq for s in test for ln in s.lines]
        scored = lines[min(seqs) - 1: max(seqs)] if seqs else []
    stream_file = work / "scored.log"
    stream_file.write_text("".join(t + "\n" for t, _ in scored), encoding="utf-8")
    stream_truth = None
    if any(t is not None for _, t in scored):
        stream_truth = work / "scored.truth.csv"
        _write_truth(stream_truth, scored)
    fit_labels = [session_label(s, labels) for s in fit]
    judged = [(s, session_label(s, labels)) for s in test]
    kept = [(s, lab) for s, lab in judged if lab is not None]
    data = BenchData(spec.name, cfg, fit, fit_labels, [s for s, _ in kept], [bool(lab) for _, lab in kept],
                     test_lines=sum(len(s.lines) + s.dropped_lines for s, _ in kept),
                     unlabelled=len(judged) - len(kept), stream_file=stream_file, stream_truth=stream_truth,
                     stream_config=cfg.model_dump(mode="json", include={"parse", "session"}),
                     sample=[t for t, _ in scored], truth_note=note)
    if spec.templates:
        units, tlabels = _template_units(everything, spec.fit_fraction)
        if spec.max_test_templates is not None:
            units, tlabels = units[: spec.max_test_templates], tlabels[: spec.max_test_templates]
        data.templates, data.template_labels = units, tlabels
    return data


def _write_truth(path: Path, lines: list[LabelledLine]) -> None:
    from rlog.truth import NORMAL, TRUTH_COLUMNS, truth_row

    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(TRUTH_COLUMNS)
        for i, (_, t) in enumerate(lines, 1):
            w.writerow(truth_row(i, None, "", "", t or NORMAL))
