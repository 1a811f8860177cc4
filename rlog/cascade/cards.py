"""Alerts as an operator reads them: a compact card per alert, or one line.

Works on the alert's JSON (a dict), not on ``Alert``, so it reads what any rlog version
published to the topic (``rlog alerts``, after ``rlog.wire.alerts`` checked its fields), and
what ``make demo`` prints as alerts arrive. Every field is log-derived or could be: what is
returned is ``printable`` (control characters escaped), safe to write to a terminal.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from rlog.terminal import printable

_TEXT = (("interpretation", "what"), ("root_cause", "cause"), ("action", "do"))


def _clock(ts: float | None, with_date: bool = True) -> str:
    if ts is None:
        return "?"
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S" if with_date else "%H:%M:%S", time.gmtime(float(ts)))
    except (OverflowError, OSError, ValueError):
        return "?"


def _span(a: Mapping) -> str:
    start, end = a.get("start_ts"), a.get("end_ts")
    if start is None and end is None:
        return "no timestamps"
    same_day = start is not None and end is not None and _clock(start)[:10] == _clock(end)[:10]
    return f"{_clock(start)} → {_clock(end, not same_day)} UTC"


def _pct(p: float | None) -> str:
    return f" {p:.0%}" if isinstance(p, int | float) else ""


def _cut(text: str, n: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"


def card(a: Mapping, width: int = 110) -> str:
    """A multi-line card: when, where, verdict and probability, category, the failing line, what/cause/do, evidence."""
    filled = set(a.get("fallback") or [])
    cat = a.get("category") or "-"
    head = (f"{a.get('verdict', '?').upper()}{_pct(a.get('confidence'))}  {cat}{_pct(a.get('category_confidence'))}"
            f"{' (rule)' if 'category' in filled else ''}  {a.get('source', '?')}  {_span(a)}  "
            f"{a.get('n_lines', '?')} lines")
    out = [head]
    if a.get("headline"):
        out.append(f"  ! {_cut(a['headline'], width - 4)}")
    for key, label in _TEXT:
        value = a.get(key) or ""
        if value:
            mark = " (rule)" if key in filled else ""
            out.append(f"  {label + mark + ':':<12} {_cut(value, width - 15)}")
    for e in a.get("evidence") or []:
        if isinstance(e, Mapping):
            when = _clock(e.get("first_ts"), False)
            if e.get("last_ts") is not None and e.get("last_ts") != e.get("first_ts"):
                when += "–" + _clock(e.get("last_ts"), False)
            marks = " ".join(e.get("marks") or [])
            prefix = f"    ×{e.get('count', 1):<4} {when:<17} {('[' + marks + ']') if marks else '':<22} "
            out.append(prefix + _cut(e.get("line", ""), max(20, width - len(prefix))))
        else:  # alerts published before the evidence had counts: bare lines
            out.append("    " + _cut(str(e), width - 4))
    tail = [f"session {a.get('session_id', '?')}", f"alert {a.get('alert_id', '?')}"]
    if a.get("escalated"):
        tail.append("explained by " + (a.get("models") or {}).get("full", "R-Log"))
    if filled:
        tail.append("rule-filled: " + ", ".join(sorted(filled)))
    out.append("  " + " · ".join(tail))
    return "\n".join(printable(line) for line in out)


def one_line(a: Mapping, width: int = 100) -> str:
    """One line: verdict, category, and the root cause (else the failing line)."""
    what = a.get("root_cause") if "root_cause" not in (a.get("fallback") or []) else ""
    what = what or a.get("headline") or a.get("interpretation") or ""
    return printable(f"{a.get('verdict', '?'):<8} {_pct(a.get('confidence')).strip():>4} {(a.get('category') or '-'):<13} "
            f"{_cut(what, width)}")
