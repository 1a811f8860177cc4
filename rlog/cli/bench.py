"""`rlog bench`: run a benchmarks/ preset (or a spec YAML, or your own labelled file) and write the results."""

from __future__ import annotations

import argparse
from pathlib import Path

import orjson

from rlog.cli.common import add_config_flags


def add_parsers(sub) -> None:
    from benchmarks.spec import preset_names

    b = sub.add_parser("bench", help="benchmark rlog against baselines on labelled logs (quality, speed, cost)",
                       description="Replay labelled logs (Loghub samples, the simulator, or your file) through the "
                                   "offline cascade and the streaming path, next to Drain3-novelty, keyword, PCA, "
                                   "IsolationForest and DeepLog baselines on the same sessions. Writes results.json, "
                                   "results.md and PNG plots to --out.")
    b.add_argument("--preset", default="quick", help=f"one of {', '.join(preset_names())}, or a spec YAML "
                   "(default quick: a few minutes on 2 CPU cores)")
    b.add_argument("--out", "-o", default=None, help="results folder (default out/bench/<preset>)")
    add_config_flags(b)
    b.add_argument("--data-dir", help="shared data folder with loghub/ (default $RLOG_SHARED_DATA or ../shared/data)")
    b.add_argument("--dataset", action="append", metavar="NAME", help="only these datasets of the preset (repeatable)")
    b.add_argument("--file", help="benchmark on your own labelled log file (or `rlog simulate` folder) instead")
    b.add_argument("--format", "-f", help="with --file: format preset or pattern (labels from its Label field)")
    b.add_argument("--labels", metavar="CSV", help="with --file: session labels (id,label) for id sessions")
    b.add_argument("--truth", metavar="CSV", help="with --file: per-line truth.csv")
    b.add_argument("--window", type=int, help="with --file: count-window size in lines (default 20)")
    b.add_argument("--id-pattern", action="append", help="with --file: sessions by id (regex with a group, or a "
                   "preset such as hdfs); repeatable")
    b.add_argument("--no-llm", action="store_true", help="baselines, throughput and parsing only (no models)")
    b.add_argument("--no-stream", action="store_true", help="skip the streaming path")
    b.add_argument("--render", metavar="DIR", help="re-render results.md and the plots from DIR/results.json")
    b.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    b.set_defaults(func=cmd_bench)


def cmd_bench(a: argparse.Namespace) -> int:
    from benchmarks.report import write_outputs
    from benchmarks.run import run_bench
    from benchmarks.spec import BenchSpec, DatasetSpec, load_spec
    from rlog.config import ConfigError, load_config
    from rlog.loghub import shared_data_dir

    if a.render:
        d = Path(a.render)
        for p in write_outputs(orjson.loads((d / "results.json").read_bytes()), d):
            print(p)
        return 0
    spec = load_spec(a.preset)
    if a.file:
        session = None
        if a.id_pattern:
            session = {"mode": "id", "id_patterns": a.id_pattern}
        elif a.window:
            session = {"mode": "fixed", "by": "count", "size": a.window}
        ds = DatasetSpec(name=Path(a.file).stem.replace(".", "-") or "file", kind="file", path=a.file, format=a.format,
                         labels=a.labels, truth=a.truth, session=session, stream=not a.no_stream)
        spec = BenchSpec.model_validate({**spec.model_dump(), "name": f"{spec.name}-file", "datasets": [ds.model_dump()],
                                         "parsing_systems": []})
    elif a.dataset:
        unknown = set(a.dataset) - {d.name for d in spec.datasets}
        if unknown:
            raise ConfigError(f"preset {spec.name} has no dataset {', '.join(sorted(unknown))}; it has "
                              f"{', '.join(d.name for d in spec.datasets)}")
        spec = spec.model_copy(update={"datasets": [d for d in spec.datasets if d.name in a.dataset]})
    cfg = load_config(a.config)
    out = Path(a.out or f"out/bench/{spec.name}")
    results = run_bench(spec, cfg, out, data_dir=shared_data_dir(a.data_dir), llm=not a.no_llm,
                        stream=not a.no_stream, progress=not a.quiet)
    print((out / "results.md").read_text(encoding="utf-8"))
    print(f"rlog bench: {results['elapsed_s']:.0f} s; results in {out}/results.json, results.md, *.png")
    return 0
