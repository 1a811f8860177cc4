"""``rlog alerts``: read alerts like an operator, from the alerts topic or a JSONL file."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

import orjson

from rlog.cli.common import add_config_flags
from rlog.config import load_config
from rlog.terminal import printable


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


def _from_file(path: str) -> Iterator[tuple[str, bytes]]:
    if path == "-":
        yield from ((f"line {n}", ln.encode()) for n, ln in enumerate(sys.stdin, 1))
        return
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"no alerts file at {p}")
    with p.open("rb") as f:
        yield from ((f"line {n}", ln) for n, ln in enumerate(f, 1))


def _from_topic(a: argparse.Namespace) -> Iterator[tuple[str, bytes]]:
    from stream.kafka_io import follow_topic
    from stream.runner import resolve_bootstrap

    cfg = load_config(a.config)
    broker = resolve_bootstrap(cfg, a.broker)
    if broker is None:
        raise ValueError("no broker to read alerts from: give --broker HOST:PORT, set $RLOG_KAFKA_BROKER or "
                         "stream.broker, or read a file (rlog alerts FILE.jsonl)")
    topic = a.topic or f"{cfg.stream.prefix}.alerts"
    for r in follow_topic(broker, topic, from_beginning=not a.new, follow=a.follow or a.new):
        yield f"{topic}[{r.partition}] offset {r.offset}", r.value


def render(records: Iterable[tuple[str, bytes | None]], *, as_json: bool = False, oneline: bool = False,
           abnormal_only: bool = False, limit: int | None = None, out=None, err=None) -> tuple[int, int]:
    """Print each alert record; returns (printed, refused). A record that is not an alert this
    version can show is one line on ``err`` naming where it is and why, and the rest go on."""
    from rlog.cascade.cards import card, one_line
    from rlog.wire import RecordError
    from rlog.wire.alerts import decode_alert

    out = out or sys.stdout
    err = err or sys.stderr
    shown = refused = 0
    for where, raw in records:
        if raw is None or not raw.strip():
            continue
        try:
            alert = decode_alert(raw.strip())
        except RecordError as e:
            refused += 1
            print(printable(f"rlog alerts: {where}: not an alert ({e.detail[:160]}): {raw[:80]!r}"), file=err)
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
    return shown, refused


def cmd_alerts(a: argparse.Namespace) -> int:
    if a.limit is not None and a.limit < 1:
        raise ValueError("--limit must be 1 or more")
    records = _from_file(a.file) if a.file else _from_topic(a)
    # closed here, not left to the garbage collector: the topic reader's consumer is closed at once,
    # whether the loop ends at --limit, at the end of the topic or on Ctrl-C
    with contextlib.closing(records):
        shown, refused = render(records, as_json=a.json, oneline=a.oneline, abnormal_only=a.abnormal, limit=a.limit)
    if not a.json:
        bad = f", {refused} unreadable record(s) skipped" if refused else ""
        print(f"rlog alerts: {shown} alert(s){bad}", file=sys.stderr)
    return 0
