"""Checkpoints on a compacted topic: parser state keyed by input partition, and verdict memory.

A parser checkpoint holds the last input offset folded in and the whole pipeline state
(Drain3 templates, pending multi-line records, open sessions). The parse role writes one
before it acknowledges the input it covers, so committed offsets never run ahead of saved
state; on start it reads the latest checkpoint of each partition back.

The model roles save their verdict memory under ``MEMORY_KEY`` (the most recent verdicts
and known-normal templates), so a restarted worker does not pay again for known sessions.
It is a cache: losing it costs model calls, never correctness.

What is read back is untrusted: every record is unsealed (``rlog.wire.seal``, when
``RLOG_STATE_KEY`` is set) and decoded by ``rlog.wire.state``; one that fails is logged with its
key and offset, returned in ``refused`` for the caller to count and set aside, and that
partition (or the memory) starts afresh. No state record can stop a worker.
"""

from __future__ import annotations

import hashlib
import logging
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import orjson

from rlog.config import RlogConfig
from rlog.pipeline.pipeline import Pipeline
from rlog.wire import RecordError, StateKeys, seal, unseal
from rlog.wire import shape as S
from rlog.wire.errors import MALFORMED, decoding
from rlog.wire.state import MEMORY, PARSE_STATE, VERSION, decode_memory, decode_parse_state

log = logging.getLogger(__name__)
CHECKPOINT = "checkpoint"  # a chunked record's manifest and pieces


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

    def __init__(self, cfg: RlogConfig, pipe: Pipeline | None = None) -> None:
        self.pipe = pipe if pipe is not None else Pipeline(cfg)
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
    """A ``PartitionState`` as compressed JSON (sealed by the caller: ``sealed``)."""
    body = {"v": VERSION, "fingerprint": st.fingerprint, "topic": st.topic, "offset": st.offset,
            "event_ts": st.event_ts, "pipeline": st.pipe.state()}
    return zlib.compress(orjson.dumps(body), 3)


def seal_name(topic: str, key: bytes) -> bytes:
    """What a state record's seal binds it to: the state topic and the record key."""
    return topic.encode() + b"\0" + key


def sealed(keys: StateKeys, topic: str, key: bytes, data: bytes) -> bytes:
    return seal(keys, seal_name(topic, key), data)


def load_snapshot(data: bytes, cfg: RlogConfig) -> PartitionState:
    """A ``PartitionState`` from an unsealed checkpoint; ``RecordError`` when it cannot be used
    (reason ``settings`` or ``topic`` when it is readable but made for another worker: its
    offsets count lines of another topic, or its state was cut with other settings)."""
    cp = decode_parse_state(data, cfg, config_fingerprint(cfg))
    st = PartitionState(cfg, cp.pipeline)
    st.offset, st.event_ts = cp.offset, cp.event_ts
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


@dataclass(frozen=True)
class Refused:
    """A state record not restored: its key, where it lies, and why (``error.reason``: a metric label)."""

    key: bytes
    offset: int
    error: RecordError
    raw: bytes = b""


def _manifest(value: bytes) -> dict:
    with decoding(CHECKPOINT):
        m = S.obj(S.json_bytes(value[len(_MANIFEST):], "checkpoint manifest"), "checkpoint manifest")
        S.one_of(S.field(m, "slot", "manifest"), "manifest slot", ("a", "b"))
        S.text(S.field(m, "gen", "manifest"), "manifest generation", 32)
        S.integer(S.field(m, "pieces", "manifest"), "manifest pieces", lo=1, hi=1 << 16)
        S.integer(S.field(m, "bytes", "manifest"), "manifest size", lo=0)
        return m


def latest_checkpoints(records, slots: dict[bytes, str] | None = None,
                       refused: list[Refused] | None = None) -> dict[bytes, bytes]:
    """The latest whole checkpoint under each key of a state topic's records (pieces put together).

    A manifest that cannot be read, or whose pieces are not all there, is appended to ``refused``
    (when given) and left out: the caller starts that key afresh."""
    return {k: data for k, (_, data) in _latest_checkpoints(records, slots, refused).items()}


def _latest_checkpoints(records, slots: dict[bytes, str] | None,
                        refused: list[Refused] | None) -> dict[bytes, tuple[int, bytes]]:
    """``latest_checkpoints``, each with the offset of its record (the manifest's, when in pieces)."""
    latest: dict[bytes, tuple[int, bytes]] = {}
    for rec in records:
        if rec.key is not None and rec.value is not None:
            latest[bytes(rec.key)] = (getattr(rec, "offset", -1), bytes(rec.value))
    out: dict[bytes, tuple[int, bytes]] = {}

    def refuse(key: bytes, offset: int, reason: str, message: str, raw: bytes) -> None:
        err = RecordError(CHECKPOINT, reason, message)
        log.error("state record %r at offset %d refused (%s); not restored", key.decode("utf-8", "replace")[:80],
                  offset, err)
        if refused is not None:
            refused.append(Refused(key, offset, err, raw[:4096]))

    for key, (offset, value) in latest.items():
        if b"#" in key:
            continue
        if not value.startswith(_MANIFEST):
            out[key] = (offset, value)
            continue
        try:
            m = _manifest(value)
        except RecordError as e:
            refuse(key, offset, e.reason, e.detail, value)
            continue
        if slots is not None:
            slots[key] = m["slot"]
        parts = []
        for i in range(m["pieces"]):
            piece = latest.get(_piece_key(key, m["slot"], i), (-1, b""))[1]
            head = _piece_head(m["gen"], i)
            if not piece.startswith(head):
                refuse(key, offset, MALFORMED, f"piece {i} of {m['pieces']} is missing or from another write", value)
                break
            parts.append(piece[len(head):])
        else:
            data = b"".join(parts)
            if len(data) == m["bytes"]:
                out[key] = (offset, data)
            else:
                refuse(key, offset, MALFORMED, f"its pieces hold {len(data)} bytes, the manifest says {m['bytes']}",
                       value)
    return out


def restore_states(bootstrap: str, topic: str, cfg: RlogConfig, slots: dict[bytes, str] | None = None,
                   discarded: Callable[[int, str], None] | None = None, *, keys: StateKeys | None = None,
                   refused: list[Refused] | None = None) -> dict[int, PartitionState]:
    """The latest checkpoint of every input partition found on ``topic`` ({} when none).

    A checkpoint that cannot be used (corrupt, forged, out of bounds, made for other settings
    or another topic) is logged with its key, offset and reason, reported to ``discarded``
    (partition, reason), appended to ``refused`` and that partition starts cold. Nothing a
    state record holds can stop the worker."""
    from stream.kafka_io import read_topic_to_end

    keys = StateKeys.from_env() if keys is None else keys
    bad: list[Refused] = []
    latest = _latest_checkpoints(read_topic_to_end(bootstrap, topic, timeout_s=120.0), slots, bad)
    for r in bad:
        if r.key.isdigit() and discarded is not None:
            discarded(int(r.key), r.error.reason)
    out = {}
    for key, (offset, value) in latest.items():
        if not key.isdigit() or len(key) > 9:
            continue  # the verdict memory, or a key no worker writes
        partition = int(key)
        try:
            out[partition] = load_snapshot(unseal(keys, seal_name(topic, key), value, PARSE_STATE), cfg)
        except RecordError as e:
            if e.reason in ("settings", "topic"):
                log.warning("partition %d: parser checkpoint %s; its templates and open sessions start afresh",
                            partition, e.detail)
            else:
                log.error("partition %d: parser checkpoint at offset %d of %s refused (%s); its templates and open "
                          "sessions start afresh", partition, offset, topic, e)
                bad.append(Refused(key, offset, e, value[:4096]))
            if discarded is not None:
                discarded(partition, e.reason)
    if refused is not None:
        refused.extend(bad)
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


def load_memory_snapshot(data: bytes, cfg: RlogConfig) -> dict:
    """The saved memory (unsealed), checked row by row; ``RecordError`` when it cannot be used
    (reason ``settings`` when made with other models or cascade settings)."""
    return decode_memory(data, memory_fingerprint(cfg), max(cfg.cascade.memory.persist, 1) * 4)


def restore_memory(bootstrap: str, topic: str, cfg: RlogConfig, slots: dict[bytes, str] | None = None, *,
                   keys: StateKeys | None = None, refused: list[Refused] | None = None) -> dict | None:
    """The latest verdict memory on ``topic``: None when there is none or it cannot be used (logged
    with its offset and reason, appended to ``refused``): a cache, the worker starts with an empty one."""
    from stream.kafka_io import read_topic_to_end

    keys = StateKeys.from_env() if keys is None else keys
    bad: list[Refused] = []
    latest = _latest_checkpoints(read_topic_to_end(bootstrap, topic, timeout_s=120.0), slots, bad).get(MEMORY_KEY)
    bad = [r for r in bad if r.key == MEMORY_KEY]
    result = None
    if latest is not None:
        offset, data = latest
        try:
            result = load_memory_snapshot(unseal(keys, seal_name(topic, MEMORY_KEY), data, MEMORY), cfg)
        except RecordError as e:
            if e.reason == "settings":
                log.warning("ignoring a verdict memory saved with other models or cascade settings")
            else:
                log.error("verdict memory at offset %d of %s refused (%s); starting with an empty one", offset, topic, e)
                bad.append(Refused(MEMORY_KEY, offset, e, data[:4096]))
    if refused is not None:
        refused.extend(bad)
    return result
