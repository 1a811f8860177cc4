"""The ``rlog`` command line: the composition root, and the only module that imports every layer.

One module per command group, each a thin shell over library functions; heavy parts
(models, Faust, Kafka, TRL) are imported inside the command that needs them, so
``rlog --help`` and ``rlog formats`` start in a blink.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Sequence

from rlog import redact
from rlog.cli import alerts, analyze, bench, info, lab, simulate, streaming, train
from rlog.errors import RlogError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rlog",
        description="Reasoning-based log anomaly detection: Drain3 templates, sessions, an answer-first "
                    "R-Log-fast model, escalation to R-Log for root cause and fix.",
    )
    p.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for group in (analyze, simulate, streaming, alerts, info, bench, lab, train):
        group.add_parsers(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    a = parser.parse_args(argv)
    logging.basicConfig(level=[logging.WARNING, logging.INFO, logging.DEBUG][min(a.verbose, 2)],
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    redact.install(redact.secrets_from_env())
    if a.command is None:
        parser.print_help()
        return 2
    try:
        return a.func(a)
    except (RlogError, ValueError) as e:  # bad config, missing model or data, unreachable broker, bad input
        print(f"rlog: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rlog: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`rlog alerts | head`): nothing left to say to it
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - so the interpreter's final flush is quiet
        return 141
    except OSError as e:  # a file or device the command reads or writes (disk full, permissions, a bad path)
        logging.getLogger("rlog").debug("I/O error", exc_info=True)
        where = f" ({e.filename})" if e.filename else ""
        print(f"rlog: error: {e.strerror or e}{where}", file=sys.stderr)
        return 2

