"""Parser-state checkpoints on a compacted topic, keyed by input partition.

A checkpoint holds the last input offset folded in and the whole pipeline state (Drain3
templates, pending multi-line records, open sessions). The parse role writes one before
it acknowledges the input it covers, so committed offsets never run ahead of saved state;
on start it reads the latest checkpoint of each partition back.
"""

from __future__ import annotations

import hashlib
import logging
import time
import zlib

import orjson

from rlog.config import RlogConfig
from rlog.pipeline.pipeline import Pipeline

log = logging.getLogger(__name__)
VERSION = 1


def config_fingerprint(cfg: RlogConfig) -> str:
    """State is only valid for the parse and session settings that produced it."""
    data = orjson.dumps({"parse": cfg.parse.model_dump(mode="json"), "session": cfg.session.model_dump(mode="json")},
                        option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(data, digest_size=8).hexdigest()


class PartitionState:
    """Parser + sessionizer state of one input partition, with its event clock.

    ``offset`` is the last input offset folded into this state: after a restore, events at
    or below it are skipped (they are already in the state).
    """

    def __init__(self, cfg: RlogConfig) -> None:
        self.pipe = Pipeline(cfg)
        self.fingerprint = config_fingerprint(cfg)
        self.offset = -1
        self.event_ts: float | None = None
        self.wall = time.monotonic()
        self.dirty = False

    def now(self) -> float | None:
        """Event time now: the last event's time advanced by the wall time since (idle partitions)."""
        if self.event_ts is None:
            return None
        return self.event_ts + (time.monotonic() - self.wall)


def snapshot_state(st: PartitionState) -> bytes:
    """A ``PartitionState`` as compressed JSON."""
    body = {"v": VERSION, "fingerprint": st.fingerprint, "offset": st.offset, "event_ts": st.event_ts,
            "pipeline": st.pipe.state()}
    return zlib.compress(orjson.dumps(body), 3)


def load_snapshot(data: bytes, cfg: RlogConfig) -> PartitionState | None:
    """A ``PartitionState`` from a checkpoint, or None when it does not fit this config."""
    body = orjson.loads(zlib.decompress(data))
    fp = config_fingerprint(cfg)
    if body.get("v") != VERSION or body.get("fingerprint") != fp:
        log.warning("ignoring a parser checkpoint written with other parse/session settings "
                    "(templates and open sessions start afresh)")
        return None
    st = PartitionState(cfg)
    st.pipe.load_state(body["pipeline"])
    st.offset, st.event_ts = body["offset"], body["event_ts"]
    return st


def restore_states(bootstrap: str, topic: str, cfg: RlogConfig) -> dict[int, PartitionState]:
    """The latest checkpoint of every input partition found on ``topic`` ({} when none)."""
    from stream.kafka_io import read_topic_to_end

    latest: dict[int, bytes] = {}
    for rec in read_topic_to_end(bootstrap, topic, timeout_s=120.0):
        if rec.key is None:
            continue
        try:
            latest[int(rec.key)] = rec.value
        except ValueError:
            continue
    out = {}
    for partition, data in latest.items():
        try:
            st = load_snapshot(data, cfg)
        except (zlib.error, orjson.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            log.error("partition %d: unreadable parser checkpoint (%s); starting it afresh", partition, e)
            continue
        if st is not None:
            out[partition] = st
    return out
