"""The single error type of the decoding boundary, and the guard that makes it the only one."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rlog.errors import RlogError

# ``reason`` values: short and few, they label metrics
MALFORMED, BOUNDS, UNAUTHENTIC = "malformed", "bounds", "unauthentic"


class RecordError(RlogError, ValueError):
    """A record rlog cannot use. ``kind`` names the record kind (``parse-state``, ``memory``,
    ``session``, ``escalation``, ``alert``), ``reason`` why: ``malformed`` (not the shape this
    version reads), ``bounds`` (the shape, but sizes no worker writes), ``unauthentic`` (its
    seal does not verify with this worker's key), or a caller's own (``settings``, ``topic``)."""

    def __init__(self, kind: str, reason: str, message: str) -> None:
        super().__init__(f"{kind} record {reason}: {message}")
        self.kind, self.reason, self.detail = kind, reason, message


class Bad(ValueError):
    """Raised by the shape checks inside a decoder; the guard turns it into ``RecordError``."""

    def __init__(self, message: str, reason: str = MALFORMED) -> None:
        super().__init__(message)
        self.reason = reason


@contextmanager
def decoding(kind: str) -> Iterator[None]:
    """Whatever goes wrong while one record is decoded is that record's fault: a ``RecordError``.

    The shape checks name what is wrong; anything they missed (a nested loader meeting a type
    it did not expect) is still caught here, because the bytes are untrusted and no record may
    stop a stage. Bugs outside a decoder are not caught: this wraps decoding only.
    """
    try:
        yield
    except RecordError:
        raise
    except Bad as e:
        raise RecordError(kind, e.reason, str(e)) from None
    except Exception as e:  # noqa: BLE001 - the boundary: any failure on untrusted bytes is the record's
        raise RecordError(kind, MALFORMED, f"{type(e).__name__}: {e}"[:300]) from e
