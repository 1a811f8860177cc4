"""The shared data folder's Loghub samples: where they are, their labels, and parsing accuracy.

train/ and the benchmarks read labelled lines from here, so the benchmark scores exactly
the part of BGL that training held out, with the same RationAnomaly corrections.
Parsing accuracy is measured against Loghub's ground truth (``_structured.csv``).
"""

from __future__ import annotations

import csv
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from drain3 import TemplateMiner
from drain3.template_miner_config import TemplateMinerConfig

from rlog.errors import RlogError
from rlog.metrics import grouping_accuracy
from rlog.pipeline.formats import PRESETS
from rlog.pipeline.lines import read_lines
from rlog.pipeline.records import LogRecord, RecordParser
from rlog.pipeline.templates import TemplateStore


class DataError(RlogError, ValueError):
    """Data (Loghub samples, trajectories, examples) missing or unusable; the message says where and what to do."""


def shared_data_dir(explicit: str | Path | None = None) -> Path:
    """``explicit``, else ``$RLOG_SHARED_DATA``, else ``../shared/data`` beside the checkout."""
    if explicit:
        return Path(explicit).expanduser()
    if os.environ.get("RLOG_SHARED_DATA"):
        return Path(os.environ["RLOG_SHARED_DATA"]).expanduser()
    return Path(__file__).resolve().parents[1].parent / "shared" / "data"


def load_corrections(data_dir: Path) -> dict[str, str]:
    """RationAnomaly's expert label corrections: template → 'normal' | 'abnormal'."""
    path = data_dir / "rationanomaly" / "anomaly_patch.json"
    if not path.is_file():
        return {}
    return {" ".join(e["input"].split()): e["rectified"].strip().lower() for e in json.loads(path.read_text("utf-8"))}


def bgl_lines(data_dir: Path, corrections: dict[str, str] | None = None) -> list[tuple[str, bool]]:
    """(raw line, abnormal) for BGL 2k, labels corrected by template where an expert said so."""
    d = data_dir / "loghub" / "BGL"
    log, structured = d / "BGL_2k.log", d / "BGL_2k.log_structured.csv"
    if not log.is_file():
        raise DataError(f"{log} not found (Loghub BGL 2k lives in ../shared/data/loghub)")
    raw = log.read_text("utf-8", errors="replace").splitlines()
    labels = [not ln.startswith("- ") for ln in raw]
    if corrections and structured.is_file():
        with open(structured, encoding="utf-8", newline="") as f:
            for i, row in enumerate(csv.DictReader(f)):
                fixed = corrections.get(" ".join(row["EventTemplate"].split()))
                if fixed is not None and i < len(labels):
                    labels[i] = fixed == "abnormal"
    return list(zip(raw, labels, strict=True))


@dataclass(frozen=True)
class ParsingResult:
    system: str
    lines: int
    templates: int
    true_templates: int
    grouping_accuracy: float
    lines_per_s: float


def loghub_parsing_accuracy(system_dir: str | Path, *, vanilla: bool = False) -> ParsingResult:
    """Mine ``<System>_2k.log`` with the system's preset and score grouping vs ``EventId``.

    Multi-line merging is off: Loghub's ground truth has one event per physical line.
    ``vanilla`` mines the same message text with Drain3's defaults (no masks, no per-format
    tuning): the baseline that shows what rlog's presets add.
    """
    d = Path(system_dir)
    fmt = PRESETS[d.name.lower()]
    with open(d / f"{d.name}_2k.log_structured.csv", encoding="utf-8", newline="") as f:
        truth = [row["EventId"] for row in csv.DictReader(f)]
    if vanilla:
        miner = TemplateMiner(config=TemplateMinerConfig())

        def mine(content: str) -> int:
            return miner.add_log_message(content)["cluster_id"]

        def count() -> int:
            return len(miner.drain.clusters)
    else:
        store = TemplateStore(fmt)

        def mine(content: str) -> int:
            return store.mine(content).cluster_id

        def count() -> int:
            return len(store)
    parser = RecordParser(fmt, d.name, multiline=False)
    pred: list[int] = []
    t0 = time.perf_counter()
    with open(d / f"{d.name}_2k.log", "rb") as f:
        for line in read_lines(f, 65536):
            for item in parser.feed(line):
                if isinstance(item, LogRecord):
                    pred.append(mine(item.content))
                else:
                    pred.append(-line.seq)  # unparsed line: its own group, counted as a miss
    dt = time.perf_counter() - t0
    return ParsingResult(d.name, len(pred), count(), len(set(truth)), grouping_accuracy(truth, pred),
                         len(pred) / dt if dt else 0.0)
