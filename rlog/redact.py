"""Secrets never reach a log line, whoever writes it.

At debug level the Kafka clients log their whole configuration, SASL password included
(``-vv`` printed it in clear text). Their log calls cannot be changed, so every log record is
redacted where records are made: the message is formatted once and each secret in it
replaced by ``***``. Only when secrets are configured; otherwise records are left alone.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping

_SECRET_WORDS = ("PASSWORD", "SECRET", "TOKEN")


def secrets_from_env(env: Mapping[str, str] | None = None) -> list[str]:
    """Values of the ``RLOG_KAFKA_*`` variables that hold secrets (their name says password, secret or token)."""
    env = os.environ if env is None else env
    return [v for k, v in env.items() if k.startswith("RLOG_KAFKA_") and any(w in k for w in _SECRET_WORDS)
            and len(v) >= 4]


def install(secrets: Iterable[str]) -> None:
    """Redact ``secrets`` from every log record made from now on (idempotent for the same secrets)."""
    secrets = sorted({s for s in secrets if s}, key=len, reverse=True)
    if not secrets:
        return
    make = logging.getLogRecordFactory()
    if getattr(make, "rlog_secrets", None) == secrets:
        return

    def factory(*args, **kwargs) -> logging.LogRecord:
        record = make(*args, **kwargs)
        try:
            text = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is the logging module's to report
            return record
        if any(s in text for s in secrets):
            for s in secrets:
                text = text.replace(s, "***")
            record.msg, record.args = text, None
        return record

    factory.rlog_secrets = secrets  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)
