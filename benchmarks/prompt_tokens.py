"""Prompt-token distribution of the served R-Log-fast prompt, per kind of session.

What a model call costs grows with its prompt, so this counts the exact text the fast model
is served (its chat template, the instructions, the session view capped by tokens, the
prefill) on three kinds of session: Loghub BGL 2k in 20-line windows, Loghub HDFS 2k in
``blk_`` id sessions, and a simulated estate in 40-line windows per component. Only the
tokenizer is loaded, so it takes seconds.

    python -m benchmarks.prompt_tokens [--data-dir ../shared/data] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from collections.abc import Iterable
from pathlib import Path

from benchmarks.datasets import feed_lines
from rlog.backends.transformers_backend import render_chat
from rlog.config import RlogConfig, load_config
from rlog.contract.representation import prompt_for, view_of
from rlog.loghub import shared_data_dir
from rlog.metrics import percentile
from rlog.pipeline.pipeline import Pipeline
from rlog.pipeline.sessions import Session
from rlog.tables import format_table


def sessions_of(cfg: RlogConfig, source: str, lines: Iterable[str]) -> list[Session]:
    pipe = Pipeline(cfg)
    return feed_lines(pipe, source, ((text, None) for text in lines)) + pipe.flush()[0]


def loghub_sessions(data_dir: Path, system: str, fmt: str, session: dict) -> list[Session]:
    log = data_dir / "loghub" / system / f"{system}_2k.log"
    cfg = load_config(env={}, overrides={"parse": {"format": fmt, "multiline": False}, "session": session})
    return sessions_of(cfg, system, log.read_text("utf-8", errors="replace").splitlines())


def sim_sessions(seed: int = 7, lines: int = 5000) -> list[Session]:
    """The simulation as ``rlog analyze`` reads it: envelopes, each component in its format, 40-line windows."""
    from rlog.sim.engine import SimConfig
    from rlog.sim.output import simulate

    with tempfile.TemporaryDirectory() as d:
        manifest = simulate(SimConfig(seed=seed, lines=lines), d, progress=False)
        cfg = load_config(env={}, overrides=manifest["config"])
        text = (Path(d) / "logs.jsonl").read_text("utf-8").splitlines()
    return sessions_of(cfg, "sim", text)


def distribution(counts: list[int]) -> dict:
    return {"sessions": len(counts), "p50": percentile(counts, 0.5), "p90": percentile(counts, 0.9),
            "max": max(counts), "mean": round(statistics.fmean(counts), 1)}


def main(argv: list[str] | None = None) -> int:
    from transformers import AutoTokenizer

    from rlog.models import SMOLLM2, resolve_model

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", help="the shared data folder (default ../shared/data or $RLOG_SHARED_DATA)")
    p.add_argument("--json", help="also write the figures here")
    a = p.parse_args(argv)
    tok = AutoTokenizer.from_pretrained(resolve_model(SMOLLM2))
    cascade = load_config(env={}).cascade

    def count(text: str) -> int:
        return len(tok(text, add_special_tokens=False)["input_ids"])

    data_dir = shared_data_dir(a.data_dir)
    sets = {}
    if (data_dir / "loghub").is_dir():
        sets["Loghub BGL 2k, 20-line windows"] = loghub_sessions(data_dir, "BGL", "bgl",
                                                                 {"mode": "fixed", "by": "count", "size": 20})
        sets["Loghub HDFS 2k, blk_ id sessions"] = loghub_sessions(
            data_dir, "HDFS", "hdfs", {"mode": "id", "id_patterns": ["hdfs"], "timeout_s": 1e9})
    sets["simulation (seed 7, 5,000 lines), 40-line windows"] = sim_sessions()
    figures = {}
    for name, sessions in sets.items():
        tokens = [count(render_chat(tok, prompt_for(view_of(s, cascade.view), "fast", cascade, count)))
                  for s in sessions]
        figures[name] = {**distribution(tokens), "templates_mean": round(statistics.fmean(
            len(s.template_counts()) for s in sessions), 1)}
    rows = [[n, f["sessions"], f["p50"], f["p90"], f["max"], f["mean"], f["templates_mean"]] for n, f in figures.items()]
    print(format_table(["sessions", "n", "p50", "p90", "max", "mean", "distinct templates"], rows))
    if a.json:
        Path(a.json).write_text(json.dumps(figures, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
