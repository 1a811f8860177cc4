"""`rlog formats`, `rlog config`, `rlog model prepare`: what is built in, what is in effect, local models."""

from __future__ import annotations

import argparse

import yaml

from rlog.cli.common import add_config_flags, config_from_args
from rlog.tables import format_table


def add_parsers(sub) -> None:
    fm = sub.add_parser("formats", help="list the log format presets",
                        description="List built-in header formats; any Loghub-style pattern works too.")
    fm.set_defaults(func=cmd_formats)

    cf = sub.add_parser("config", help="print the effective configuration (file + RLOG_* env) as YAML",
                        description="Validate and print the configuration; errors name the field and its source.")
    add_config_flags(cf)
    cf.set_defaults(func=cmd_config)

    md = sub.add_parser("model", help="prepare local models", description="Model utilities (nothing is downloaded).")
    msub = md.add_subparsers(dest="model_command", metavar="ACTION", required=True)
    mp = msub.add_parser("prepare", help="convert the built-in SmolLM2 GGUF to an HF folder in the cache; print its path")
    mp.add_argument("name", nargs="?", default="smollm2-135m-instruct")
    mp.set_defaults(func=cmd_model_prepare)



def cmd_formats(a: argparse.Namespace) -> int:
    from rlog.pipeline.formats import PRESETS

    rows = [(f.name, f.pattern, ",".join(f.time_fields) or "-", f.label_field or "-") for f in PRESETS.values()]
    print(format_table(("name", "pattern", "time", "label"), rows))
    return 0


def cmd_config(a: argparse.Namespace) -> int:
    cfg = config_from_args(a)
    print(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False), end="")
    return 0


def cmd_model_prepare(a: argparse.Namespace) -> int:
    from rlog.models import resolve_model

    print(resolve_model(a.name))
    return 0
