"""Shape checks for decoded JSON: each returns the value with its type or raises ``Bad``.

Small and strict on purpose: a bool is not a number, a number must be finite, text and
lists have a length bound. ``what`` names the field in the message an operator reads.
"""

from __future__ import annotations

import math
import zlib
from typing import Any

import orjson

from rlog.wire.errors import BOUNDS, Bad

# Far above anything rlog writes, far below what would exhaust memory.
MAX_INFLATED = 256 << 20


def json_bytes(data: Any, what: str) -> Any:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise Bad(f"{what}: no value")
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as e:
        raise Bad(f"{what} is not JSON ({e})") from None


def inflate(data: bytes, what: str, limit: int = MAX_INFLATED) -> bytes:
    """zlib data, refusing a bomb: at most ``limit`` bytes come out."""
    d = zlib.decompressobj()
    try:
        out = d.decompress(data, limit)
    except zlib.error as e:
        raise Bad(f"{what} is not compressed state ({e})") from None
    if d.unconsumed_tail:
        raise Bad(f"{what} inflates past {limit} bytes", BOUNDS)
    if not d.eof:
        raise Bad(f"{what} is cut short")
    return out


def _typed(v: Any, what: str, types: type | tuple, desc: str, none: bool = False) -> Any:
    if not (isinstance(v, types) or (none and v is None)):
        raise Bad(f"{what} is not {desc} (got {type(v).__name__})")
    return v


def obj(v: Any, what: str) -> dict:
    return _typed(v, what, dict, "an object")


def field(d: dict, key: str, what: str) -> Any:
    if key not in d:
        raise Bad(f"{what} has no {key!r}")
    return d[key]


def seq(v: Any, what: str, max_len: int | None = None, length: int | tuple[int, int] | None = None) -> list:
    if not isinstance(v, list):
        raise Bad(f"{what} is not a list (got {type(v).__name__})")
    if max_len is not None and len(v) > max_len:
        raise Bad(f"{what} holds {len(v)} items, more than {max_len}", BOUNDS)
    if length is not None:
        lo, hi = (length, length) if isinstance(length, int) else length
        if not lo <= len(v) <= hi:
            raise Bad(f"{what} has {len(v)} fields, not {lo if lo == hi else f'{lo}-{hi}'}")
    return v


def text(v: Any, what: str, max_chars: int | None = None) -> str:
    if not isinstance(v, str):
        raise Bad(f"{what} is not text (got {type(v).__name__})")
    if max_chars is not None and len(v) > max_chars:
        raise Bad(f"{what} is {len(v)} characters, more than {max_chars}", BOUNDS)
    return v


def opt_text(v: Any, what: str, max_chars: int | None = None) -> str | None:
    return None if v is None else text(v, what, max_chars)


def integer(v: Any, what: str, lo: int | None = None, hi: int | None = None) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise Bad(f"{what} is not a whole number (got {type(v).__name__})")
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise Bad(f"{what} = {v} is outside [{lo}, {hi}]", BOUNDS)
    return v


def number(v: Any, what: str, lo: float | None = None, hi: float | None = None) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise Bad(f"{what} is not a number (got {type(v).__name__})")
    v = float(v)
    if not math.isfinite(v):
        raise Bad(f"{what} is not finite")
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise Bad(f"{what} = {v} is outside [{lo}, {hi}]", BOUNDS)
    return v


def opt_number(v: Any, what: str, lo: float | None = None, hi: float | None = None) -> float | None:
    return None if v is None else number(v, what, lo, hi)


def opt_bool(v: Any, what: str) -> bool | None:
    return _typed(v, what, bool, "true, false or null", none=True)


def boolean(v: Any, what: str) -> bool:
    return _typed(v, what, bool, "true or false")


def one_of(v: Any, what: str, allowed: tuple) -> Any:
    if v not in allowed:
        raise Bad(f"{what} is {str(v)[:40]!r}, not one of {', '.join(map(str, allowed))}")
    return v
