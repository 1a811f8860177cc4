"""HMAC seals on the records a worker writes for itself (parser checkpoints, verdict memory).

Anyone who can write the parse-state topic could otherwise hand a worker open sessions it
never saw, and the worker would publish them (and their alerts) as real. With a key set
(``RLOG_STATE_KEY``, from a Kubernetes Secret in the chart), every state record carries an
HMAC-SHA256 over the topic, the record key and the payload; a record whose seal does not
verify is refused like a corrupt one. The seal binds the record to its topic and key, so a
checkpoint cannot be copied to another partition or deployment. It does not stop replaying an
older record of the same key: that needs write access, and costs the replayed input again
(at-least-once), never a forged session.

Rotation: ``RLOG_STATE_KEY_PREVIOUS`` still verifies (not signs) while workers move to a new key.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass

from rlog.errors import RlogError
from rlog.wire.errors import MALFORMED, UNAUTHENTIC, RecordError

MAGIC = b"RLS1"
_MAC = hashlib.sha256().digest_size
KEY_ENV, PREVIOUS_ENV = "RLOG_STATE_KEY", "RLOG_STATE_KEY_PREVIOUS"
MIN_KEY_BYTES = 16


class StateKeyError(RlogError, ValueError):
    """A state key that cannot protect anything (too short)."""


@dataclass(frozen=True)
class StateKeys:
    """The key that seals (and verifies), and older keys that only verify. ``None``: no key set."""

    current: bytes | None = None
    previous: tuple[bytes, ...] = ()

    @property
    def enabled(self) -> bool:
        return self.current is not None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> StateKeys:
        env = os.environ if env is None else env
        keys = []
        for name in (KEY_ENV, PREVIOUS_ENV):
            raw = (env.get(name) or "").strip()
            if raw and len(raw.encode()) < MIN_KEY_BYTES:
                raise StateKeyError(f"{name} is {len(raw.encode())} bytes: use at least {MIN_KEY_BYTES} random bytes "
                                    "(e.g. `openssl rand -hex 32`)")
            keys.append(raw.encode() if raw else None)
        current, previous = keys
        if current is None and previous is not None:
            raise StateKeyError(f"{PREVIOUS_ENV} is set without {KEY_ENV}: set the new key in {KEY_ENV}")
        return cls(current, (previous,) if previous is not None else ())


def _mac(key: bytes, name: bytes, payload: bytes) -> bytes:
    return hmac.new(key, len(name).to_bytes(4, "big") + name + payload, hashlib.sha256).digest()


def seal(keys: StateKeys, name: bytes, payload: bytes) -> bytes:
    """``payload`` as stored under ``name`` (topic and record key): sealed when a key is set."""
    if keys.current is None:
        return payload
    return MAGIC + _mac(keys.current, name, payload) + payload


def unseal(keys: StateKeys, name: bytes, data: bytes, kind: str) -> bytes:
    """The payload of a stored record; ``RecordError`` (``unauthentic``) when a key is set and the
    record carries no seal that verifies. With no key set, a sealed record is read unverified
    and an unsealed one as it is (what a worker without a key wrote)."""
    sealed = data.startswith(MAGIC) and len(data) >= len(MAGIC) + _MAC
    if keys.current is None:
        return data[len(MAGIC) + _MAC:] if sealed else data
    if not sealed:
        raise RecordError(kind, UNAUTHENTIC, "it carries no seal and this worker has a state key: written by a worker "
                                             "without RLOG_STATE_KEY, or by someone else")
    mac, payload = data[len(MAGIC): len(MAGIC) + _MAC], data[len(MAGIC) + _MAC:]
    for key in (keys.current, *keys.previous):
        if hmac.compare_digest(mac, _mac(key, name, payload)):
            return payload
    if not payload:
        raise RecordError(kind, MALFORMED, "sealed but empty")
    raise RecordError(kind, UNAUTHENTIC, "its seal does not verify with this worker's state key (another key, "
                                         "another topic or record key, or altered)")
