"""Checkpoints on a compacted topic: parser state keyed by input partition, and verdict memory.

A parser checkpoint holds the last input offset folded in and the whole pipeline state
(Drain3 templates, pending multi-line records, open sessions). The parse role writes one
before it acknowledges the input it covers, so committed offsets never run ahead of saved
state; on start it reads the latest checkpoint of each partition back.

The model roles save their verdict memory under ``MEMORY_KEY`` (the most recent verdicts
and known-normal templates), so a restarted worker does not pay again for known sessions.
It is a cache: losing it costs model calls, never correctness.
"""

from __future__ import annotations

import hashlib
import logging
import time
import zlib
from collections.abc import Callable

import orjson

from rlog.config import RlogConfig
from rlog.pipeline.pipeline import Pipeline

log = logging.getLogger(__name__)
VERSION = 1


TIMING_ONLY = {"parse": {"multiline_flush_s"}, "session": {"timeout_s"}}


def config_fingerprint(cfg: RlogConfig) -> str:
    """State is only valid for the parse and session settings that produced it (settings that
    only say when to close or flush what is open leave the state valid, and a new one of them
    does not discard every checkpoint of an upgraded worker)."""
    data = orjson.dumps({"parse": cfg.parse.model_dump(mode="json", exclude=TIMING_ONLY["parse"]),
                         "session": cfg.session.model_dump(mode="json", exclude=TIMING_ONLY["session"])},
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
        self.topic = cfg.stream.input_topic  # offsets mean something only on the topic they were read from
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
    body = {"v": VERSION, "fingerprint": st.fingerprint, "topic": st.topic, "offset": st.offset,
            "event_ts": st.event_ts, "pipeline": st.pipe.state()}
    return zlib.compress(orjson.dumps(body), 3)


class Discarded(ValueError):
    """A readable checkpoint this worker must not continue from; ``reason`` names why (a metric label)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def load_snapshot(data: bytes, cfg: RlogConfig) -> PartitionState:
    """A ``PartitionState`` from a checkpoint; ``Discarded`` when it does not fit this worker.

    Its offset counts lines of the topic it was read from: a checkpoint of another input topic
    (the prefix reused for a new topic) would make the worker skip that many lines of the new
    one, so it is discarded, as one made with other parse/session settings is."""
    body = orjson.loads(zlib.decompress(data))
    fp = config_fingerprint(cfg)
    if body.get("v") != VERSION or body.get("fingerprint") != fp:
        raise Discarded("settings", "written with other parse/session settings")
    topic = body.get("topic")  # absent in checkpoints of earlier versions: the topic they were read from is unknown
    if topic is not None and topic != cfg.stream.input_topic:
        raise Discarded("topic", f"written for input topic {topic!r}, this worker reads {cfg.stream.input_topic!r}")
    st = PartitionState(cfg)
    st.pipe.load_state(body["pipeline"])
    st.offset, st.event_ts = body["offset"], body["event_ts"]
    return st


# A checkpoint bigger than one record (thousands of open sessions) is written in pieces, in
# one of two slots per key: ``<key>#<slot>#<i>`` records carrying the pieces, then ``<key>``
# itself carrying a manifest (slot, generation, piece count). Each write uses the slot the
# current manifest does not point to, and the manifest goes last, so a crash mid-write leaves
# the previous checkpoint whole; the topic stays bounded (two slots, compacted by key). A
# checkpoint that fits is one record, as before. ``slots`` (key -> slot in use) is filled by
# ``latest_checkpoints`` on restore and kept up to date by ``checkpoint_records``.
_CHUNK, _MANIFEST = b"RLCK", b"RLCM"


def checkpoint_records(key: bytes, data: bytes, limit: int, slots: dict[bytes, str]) -> list[tuple[bytes, bytes]]:
    """The records that store ``data`` under ``key``, none over ``limit`` bytes, in write order."""
    if len(data) <= limit:
        slots.pop(key, None)
        return [(key, data)]
    slot = "b" if slots.get(key) == "a" else "a"
    gen = f"{time.time_ns():x}"
    size = limit - 64  # room for the piece header
    pieces = [data[i: i + size] for i in range(0, len(data), size)]
    out = [(_piece_key(key, slot, i), _piece_head(gen, i) + piece) for i, piece in enumerate(pieces)]
    out.append((key, _MANIFEST + orjson.dumps({"slot": slot, "gen": gen, "pieces": len(pieces), "bytes": len(data)})))
    slots[key] = slot
    return out


def _piece_key(key: bytes, slot: str, i: int) -> bytes:
    return b"%s#%s#%d" % (key, slot.encode(), i)


def _piece_head(gen: str, i: int) -> bytes:
    return b"%s%s:%d\n" % (_CHUNK, gen.encode(), i)


def latest_checkpoints(records, slots: dict[bytes, str] | None = None) -> dict[bytes, bytes]:
    """The latest whole checkpoint under each key of a state topic's records (pieces put together)."""
    latest: dict[bytes, bytes] = {}
    for rec in records:
        if rec.key is not None and rec.value is not None:
            latest[bytes(rec.key)] = bytes(rec.value)
    out: dict[bytes, bytes] = {}
    for key, value in latest.items():
        if b"#" in key:
            continue
        if not value.startswith(_MANIFEST):
            out[key] = value
            continue
        m = orjson.loads(value[len(_MANIFEST):])
        if slots is not None:
            slots[key] = m["slot"]
        parts = []
        for i in range(m["pieces"]):
            piece = latest.get(_piece_key(key, m["slot"], i), b"")
            head = _piece_head(m["gen"], i)
            if not piece.startswith(head):
                log.error("checkpoint %s: piece %d of %d is missing or from another write; not restored",
                          key.decode("utf-8", "replace"), i, m["pieces"])
                break
            parts.append(piece[len(head):])
        else:
            data = b"".join(parts)
            if len(data) == m["bytes"]:
                out[key] = data
    return out


def restore_states(bootstrap: str, topic: str, cfg: RlogConfig, slots: dict[bytes, str] | None = None,
                   discarded: Callable[[int, str], None] | None = None) -> dict[int, PartitionState]:
    """The latest checkpoint of every input partition found on ``topic`` ({} when none).

    A checkpoint that cannot be used is logged with the reason, reported to ``discarded``
    (partition, reason: ``settings``, ``topic``, ``unreadable``) and that partition starts cold."""
    from stream.kafka_io import read_topic_to_end

    latest: dict[int, bytes] = {}
    for key, value in latest_checkpoints(read_topic_to_end(bootstrap, topic, timeout_s=120.0), slots).items():
        try:
            latest[int(key)] = value
        except ValueError:
            continue
    out = {}
    for partition, data in latest.items():
        try:
            out[partition] = load_snapshot(data, cfg)
        except Discarded as e:
            log.warning("partition %d: parser checkpoint %s; its templates and open sessions start afresh",
                        partition, e)
            if discarded is not None:
                discarded(partition, e.reason)
        except (zlib.error, orjson.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            log.error("partition %d: unreadable parser checkpoint (%s); starting it afresh", partition, e)
            if discarded is not None:
                discarded(partition, "unreadable")
    return out


MEMORY_KEY = b"rlog-memory"


def memory_fingerprint(cfg: RlogConfig) -> str:
    """Remembered verdicts are only valid for the models, view and thresholds that made them."""
    c = cfg.cascade
    data = orjson.dumps({"fast": c.fast.model_dump(mode="json", include={"model", "adapter", "backend"}),
                         "full": c.full.model_dump(mode="json", include={"model", "adapter", "backend"}),
                         "view": c.view.model_dump(mode="json"), "key": c.memory.key, "threshold": c.threshold,
                         "band": c.band, "scoring": c.scoring, "fusion": c.fusion, "verdict": c.verdict,
                         "below": c.escalate_below},
                        option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(data, digest_size=8).hexdigest()


def snapshot_memory(memory: dict, cfg: RlogConfig) -> bytes:
    return zlib.compress(orjson.dumps({"v": VERSION, "fingerprint": memory_fingerprint(cfg), "memory": memory}), 3)


def load_memory_snapshot(data: bytes, cfg: RlogConfig) -> dict | None:
    """The saved memory, or None when it was made with other models or settings."""
    body = orjson.loads(zlib.decompress(data))
    if body.get("v") != VERSION or body.get("fingerprint") != memory_fingerprint(cfg):
        log.warning("ignoring a verdict memory saved with other models or cascade settings")
        return None
    return body["memory"]


def restore_memory(bootstrap: str, topic: str, cfg: RlogConfig, slots: dict[bytes, str] | None = None) -> dict | None:
    """The latest verdict memory on ``topic`` (None when there is none or it does not fit)."""
    from stream.kafka_io import read_topic_to_end

    latest = latest_checkpoints(read_topic_to_end(bootstrap, topic, timeout_s=120.0), slots).get(MEMORY_KEY)
    if latest is None:
        return None
    try:
        return load_memory_snapshot(latest, cfg)
    except (zlib.error, orjson.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        log.error("unreadable verdict memory (%s); starting with an empty one", e)
        return None
