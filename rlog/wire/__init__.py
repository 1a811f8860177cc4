"""The one boundary every record rlog reads back crosses: decode, check, or refuse.

Whatever a worker reads from a topic (a parser checkpoint, its verdict memory, a session, an
escalation, an alert) may have been written by another version, cut short, corrupted or
forged. Each record kind has one decoder here that checks the shape and the bounds of what
it reads and builds the typed value; a decoder raises ``RecordError`` and nothing else, so a
caller counts the record, logs it with its key and offset, sets it aside (the dead-letter
topic, or a cold start for state) and carries on with what is valid. Records a worker writes
for itself (parse state, memory) can be sealed with an HMAC (``rlog.wire.seal``): a record
that fails the check is refused like a corrupt one, so writing the state topic does not
write alerts.
"""

from rlog.wire.errors import RecordError
from rlog.wire.seal import StateKeys, seal, unseal

__all__ = ["RecordError", "StateKeys", "seal", "unseal"]
