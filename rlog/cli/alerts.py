"""``rlog alerts``: read alerts like an operator, from the alerts topic or a JSONL file."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

import orjson

from rlog.cli.common import add_config_flags
from rlog.config import load_config


def add_parsers(sub) -> None:
    p = sub.add_parser("alerts", help="print alerts as compact cards (from the alerts topic or a JSONL file)",
                       description="Read alerts from the worker's alerts topic (<stream.prefix>.alerts) or from a "
                                   "JSONL file (what `rlog demo` and `rlog analyze --alerts` write) and print each "
                                   "as a card: time range, source, verdict with probability, category, the failing "
                                   "line, interpretation, root cause, action and evidence lines. Fields filled by the "
                                   "evidence rule, not by a model, are marked (rule).")
    p.add_argument("file", nargs="?", help="a JSONL file of alerts ('-' for stdin); without it, the alerts topic")
    p.add_argument("--broker", help="Kafka bootstrap servers (default: $RLOG_KAFKA_BROKER, else stream.broker)")
    p.add_argument("--topic", help="topic to read (default: <stream.prefix>.alerts)")
    p.add_argument("--follow", "-f", action="store_true", help="keep printing new alerts until interrupted")
    p.add_argument("--new", action="store_true", help="only alerts published from now on (implies --follow)")
    p.add_argument("--json", action="store_true", help="print each alert's JSON, one per line (for piping)")
    p.add_argument("--oneline", action="store_true", help="one line per alert instead of a card")
    p.add_argument("--abnormal", action="store_true", help="only abnormal verdicts (leave out fail-open unknowns)")
    p.add_argument("--limit", type=int, default=None, help="stop after this many alerts")
    add_config_flags(p)
    p.set_defaults(func=cmd_alerts)


def _from_file(path: str) -> Iterator[bytes]:
    if path == "-":
        yield from (ln.encode() for ln in sys.stdin)
        return
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"no alerts file at {p}")
    with p.open("rb") as f:
        yield from f


def _from_topic(a: argparse.Namespace) -> Iterator[bytes]:
    from stream.kafka_io import follow_topic
    from stream.runner import resolve_bootstrap

    cfg = load_config(a.config)
    broker = resolve_bootstrap(cfg, a.broker)
    if broker is None:
        raise ValueError("no broker to read alerts from: give --broker HOST:PORT, set $RLOG_KAFKA_BROKER or "
                         "stream.broker, or read a file (rlog alerts FILE.jsonl)")
    topic = a.topic or f"{cfg.stream.prefix}.alerts"
    yield from follow_topic(broker, topic, from_beginning=not a.new, follow=a.follow or a.new)


def render(records: Iterable[bytes], *, as_json: bool = False, oneline: bool = False, abnormal_only: bool = False,
           limit: int | None = None, out=None) -> int:
    """Print each alert record; returns how many were printed. A line that is not an alert is named on stderr."""
    from rlog.cascade.cards import card, one_line

    out = out or sys.stdout
    shown = 0
    for n, raw in enumerate(records, 1):
        raw = raw.strip()
        if not raw:
            continue
        try:
            alert = orjson.loads(raw)
            if not isinstance(alert, dict) or "verdict" not in alert:
                raise ValueError("not an alert object")
        except (orjson.JSONDecodeError, ValueError) as e:
            print(f"rlog alerts: record {n} is not an alert ({e}): {raw[:80]!r}", file=sys.stderr)
            continue
        if abnormal_only and alert.get("verdict") != "abnormal":
            continue
        if as_json:
            out.write(orjson.dumps(alert).decode() + "\n")
        else:
            out.write((one_line(alert) if oneline else card(alert) + "\n") + "\n")
        out.flush()
        shown += 1
        if limit is not None and shown >= limit:
            break
    return shown


def cmd_alerts(a: argparse.Namespace) -> int:
    records = _from_file(a.file) if a.file else _from_topic(a)
    shown = render(records, as_json=a.json, oneline=a.oneline, abnormal_only=a.abnormal, limit=a.limit)
    if not a.json:
        print(f"rlog alerts: {shown} alert(s)", file=sys.stderr)
    return 0
