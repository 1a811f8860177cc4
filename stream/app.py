"""The streaming plugin: a Faust app whose agents are the stages of the pipeline.

    <input topic> ─parse─► <prefix>.sessions ─detect─► <prefix>.escalations ─explain─► <prefix>.alerts
         │                      (R-Log-fast, batched)          (R-Log)                     ▲
         └─► <prefix>.dead-letters                  └── abnormal, not escalated ───────────┘

Each stage reads a topic as a consumer group, so CPU parsers and GPU model workers scale
on their own (``rlog run --role``). The logic is the plain-Python pipeline and cascade;
this module only moves bytes between topics, batches, acknowledges and measures.

Delivery is at-least-once: an input event is acknowledged (and its offset committed) only
after what it produced was delivered and, for the parse role, after a checkpoint of the
parser state covering it was written to ``<prefix>.parse-state``. A restarted worker
restores that state and skips input it already holds, so no session is lost; sessions
replayed after a crash carry the same ids and yield the same alert ids.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import orjson

from rlog.cascade.cascade import Cascade
from rlog.config import RlogConfig
from rlog.pipeline.lines import DeadLetter, decode_line
from rlog.pipeline.sessions import Session
from rlog.pipeline.sessions.sizing import fit_session
from rlog.wire import RecordError, StateKeys
from rlog.wire.sessions import Limits, decode_escalation, decode_session
from stream.checkpoint import (
    MEMORY_KEY,
    PartitionState,
    Refused,
    checkpoint_records,
    restore_memory,
    restore_states,
    sealed,
    snapshot_memory,
    snapshot_state,
)
from stream.kafka_io import BrokerUnavailable, PartitionRange, check_reachable
from stream.metrics import WorkerMetrics
from stream.poison import call_isolating

log = logging.getLogger(__name__)

ROLES = ("parse", "detect", "explain")


def topic_names(cfg: RlogConfig) -> dict[str, str]:
    p = cfg.stream.prefix
    return {"input": cfg.stream.input_topic, "sessions": f"{p}.sessions", "escalations": f"{p}.escalations",
            "alerts": f"{p}.alerts", "dead_letters": f"{p}.dead-letters", "state": f"{p}.parse-state"}


def faust_broker_url(bootstrap: str) -> str:
    return ";".join(f"kafka://{h.strip()}" for h in bootstrap.split(",") if h.strip())


def dead_letter_value(d: DeadLetter, stage: str, where: dict[str, Any]) -> bytes:
    return orjson.dumps({"stage": stage, "reason": d.reason, "source": d.source, **where, "raw": d.raw[:65536]})


def build_app(cfg: RlogConfig, bootstrap: str, roles: Iterable[str] = ROLES, *, fast=None, full=None,
              datadir: str | Path | None = None):
    """The Faust app for ``roles``; model backends are loaded lazily unless given."""
    import faust
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    roles = tuple(roles)
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown role(s) {', '.join(sorted(unknown))}: use {', '.join(ROLES)}")
    sc = cfg.stream
    names = topic_names(cfg)
    if datadir is None:
        from rlog.models import cache_dir

        datadir = cache_dir() / "faust"
    # Faust creates only the last level; on a fresh machine the cache folder may not exist yet
    # (it appears when the built-in model is first converted, which a custom model never does).
    Path(datadir).mkdir(parents=True, exist_ok=True)
    # One consumer group per role set: workers running the same roles share partitions, and
    # a parse-only fleet and a model fleet scale apart. (Do not mix all-role and single-role
    # workers on one input: both groups would read it.)
    group = group_id(sc.app_id, roles)
    app = faust.App(
        group, broker=faust_broker_url(bootstrap), store="memory://", autodiscover=False,
        datadir=str(datadir), web_enabled=True, web_port=sc.web_port, web_bind=sc.web_bind,
        # only /health and /metrics: Faust's own pages list tables, partition assignments, the
        # cluster's worker URLs and sensor counters to whoever reaches the port
        web_router_enabled=False, web_tables_enabled=False, web_stats_enabled=False, web_graph_enabled=False,
        topic_partitions=sc.partitions, topic_replication_factor=1, consumer_auto_offset_reset="earliest",
        broker_commit_interval=1.0, stream_buffer_maxsize=sc.buffer_maxsize, producer_acks=-1,
        broker_session_timeout=sc.session_timeout_s, broker_heartbeat_interval=min(3.0, sc.session_timeout_s / 3),
        producer_max_request_size=sc.max_record_bytes + 65_536,  # a bounded record plus its key and framing
        producer_request_timeout=sc.send_timeout_s,
        key_serializer="raw", value_serializer="raw", **_credentials(),
    )
    metrics = WorkerMetrics()
    limits = Limits.of(cfg)
    state_keys = StateKeys.from_env()
    if not state_keys.enabled and ("parse" in roles or cfg.cascade.memory.persist):
        log.warning("state records are not sealed: set RLOG_STATE_KEY (a Secret) so a worker refuses parser "
                    "checkpoints and verdict memory it did not write; without it, whoever can write %s can inject "
                    "sessions", names["state"])
    state_slots: dict[bytes, str] = {}  # which slot each chunked checkpoint is in (stream.checkpoint)
    app.rlog_metrics = metrics  # type: ignore[attr-defined]
    pool = concurrent.futures.ThreadPoolExecutor(sc.model_threads, thread_name_prefix="rlog-model")
    # the parse-state topic: one partition, compacted (only each key's latest checkpoint matters)
    topics = {k: app.topic(v, key_type=bytes, value_type=bytes, partitions=sc.partitions if k != "state" else 1,
                           compacting=True if k == "state" else None)
              for k, v in names.items()}
    health: dict[str, Any] = {"roles": list(roles), "started": time.time(), "model_failing": False}
    progress = {"at": time.monotonic(), "waiting": False}  # last batch taken or finished; input behind?

    def progressed() -> None:
        progress["at"] = time.monotonic()
    cascade_box: dict[str, Cascade] = {}
    refused_state: list[Refused] = []  # state records refused on restore, to set aside on the dead-letter topic

    cascade_lock = asyncio.Lock()

    async def cascade() -> Cascade:
        """The cascade, built on first use in the model pool: loading models and reading the
        saved memory takes seconds, during which the event loop must keep parsing and heartbeating."""
        if "c" not in cascade_box:
            async with cascade_lock:
                if "c" not in cascade_box:
                    await in_pool(build_cascade)
        if refused_state:
            await quarantine(refused_state)
        return cascade_box["c"]

    def build_cascade() -> None:
        if "c" not in cascade_box:
            from rlog.backends import load_stage_backends

            f, e = load_stage_backends(cfg.cascade, fast=fast or "detect" in roles, full=full or "explain" in roles)
            c = Cascade(f, e, cfg.cascade)  # type: ignore[arg-type]
            if cfg.cascade.memory.persist:
                saved = restore_memory(bootstrap, names["state"], cfg, state_slots, keys=state_keys,
                                       refused=refused_state)
                if saved is not None:
                    n = c.load_memory(saved)
                    log.info("restored verdict memory: %d verdicts, %d known-normal templates", n, len(c.known))
            memory_saved.update(t=time.monotonic(), calls=_calls(c))
            cascade_box["c"] = c

    memory_saved: dict[str, float] = {}

    def _calls(c: Cascade) -> int:
        return c.stats.fast_calls + c.stats.full_calls

    async def save_memory() -> None:
        """Checkpoint the verdict memory when models were called since the last save (throttled)."""
        c = cascade_box.get("c")
        if c is None or not cfg.cascade.memory.persist or _calls(c) == memory_saved.get("calls"):
            return
        if time.monotonic() - memory_saved.get("t", 0.0) < cfg.cascade.memory.save_interval_s:
            return
        snap = sealed(state_keys, names["state"], MEMORY_KEY, snapshot_memory(c.memory_state(), cfg))
        for k, v in checkpoint_records(MEMORY_KEY, snap, sc.max_record_bytes, state_slots):
            await send("state", k, v)
        memory_saved.update(t=time.monotonic(), calls=_calls(c))
        metrics.memory_entries.set(len(c.cache) + len(c.fast_cache) + len(c.full_cache) + len(c.known))
        metrics.open_incidents.set(len(c.incidents) + len(c.fast_incidents))

    async def in_pool(fn, *args, **kwargs):
        return await asyncio.get_running_loop().run_in_executor(pool, lambda: fn(*args, **kwargs))

    async def send(topic: str, key: bytes | None, value: bytes) -> None:
        """Deliver one record (acks=all) before the input that produced it is acknowledged.

        A send that fails (broker away past ``send_timeout_s``, topic deleted or not writable)
        is retried with backoff while /health says which topic cannot be written: the stage
        holds its input instead of crashing, and recovers by itself when the topic takes records
        again. A retried record may be delivered twice (at-least-once; ids are stable).
        """
        delay = 1.0
        while True:
            try:
                fut = await topics[topic].send(key=key, value=value)
                await fut
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - every failure to publish holds; none may crash the stage
                if _too_large(e):  # records are bounded below the limit: a bug, not an outage; the caller decides
                    raise
                metrics.publish_errors.labels(topic).inc()
                failing = health.setdefault("publish_failing", {})
                if names[topic] not in failing:
                    failing[names[topic]] = time.time()
                log.error("publishing to %s failed (%s: %s); retrying in %.0fs — the input behind it is held, "
                          "nothing is dropped", names[topic], type(e).__name__, e, delay)
                await asyncio.sleep(delay)
                delay = min(10.0, delay * 2)  # short: after an outage, sending resumes within seconds
                continue
            failing = health.get("publish_failing")
            if failing and failing.pop(names[topic], None) is not None:
                log.info("publishing to %s works again", names[topic])
                if not failing:
                    health.pop("publish_failing", None)
            return

    quarantined: set[tuple[bytes, int]] = set()

    async def quarantine(refused: list[Refused]) -> None:
        """State records refused on restore, set aside once each on the dead-letter topic (a forged or
        corrupt checkpoint stays there for whoever investigates; the compacted topic keeps it only
        until this worker's next checkpoint of the key replaces it)."""
        import base64

        while refused:
            r = refused.pop(0)
            metrics.records_refused.labels(r.error.kind, r.error.reason).inc()
            if (r.key, r.offset) in quarantined:
                continue
            if len(quarantined) > 10_000:
                quarantined.clear()
            quarantined.add((r.key, r.offset))
            await send("dead_letters", r.key, orjson.dumps({
                "stage": "restore", "reason": str(r.error), "topic": names["state"], "partition": 0,
                "offset": r.offset, "key": r.key.decode("utf-8", "replace"),
                "raw_base64": base64.b64encode(r.raw).decode()}))
            metrics.dead_letters.labels("restore").inc()

    async def dead_letter_event(stage: str, ev, reason: str, error: RecordError | None = None) -> None:
        """An internal-topic record no stage can read (written by another version, corrupted or forged)."""
        m = ev.message
        if error is not None:
            metrics.records_refused.labels(error.kind, error.reason).inc()
            log.error("%s: record at %s[%d] offset %d (key %r) refused: %s; set aside on the dead-letter topic",
                      stage, m.topic, m.partition, m.offset, bytes(ev.key or b"")[:80].decode("utf-8", "replace"), error)
        raw = bytes(ev.value or b"")[:65536].decode("utf-8", "replace")
        await send("dead_letters", ev.key, orjson.dumps({"stage": stage, "reason": reason, "topic": m.topic,
                                                         "partition": m.partition, "offset": m.offset, "raw": raw}))
        metrics.dead_letters.labels(stage).inc()

    async def publish_alerts(judged) -> None:
        c = await cascade()
        try:
            alerts = c.alerts(judged)
        except Exception:  # noqa: BLE001 - one session's alert must not stop the others: find it
            log.error("building alerts failed; building them one by one", exc_info=True)
            alerts = []
            for item in judged:
                try:
                    alerts.extend(c.alerts([item]))
                except Exception as e:  # noqa: BLE001 - that session's alert is a dead letter instead
                    s = item[0]
                    await send("dead_letters", s.session_id.encode(), orjson.dumps(
                        {"stage": "alert", "reason": f"building the alert failed ({type(e).__name__}: {e})",
                         "session_id": s.session_id, "source": s.source, "raw": ""}))
                    metrics.dead_letters.labels("alert").inc()
        for a in alerts:
            await send("alerts", a.alert_id.encode(), a.to_json())
            metrics.alerts.inc()

    async def isolating(stage: str, fn, items: list, **kwargs) -> tuple[list, list[tuple[int, BaseException]]]:
        """``fn(items)`` in the pool, holding through an outage, stepping over poison (stream.poison)."""
        c = await cascade()

        async def run(part: list) -> list:
            t0 = time.perf_counter()
            out = await in_pool(fn, part, **kwargs)
            health["model_failing"] = False
            metrics.model_latency.labels(stage).observe(time.perf_counter() - t0)
            return out

        def failed(e: BaseException, delay: float) -> None:
            health["model_failing"] = True
            metrics.model_errors.labels(stage).inc()
            log.error("%s model failing after retries (%s); retrying this batch in %.0fs — input is held, "
                      "consumer lag grows, nothing is dropped", stage, e, delay)

        async def alive() -> bool:
            return await in_pool(c.answers, stage)

        return await call_isolating(run, items, attempts=cfg.cascade.poison_after, alive=alive,
                                    wait=asyncio.sleep, failed=failed)

    # ------------------------------------------------------------------ parse
    if "parse" in roles:
        states: dict[int, PartitionState] = {}
        last_checkpoint = {"t": time.monotonic()}
        pending_acks: list = []
        parse_stream: dict[str, Any] = {}
        restore_lock = asyncio.Lock()
        # Restored partitions whose first delivered event is not yet compared with the offset
        # their checkpoint covers (see ``close_gap``).
        unchecked: set[int] = set()
        cold: set[int] = set()  # partitions started without a checkpoint, first event not yet seen

        async def adopt(partitions: Iterable[int]) -> None:
            """Give each newly owned partition its latest checkpoint, read from the broker now.

            Read on adoption, not once per process: after a rebalance the checkpoint another
            worker wrote is the one to continue from. A partition whose input is all committed
            gets no events, yet its open sessions must still close on the clock: the tick adopts
            every assigned partition, not only those that deliver input.
            """
            async with restore_lock:
                want = sorted(set(partitions) - set(states))
                if not want:
                    return
                refused: list[Refused] = []
                saved = await asyncio.to_thread(
                    restore_states, bootstrap, names["state"], cfg, state_slots,
                    lambda partition, reason: metrics.checkpoints_discarded.labels(reason).inc()
                    if partition in want else None, keys=state_keys, refused=refused)
                await quarantine([r for r in refused if not r.key.isdigit() or int(r.key) in want])
                for partition in want:
                    if partition in states:
                        continue
                    st = saved.get(partition) or PartitionState(cfg)
                    if st.offset >= 0:
                        log.info("partition %d: restored parser state at offset %d (%d templates, %d open sessions)",
                                 partition, st.offset, sum(len(t) for t in st.pipe.templates().values()),
                                 st.pipe.sessionizer.open_count)
                        unchecked.add(partition)
                    else:
                        log.info("partition %d: no usable parser checkpoint on %s; it starts with fresh parser state "
                                 "at the committed offset", partition, names["state"])
                        cold.add(partition)
                    states[partition] = st

        def release(partitions: Iterable[int]) -> None:
            """Forget revoked partitions: the new owner continues from their last checkpoint, and
            this worker must neither tick them (duplicate sessions) nor checkpoint them (it would
            overwrite the new owner's state). Their unacknowledged input is redelivered there."""
            gone = set(partitions)
            unchecked.difference_update(gone)
            cold.difference_update(gone)
            for partition in gone:
                if states.pop(partition, None) is not None:
                    log.info("partition %d: revoked, parser state released", partition)
            pending_acks[:] = [ev for ev in pending_acks if ev.message.partition not in gone]

        @app.on_partitions_revoked.connect
        async def on_revoked(sender, revoked, **kwargs) -> None:
            release(tp.partition for tp in revoked if tp.topic == names["input"])

        def assigned_input() -> set[int] | None:
            """Input partitions this worker owns now (None while the consumer is not up)."""
            try:
                return {tp.partition for tp in app.consumer.assignment() if tp.topic == names["input"]}
            except Exception:  # consumer not started yet
                return None

        # The agent and the timer both change partition state, emit sessions and checkpoint. A
        # checkpoint is taken only when no emit is in flight (a snapshot must not cover sessions
        # not yet delivered), captures the states and the input they cover in one step (nothing
        # folded in later is acknowledged with it), and checkpoints run one at a time (an older
        # snapshot never lands after a newer one). A skipped checkpoint is owed to the next call.
        ckpt_lock = asyncio.Lock()
        flow = {"inflight": 0, "owed": False}

        async def emit(sessions: list[Session], dead: list[DeadLetter], partition: int) -> None:
            flow["inflight"] += 1
            try:
                for s in sessions:
                    sent, value = fit_session(s, sc.max_record_bytes)
                    if sent is not s:
                        metrics.trimmed.labels("sessions").inc()
                    await send("sessions", s.session_id.encode(), value)
                metrics.sessions.inc(len(sessions))
                for d in dead:
                    await send("dead_letters", d.source.encode(),
                               dead_letter_value(d, "parse", {"topic": names["input"], "partition": partition,
                                                              "offset": d.seq}))
                    metrics.dead_letters.labels("parse").inc()
                    metrics.parse_errors.labels(d.reason.split(" (")[0]).inc()
            finally:
                flow["inflight"] -= 1

        async def checkpoint(stream, force: bool = False) -> None:
            """Write dirty partition states, then acknowledge the input they cover."""
            async with ckpt_lock:
                if not pending_acks and not any(st.dirty for st in states.values()):
                    return
                force = force or flow["owed"]
                if not force and time.monotonic() - last_checkpoint["t"] < sc.state_interval_s:
                    return
                if flow["inflight"]:
                    flow["owed"] = True
                    return
                flow["owed"] = False
                snaps = []
                for partition, st in states.items():
                    if st.dirty:
                        snaps.append((partition, snapshot_state(st)))
                        st.dirty = False
                acks = list(pending_acks)
                pending_acks.clear()
                for partition, snap in snaps:
                    key = str(partition).encode()
                    for k, v in checkpoint_records(key, sealed(state_keys, names["state"], key, snap), sc.max_record_bytes,
                                                   state_slots):
                        await send("state", k, v)
                    metrics.checkpoints.inc()
                for ev in acks:
                    await stream.ack(ev)
                last_checkpoint["t"] = time.monotonic()

        def refresh_gauges() -> None:
            metrics.templates.set(sum(len(t) for st in states.values() for t in st.pipe.templates().values()))
            metrics.open_sessions.set(sum(st.pipe.sessionizer.open_count for st in states.values()))

        async def fold(st: PartitionState, partition: int, topic: str, offset: int, key: bytes | None,
                       value: Any) -> None:
            """One input record into its partition's state (sessions it closes are emitted)."""
            raw = value if isinstance(value, bytes) else b"" if value is None else str(value).encode()
            source = key.decode("utf-8", "replace") if key else f"{topic}-{partition}"
            line = decode_line(raw, offset, cfg.parse.max_line_chars)
            ss, ps = st.pipe.sessionizer.stats, st.pipe.stats
            evicted, unsessioned, records, sources = ss.evicted, ss.unsessioned, ps.records, ps.sources_evicted
            sessions, dead = st.pipe.feed(source, line)
            metrics.evictions.inc(ss.evicted - evicted)
            metrics.unsessioned.inc(ss.unsessioned - unsessioned)
            metrics.sources_evicted.inc(ps.sources_evicted - sources)
            metrics.records.inc(ps.records - records)
            st.offset, st.dirty = offset, True
            if st.pipe.last_ts is not None and st.pipe.last_ts != st.event_ts:
                st.event_ts, st.wall = st.pipe.last_ts, time.monotonic()
            metrics.lines.inc()
            await emit(sessions, dead, partition)

        async def close_gap(st: PartitionState, partition: int, topic: str, first: int) -> None:
            """Fold in the input between a restored checkpoint and the group's commit.

            The group resumes at its committed offset, which is only right when the checkpoint
            covers everything before it. A worker that lost the partition but had not noticed yet
            (paused, partitioned from the group) can still land an older checkpoint after the new
            owner's newer one; a save can be lost. Then the first event delivered lies past the
            state's offset + 1, and continuing would join sessions across missing lines. Those
            offsets are read again from the topic (outside the group) before going on: at-least-once
            (sessions closed in the gap are published again, with the same lines), never a hole.
            """
            log.warning("partition %d: its checkpoint covers input up to offset %d but the group resumed at %d "
                        "(an older checkpoint landed after a newer one, or a save was lost); reading offsets "
                        "%d-%d again so no line is missing from the open sessions", partition, st.offset, first,
                        st.offset + 1, first - 1)
            delay = 1.0
            while st.offset + 1 < first:  # a failed read resumes where it stopped, holding the partition
                try:
                    await reread(st, partition, topic, first)
                    return
                except Exception as e:  # noqa: BLE001 - the broker may be briefly away: hold, retry, report
                    if states.get(partition) is not st:
                        return
                    log.error("partition %d: reading offsets %d-%d again failed (%s); retrying in %.0fs — the "
                              "partition is held, nothing is skipped", partition, st.offset + 1, first - 1, e, delay)
                    await asyncio.sleep(delay)
                    delay = min(30.0, delay * 2)

        async def reread(st: PartitionState, partition: int, topic: str, first: int) -> None:
            start = st.offset + 1
            reader = await asyncio.to_thread(PartitionRange, bootstrap, topic, partition, start, first)
            try:
                if reader.missing:
                    metrics.input_gap.inc(reader.missing)
                    log.error("partition %d: offsets %d-%d are no longer on the broker (retention); those %d "
                              "lines are lost to the open sessions", partition, start, start + reader.missing - 1,
                              reader.missing)
                    st.offset = start + reader.missing - 1
                while recs := await asyncio.to_thread(reader.chunk):
                    for r in recs:
                        if states.get(partition) is not st:  # revoked meanwhile: the new owner does this
                            return
                        await fold(st, partition, topic, r.offset, r.key, r.value)
                        metrics.reread.inc()
                st.offset = max(st.offset, first - 1)  # offsets the topic has no record at (compaction, markers)
            finally:
                await asyncio.to_thread(reader.close)

        async def parse_batch(stream, events) -> None:
            """Fold one batch of input into partition state, emit, checkpoint when due."""
            metrics.batch_size.labels("parse").observe(len(events))
            await adopt({ev.message.partition for ev in events})
            for ev in events:
                msg = ev.message
                st = states.get(msg.partition)
                if st is None:  # revoked while this batch was emitting: its new owner gets it again
                    continue
                if msg.partition in cold:
                    cold.discard(msg.partition)
                    if msg.offset > 0:
                        metrics.cold_starts.inc()
                        log.warning("partition %d: starting cold at offset %d: no checkpoint covers the input before "
                                    "it (the parse-state topic was emptied, or this group is new to a topic whose "
                                    "older records are gone); sessions that were open there are not completed, and "
                                    "input already acknowledged is not read again", msg.partition, msg.offset)
                if msg.partition in unchecked:
                    unchecked.discard(msg.partition)
                    if msg.offset > st.offset + 1:
                        await close_gap(st, msg.partition, msg.topic, msg.offset)
                        if states.get(msg.partition) is not st:
                            continue
                if msg.offset <= st.offset:  # already folded into the restored state
                    pending_acks.append(ev)
                    continue
                await fold(st, msg.partition, msg.topic, msg.offset, ev.key, ev.value)
                pending_acks.append(ev)
            refresh_gauges()
            await checkpoint(stream)

        @app.agent(topics["input"], name="rlog.parse")
        async def parse(stream):
            parse_stream["s"] = stream
            async for events in stream.noack_take(sc.take_max, within=sc.take_within_s):
                progressed()
                await parse_batch(stream, events)
                progressed()

        def caught_up(partition: int, st: PartitionState) -> bool:
            """Every record of the partition up to its end is folded into ``st``."""
            try:
                for tp in app.consumer.assignment():
                    if tp.topic == names["input"] and tp.partition == partition:
                        hw = app.consumer.highwater(tp)
                        return hw is not None and st.offset + 1 >= hw
            except Exception:  # noqa: BLE001 - consumer not up, or no fetch yet: not known to be caught up
                return False
            return False

        @app.timer(interval=1.0)
        async def parse_tick() -> None:
            """Close sessions of idle partitions (timeouts, time windows) and checkpoint."""
            owned = assigned_input()
            if owned is not None and "s" in parse_stream:
                release(set(states) - owned)
                await adopt(owned)
            closed_any = False
            for partition, st in list(states.items()):
                if states.get(partition) is not st:
                    continue
                records = st.pipe.stats.records
                # quiet sources (wall time): a held multi-line record is completed, windows no event
                # clock closes are closed; only once every record of the partition is folded in (with
                # a backlog, or fetching paused by backpressure, a source is not quiet: the worker is
                # behind). Before the event-time tick, so a held record joins its session first.
                closed, dead = st.pipe.idle() if caught_up(partition, st) else ([], [])
                now = st.now()
                if now is not None:
                    timed_out, late = st.pipe.tick(now)
                    closed, dead = closed + timed_out, dead + late
                if st.pipe.stats.records != records:
                    st.dirty = True  # a held record moved into the sessions: the state to save changed
                if closed or dead:
                    st.dirty = closed_any = True
                    await emit(closed, dead, partition)
            refresh_gauges()
            if "s" in parse_stream:
                # A session closed by the clock depends on wall time, which a replay does not
                # reproduce: save the closure at once, or a crash before the next checkpoint would
                # replay it open and emit the same session id again with more lines.
                await checkpoint(parse_stream["s"], force=closed_any)

    # ------------------------------------------------------------------ detect
    if "detect" in roles:
        fast_batch = cfg.cascade.fast.batch_size

        @app.agent(topics["sessions"], name="rlog.detect")
        async def detect(stream):
            async for events in stream.noack_take(fast_batch * 4, within=cfg.cascade.max_wait_s):
                progressed()
                metrics.batch_size.labels("detect").observe(len(events))
                sessions, ok_events = [], []
                for ev in events:
                    try:
                        sessions.append(decode_session(ev.value, limits))
                        ok_events.append(ev)
                    except RecordError as e:
                        await dead_letter_event("detect", ev, f"unreadable session record ({e})", e)
                        await stream.ack(ev)
                if sessions:
                    c = await cascade()
                    escalate = cfg.cascade.escalate  # the explain role may run in another process
                    hits0, mem0, known0 = c.stats.cache_hits, c.stats.memory_hits, c.stats.known_normal_hits
                    inc0 = c.stats.incident_hits
                    judged, poison = await isolating("fast", c.judge, sessions, escalate=False)
                    for i, e in poison:
                        await dead_letter_event("detect", ok_events[i], f"model stage failed on this session ({e})")
                    metrics.cache_lookups.labels("fast").inc(len(sessions))
                    metrics.cache_hits.labels("fast").inc(c.stats.cache_hits - hits0)
                    metrics.memory_hits.labels("signature").inc(c.stats.memory_hits - mem0)
                    metrics.memory_hits.labels("known_normal").inc(c.stats.known_normal_hits - known0)
                    metrics.memory_hits.labels("incident").inc(c.stats.incident_hits - inc0)
                    plain = []
                    for s, d, was_cached in judged:
                        metrics.verdicts.labels("fast", d.fast.verdict or "unreadable").inc()
                        if escalate and c.needs_escalation(d.fast):
                            # what was unfamiliar here travels along: the explain role's own known-normal
                            # memory may be empty, and incidents are matched by it
                            unfamiliar = sorted(c.unfamiliar(s))
                            sent, value = fit_session(s, sc.max_record_bytes, lambda sd, d=d, u=unfamiliar: {
                                "session": sd, "fast": asdict(d.fast), "fast_ms": d.fast_ms, "unfamiliar": u})
                            if sent is not s:
                                metrics.trimmed.labels("escalations").inc()
                            await send("escalations", s.session_id.encode(), value)
                            metrics.escalations.inc()
                        else:
                            plain.append((s, d, was_cached))
                    await publish_alerts(plain)
                    await save_memory()
                for ev in ok_events:
                    await stream.ack(ev)

    # ------------------------------------------------------------------ explain
    if "explain" in roles:
        @app.agent(topics["escalations"], name="rlog.explain")
        async def explain(stream):
            async for events in stream.noack_take(cfg.cascade.full.batch_size, within=cfg.cascade.max_wait_s):
                progressed()
                metrics.batch_size.labels("explain").observe(len(events))
                items, item_events, unfamiliar = [], [], {}
                for ev in events:
                    try:
                        esc = decode_escalation(ev.value, limits)
                    except RecordError as e:
                        await dead_letter_event("explain", ev, f"unreadable escalation record ({e})", e)
                        continue
                    items.append((esc.session, esc.fast, esc.fast_ms))
                    if esc.unfamiliar is not None:
                        unfamiliar[esc.session.session_id] = esc.unfamiliar
                    item_events.append(ev)
                if items:
                    c = await cascade()
                    reused0 = c.stats.explanations_reused
                    judged, poison = await isolating("full", c.explain, items, unfamiliar=unfamiliar)
                    metrics.explanations_reused.inc(c.stats.explanations_reused - reused0)
                    for i, e in poison:
                        await dead_letter_event("explain", item_events[i], f"model stage failed on this session ({e})")
                    for _, d, _ in judged:
                        metrics.verdicts.labels("full", d.verdict).inc()
                    await publish_alerts(judged)
                    await save_memory()
                for ev in events:
                    await stream.ack(ev)

    if cfg.cascade.memory.persist and ("detect" in roles or "explain" in roles):
        @app.timer(interval=min(5.0, cfg.cascade.memory.save_interval_s))
        async def memory_tick() -> None:
            """Save the memory when the last batch came too soon after the previous save."""
            await save_memory()

    # ------------------------------------------------------------------ observability
    @app.timer(interval=5.0)
    async def measure_lag() -> None:
        try:
            consumer = app.consumer
            waiting = False
            for tp in consumer.assignment():
                if tp.topic == names["state"] or tp.topic.endswith("__assignor-__leader"):
                    continue
                hw = consumer.highwater(tp)
                pos = await consumer.position(tp)
                if hw is not None and pos is not None:
                    metrics.lag.labels(tp.topic, str(tp.partition)).set(max(0, hw - pos))
                    waiting = waiting or hw > pos
                # Faust's record of what it committed (the next offset to read), or where it
                # started when it has committed nothing yet
                done = getattr(consumer, "_committed_offset", {}).get(tp)
                if hw is not None and (done is not None or pos is not None):
                    metrics.committed_lag.labels(tp.topic, str(tp.partition)).set(max(0, hw - (done or 0)))
            progress["waiting"] = waiting
        except Exception as e:  # lag is best effort; never let it stop the worker
            log.debug("lag measurement failed: %r", e)

    @app.timer(interval=5.0)
    async def probe_broker() -> None:
        """Say on /health when no broker answers: Faust's clients only log and retry, and the
        worker holds its input meanwhile (nothing is acknowledged that was not delivered)."""
        try:
            await asyncio.to_thread(check_reachable, bootstrap, 3.0)
        except BrokerUnavailable as e:
            metrics.broker_up.set(0)
            if health.get("broker_unreachable_since") is None:
                health["broker_unreachable_since"] = time.time()
                log.error("no Kafka broker answers at %s (%s); input is held and nothing is dropped while the "
                          "clients retry", bootstrap, e)
            return
        metrics.broker_up.set(1)
        if health.pop("broker_unreachable_since", None) is not None:
            log.info("the Kafka broker at %s answers again", bootstrap)

    @app.page("/metrics")
    async def metrics_page(web, request):
        return web.bytes(generate_latest(metrics.registry), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.page("/health")
    async def health_page(web, request):
        status = "degraded" if health["model_failing"] or health.get("broker_unreachable_since") or \
            health.get("publish_failing") else "ok"
        body = {"status": status, **health, "uptime_s": round(time.time() - health["started"], 1),
                "topics": names}
        return web.json(body, status=200 if status == "ok" else 503)

    @app.page("/live")
    async def live_page(web, request):
        """Liveness: answered by the event loop itself (a blocked loop answers nothing), and 503 only
        when the worker is stalled: input waits and no batch was taken for stream.stall_after_s while
        nothing it already reports (a failing model, broker or publish) explains the wait. Those
        outages are readiness (/health): a restart would not mend them."""
        held = bool(health["model_failing"] or health.get("broker_unreachable_since") or health.get("publish_failing"))
        why = stalled(time.monotonic(), progress["at"], progress["waiting"], held, sc.stall_after_s)
        body = {"status": "stalled" if why else "ok", "reason": why,
                "idle_s": round(time.monotonic() - progress["at"], 1), "input_waiting": progress["waiting"]}
        return web.json(body, status=503 if why else 200)

    app.rlog_topics = names  # type: ignore[attr-defined]
    return app


def group_id(app_id: str, roles: Iterable[str]) -> str:
    """The consumer group (and Faust app id) of workers running ``roles``: ``app_id`` for all roles,
    else ``app_id.<roles joined by +>`` in pipeline order (what a lag-based autoscaler must watch)."""
    roles = set(roles)
    return app_id if roles == set(ROLES) else f"{app_id}.{'+'.join(r for r in ROLES if r in roles)}"


def stalled(now: float, progress_at: float, waiting: bool, held: bool, after_s: float) -> str | None:
    """Why the worker counts as stalled, or None: input is waiting behind its consumer, no batch was
    taken or finished for ``after_s``, and no outage it already reports holds the input."""
    idle = now - progress_at
    if waiting and not held and idle >= after_s:
        return f"input is waiting and no batch was taken for {idle:.0f}s (stream.stall_after_s={after_s:.0f})"
    return None


def _too_large(e: BaseException) -> bool:
    """A record the broker or the producer refuses for its size (it would fail the same way again)."""
    for _ in range(8):  # the error and what it wraps
        if e is None:
            return False
        if "TooLarge" in type(e).__name__:
            return True
        e = e.__cause__ or e.__context__
    return False


def _credentials() -> dict[str, Any]:
    """SASL/SSL for real clusters, from the RLOG_KAFKA_* variables (see stream.kafka_io)."""
    import ssl

    import faust

    from stream.kafka_io import security_settings

    s = security_settings()
    proto = s.get("security_protocol", "PLAINTEXT").upper()
    if proto == "PLAINTEXT":
        return {}
    ctx = None
    if "SSL" in proto:
        ctx = ssl.create_default_context(cafile=s.get("ssl_cafile"))
        if s.get("ssl_certfile"):
            ctx.load_cert_chain(s["ssl_certfile"], s.get("ssl_keyfile"))
        if s.get("ssl_check_hostname") is False:
            ctx.check_hostname = False
    if proto.startswith("SASL"):
        mech = s.get("sasl_mechanism", "PLAIN")
        return {"broker_credentials": faust.SASLCredentials(
            username=s.get("sasl_plain_username"), password=s.get("sasl_plain_password"), ssl_context=ctx,
            mechanism=mech)}
    return {"broker_credentials": ctx}
