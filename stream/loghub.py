"""Parsing accuracy against Loghub's ground truth (``<System>_2k.log_structured.csv``)."""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass
from pathlib import Path

from drain3 import TemplateMiner
from drain3.template_miner_config import TemplateMinerConfig

from rlog.metrics import grouping_accuracy
from stream.formats import PRESETS
from stream.records import LogRecord, RecordParser, read_lines
from stream.templates import TemplateStore


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
