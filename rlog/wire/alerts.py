"""Decoder of an alert record as readers of the alerts topic get it (``rlog alerts``).

Alerts of any rlog version are read: a field may be absent, but a field that is present must
have the type the cards print, so a malformed record is one error line, not a crash.
Text is returned as written; making it safe for a terminal is the printer's job
(``rlog.cascade.cards`` strips control characters from everything it prints).
"""

from __future__ import annotations

from typing import Any

from rlog.wire import shape as S
from rlog.wire.errors import decoding

ALERT = "alert"
_TEXTS = ("alert_id", "session_id", "source", "kind", "headline", "interpretation", "root_cause", "action", "rationale",
          "close_reason", "category_by")
_NUMBERS = ("start_ts", "end_ts", "confidence", "category_confidence")
MAX_ALERT_BYTES = 16 << 20


def decode_alert(value: bytes | None) -> dict:
    """An alert (a JSON object with a verdict), its printed fields type-checked."""
    with decoding(ALERT):
        if value is not None and len(value) > MAX_ALERT_BYTES:
            raise S.Bad(f"alert record of {len(value)} bytes", S.BOUNDS)
        a = S.obj(S.json_bytes(value, "alert record"), "alert")
        S.one_of(S.field(a, "verdict", "alert"), "verdict", ("abnormal", "normal", "unknown"))
        for k in _TEXTS:
            if a.get(k) is not None:
                S.text(a[k], k)
        if a.get("category") is not None:
            S.text(a["category"], "category", 64)
        if a.get("incident_id") is not None:
            S.text(a["incident_id"], "incident_id")
        for k in _NUMBERS:
            S.opt_number(a.get(k), k)
        if "n_lines" in a:
            S.integer(a["n_lines"], "n_lines", lo=0)
        for k in ("escalated", "cached"):
            if k in a:
                S.boolean(a[k], k)
        for k in ("fallback", "errors"):
            for x in S.seq(a.get(k) or [], k):
                S.text(x, k)
        models = S.obj(a.get("models") or {}, "models")
        for k, v in models.items():
            S.text(v, f"model {k[:40]!r}")
        for e in S.seq(a.get("evidence") or [], "evidence"):
            _evidence(e)
        return a


def _evidence(e: Any) -> None:
    if isinstance(e, str):  # alerts published before the evidence had counts: bare lines
        return
    d = S.obj(e, "evidence line")
    S.text(d.get("line", ""), "evidence text")
    S.opt_number(d.get("first_ts"), "evidence first time")
    S.opt_number(d.get("last_ts"), "evidence last time")
    S.integer(d.get("count", 1), "evidence count", lo=0)
    for m in S.seq(d.get("marks") or [], "evidence marks"):
        S.text(m, "evidence mark")
