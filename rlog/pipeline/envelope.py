"""JSON envelopes: log shippers (Fluent Bit, Vector, Filebeat, our simulator) wrap each line
in a JSON object with the message and where it came from.

The envelope's source key decides which parser and Drain3 miner a line goes to, so logs
of different formats can share one topic or file. Raw text lines pass through untouched.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

MESSAGE_FIELDS = ("message", "log", "msg")
SOURCE_FIELDS = ("source", "service", "app")
HOST_FIELDS = ("host", "hostname")


class EnvelopeError(ValueError):
    """A line that should have been a JSON envelope but is not usable; the text is the reason."""


@dataclass(frozen=True, slots=True)
class Unwrapped:
    message: str
    source: str | None = None
    host: str | None = None


def _first_str(obj: dict, keys: tuple[str, ...]) -> str | None:
    for k in keys:
        v = obj.get(k)
        if isinstance(v, str) and v:
            return v
        if isinstance(v, dict):  # Vector / ECS style {"host": {"name": ...}}
            name = v.get("name")
            if isinstance(name, str) and name:
                return name
    return None


def unwrap(text: str, mode: str = "auto") -> Unwrapped:
    """The log message inside ``text`` and its source/host, if it is an envelope.

    ``auto``: a JSON object with a message field is an envelope; anything else (including
    JSON without a message field, e.g. structured app logs) is the message itself.
    ``json``: every line must be an envelope (raises EnvelopeError otherwise).
    ``none``: never unwrap.
    """
    if mode == "none":
        return Unwrapped(text)
    stripped = text.lstrip()
    if not stripped.startswith("{"):
        if mode == "json":
            raise EnvelopeError("not a JSON object (parse.envelope is 'json')")
        return Unwrapped(text)
    try:
        obj = orjson.loads(stripped)
    except orjson.JSONDecodeError as e:
        if mode == "json":
            raise EnvelopeError(f"invalid JSON: {e}") from None
        return Unwrapped(text)
    if not isinstance(obj, dict):
        if mode == "json":
            raise EnvelopeError("JSON value is not an object")
        return Unwrapped(text)
    msg = next((obj[k] for k in MESSAGE_FIELDS if k in obj), None)
    if not isinstance(msg, str):
        if mode == "json":
            raise EnvelopeError(f"JSON record has no string message field ({'/'.join(MESSAGE_FIELDS)})")
        return Unwrapped(text)
    return Unwrapped(msg, _first_str(obj, SOURCE_FIELDS), _first_str(obj, HOST_FIELDS))
