"""Plain aligned text tables for terminals, logs and CI output alike (CLI, training, benchmarks)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rlog.terminal import printable


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain aligned text table (no terminal features needed: logs and CI read it too); control
    characters in cells are shown escaped (``rlog.terminal``)."""
    # cells may hold log text (session ids, templates, root causes): printed inert
    cells = [[printable(h) for h in headers]] + [[("" if c is None else printable(c)) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    line = "  ".join("-" * w for w in widths)
    fmt = [("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True))).rstrip() for r in cells]
    return "\n".join([fmt[0], line, *fmt[1:]])
