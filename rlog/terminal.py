"""Log-derived text made safe to print on an operator's terminal.

A log line is written by whoever can make the logged program log: ESC sequences in it can
clear the screen, retitle the window (OSC), rewrite what was printed before or, on some
terminals, answer back as if typed. Bidirectional overrides make text read differently from
what it is. Every human-facing output of log text (alert cards, one-liners, tables, progress)
passes it through ``printable`` first: control characters are shown as escapes (``\\x1b``),
visible and inert, so nothing is hidden and nothing is executed. JSON output needs nothing:
its encoder escapes control characters itself.
"""

from __future__ import annotations

import unicodedata

# bidirectional embeddings, overrides and isolates, marks, and line/paragraph separators
_FORMAT = [0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x2028, 0x2029, 0xFEFF]


def _escape(cp: int) -> str:
    return f"\\x{cp:02x}" if cp < 0x100 else f"\\u{cp:04x}"


_TABLE = {cp: _escape(cp) for cp in range(0x100) if unicodedata.category(chr(cp)) == "Cc"}
_TABLE.update({cp: _escape(cp) for cp in _FORMAT})
_TABLE[ord("\t")] = " "


def printable(text: object) -> str:
    """``text`` as one inert run of characters: control and bidi characters escaped, tabs as spaces."""
    return str(text).translate(_TABLE)
