"""Reading a fault-lab corpus (what ``rlog lab corpus`` builds): its runs per daemon, each run's lines
with their truth, and what the injector wrote about every fault (category, root cause, fix).

In the core, not in ``benchmarks.faultlab`` (which drives the daemons), because two layers read
it: the training recipe (``train.data``: lab sessions as examples) and the benchmark
(``benchmarks.lodo``). Reading needs no daemon installed.

A run numbers its injections ``<fault>#<n>`` from 1, so the same id recurs in every run; lines
read here carry ``<daemon>/seed-<n>/<fault>#<n>`` instead, so an incident is one injection
of one run wherever its sessions end up.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson

from rlog.errors import RlogError
from rlog.truth import LineTruth

CORPUS_MANIFEST = "corpus.json"
BUILD_HINT = "rlog lab corpus -o {path} --seeds 1-28 --rate 6"


class CorpusError(RlogError):
    """A corpus folder that is missing or not what ``rlog lab corpus`` writes."""


@dataclass(frozen=True)
class LabIncident:
    """One injection of one run, as the injector recorded it."""

    id: str  # <daemon>/seed-<n>/<fault>#<i>
    daemon: str
    fault: str
    category: str  # the lab's fault category (resources, crash, ...)
    root: str  # the root-cause category an alert should name
    cause: str
    fix: str


@dataclass(frozen=True)
class LabRun:
    daemon: str
    seed: int
    folder: Path
    log: Path
    truth: Path
    config: dict  # how ``rlog analyze`` reads the folder (parse + session sections)
    incidents: dict[str, LabIncident]

    def lines(self) -> Iterator[tuple[str, LineTruth]]:
        """The daemon's lines in order, each with its truth (incident ids made unique to this run)."""
        prefix = f"{self.daemon}/seed-{self.seed}/"
        with open(self.log, encoding="utf-8", errors="replace") as logf, \
                open(self.truth, newline="", encoding="utf-8") as tf:
            rows = csv.DictReader(tf)
            try:
                pairs = list(zip(logf, rows, strict=True))
            except ValueError:
                raise CorpusError(f"lab run {self.folder}: {self.log.name} and {self.truth.name} differ in length; "
                                  "rebuild the run") from None
            for text, row in pairs:
                label = row["label"] == "1"
                inc = row["incident"] or None
                yield text.rstrip("\n"), LineTruth(label, prefix + inc if label and inc else None,
                                                   (row["scenario"] or None) if label else None,
                                                   (row["category"] or None) if label else None)


def _run(corpus: Path, entry: dict) -> LabRun:
    folder = corpus / entry["folder"]
    try:
        m = orjson.loads((folder / "manifest.json").read_bytes())
        prefix = f"{m['daemon']}/seed-{m['seed']}/"
        incidents = {prefix + i["incident"]: LabIncident(prefix + i["incident"], m["daemon"], i["fault"],
                                                         i["category"], i["root"], i["cause"], i["fix"])
                     for i in m["injections"]}
        return LabRun(m["daemon"], int(m["seed"]), folder, folder / m["files"]["logs"], folder / m["files"]["truth"],
                      m["config"], incidents)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CorpusError(f"lab run {folder} is unreadable ({type(e).__name__}: {e}); rebuild it with "
                          f"`{BUILD_HINT.format(path=corpus)}` (a build keeps intact runs)") from None


def read_corpus(corpus: str | Path, daemons: Sequence[str] | None = None) -> dict[str, list[LabRun]]:
    """Runs per daemon (seed order) of a corpus folder; ``daemons`` picks some (each must be there)."""
    corpus = Path(corpus)
    try:
        manifest = orjson.loads((corpus / CORPUS_MANIFEST).read_bytes())
        entries = manifest["runs"]
    except FileNotFoundError:
        raise CorpusError(f"no fault-lab corpus at {corpus} ({CORPUS_MANIFEST} missing): build it with "
                          f"`{BUILD_HINT.format(path=corpus)}` (about 40 min; it needs the lab's daemons)") from None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CorpusError(f"{corpus / CORPUS_MANIFEST} is not a corpus manifest ({type(e).__name__}: {e})") from None
    runs: dict[str, list[LabRun]] = {}
    for entry in entries:
        if daemons is None or entry.get("daemon") in daemons:
            runs.setdefault(entry["daemon"], []).append(_run(corpus, entry))
    missing = [d for d in daemons or () if d not in runs]
    if missing:
        raise CorpusError(f"the corpus at {corpus} has no run of {', '.join(missing)} (it has "
                          f"{', '.join(sorted(runs)) or 'none'})")
    for rs in runs.values():
        rs.sort(key=lambda r: r.seed)
    return runs
