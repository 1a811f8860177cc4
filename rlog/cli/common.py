"""Flags several commands share, and how they map onto the config (flags beat file and env)."""

from __future__ import annotations

import argparse

from rlog.config import RlogConfig, load_config


def flag_overrides(a: argparse.Namespace) -> dict:
    """CLI flags that map onto config fields (only the ones given)."""
    o: dict[str, dict] = {"parse": {}, "session": {}, "cascade": {"fast": {}, "full": {}}}
    if a.format:
        o["parse"]["format"] = a.format
    if getattr(a, "no_multiline", False):
        o["parse"]["multiline"] = False
    s = o["session"]
    if a.session:
        s["mode"] = a.session
    if a.id_pattern:
        s["id_patterns"] = a.id_pattern
        s.setdefault("mode", "id")
    for flag, key in (("window_by", "by"), ("window_size", "size"), ("window_step", "step"),
                      ("timeout", "timeout_s"), ("max_open", "max_open")):
        if getattr(a, flag, None) is not None:
            s[key] = getattr(a, flag)
    c = o["cascade"]
    for stage in ("fast", "full"):
        for attr, key in (("model", "model"), ("adapter", "adapter"), ("batch_size", "batch_size"),
                          ("max_new_tokens", "max_new_tokens")):
            v = getattr(a, f"{stage}_{attr}", None)
            if v is not None:
                c[stage][key] = v
    if getattr(a, "no_escalate", False):
        c["escalate"] = False
    return o


def config_from_args(a: argparse.Namespace, base: dict | None = None, base_origin: str = "") -> RlogConfig:
    """The config file, then RLOG_* variables, then the flags given (pipeline flags when the command has them)."""
    return load_config(a.config, overrides=flag_overrides(a) if hasattr(a, "format") else None, base=base,
                       base_origin=base_origin)


def add_config_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="YAML", help="config file (sections parse, session, cascade); "
                   "RLOG_SECTION__FIELD variables override it, flags override both")


def add_pipeline_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("parsing and sessions")
    g.add_argument("--format", "-f", help="log format preset (see `rlog formats`) or a Loghub-style pattern "
                   "such as '<Date> <Time> <Level>: <Content>'")
    g.add_argument("--no-multiline", action="store_true", help="do not join continuation lines (stack traces)")
    g.add_argument("--session", choices=["id", "fixed", "sliding"], help="group lines by id, or in fixed/sliding windows")
    g.add_argument("--id-pattern", action="append", metavar="REGEX",
                   help="session id regex (group 1 = id) or preset hdfs|openstack|hadoop; repeatable")
    g.add_argument("--window-by", choices=["count", "time"], help="window unit: lines or seconds")
    g.add_argument("--window-size", type=float, help="window length in lines or seconds")
    g.add_argument("--window-step", type=float, help="sliding step (default half the size)")
    g.add_argument("--timeout", type=float, help="close id sessions after this many idle seconds (event time)")
    g.add_argument("--max-open", type=int, help="bound on open sessions (oldest closed early)")
    m = p.add_argument_group("models")
    for stage, what in (("fast", "R-Log-fast (answer-first verdicts)"), ("full", "R-Log (escalations: root cause, fix)")):
        m.add_argument(f"--{stage}-model", help=f"{what}: local HF folder or 'smollm2-135m-instruct'")
        m.add_argument(f"--{stage}-adapter", help=f"LoRA adapter folder for the {stage} model")
        m.add_argument(f"--{stage}-batch-size", type=int, help=f"sessions per {stage} generate call")
        m.add_argument(f"--{stage}-max-new-tokens", type=int, help=f"decode budget of the {stage} model")
    m.add_argument("--no-escalate", action="store_true", help="fast model only (no root cause / action)")
