"""Kafka client construction with errors a user can act on.

kafka-python raises ``NoBrokersAvailable`` with no address and no hint; operators need to
know which address was tried and what to check. SASL/SSL settings pass straight through
so the same code talks to a laptop broker and a secured production cluster.
"""

from __future__ import annotations

import contextlib
import logging
import os
import ssl
import struct
from collections.abc import Mapping, Sequence
from typing import Any

from rlog.errors import RlogError

log = logging.getLogger(__name__)

BROKER_ENV = "RLOG_KAFKA_BROKER"
UNSUPPORTED_SASL_MECHANISM = 33  # Kafka's error code
# Client settings read from the environment (RLOG_KAFKA_SECURITY_PROTOCOL=SASL_SSL, ...).
SECURITY_KEYS = ("security_protocol", "sasl_mechanism", "sasl_plain_username", "sasl_plain_password",
                 "ssl_cafile", "ssl_certfile", "ssl_keyfile", "ssl_check_hostname")


class BrokerUnavailable(RlogError, ConnectionError):
    """No Kafka broker answered at the configured address."""


def security_settings(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """kafka-python security keyword arguments from ``RLOG_KAFKA_<KEY>`` variables."""
    env = os.environ if env is None else env
    out: dict[str, Any] = {}
    for key in SECURITY_KEYS:
        v = env.get(f"RLOG_KAFKA_{key.upper()}")
        if v is not None:
            out[key] = v.lower() in ("1", "true", "yes") if key == "ssl_check_hostname" else v
    return out


def _unavailable(bootstrap: str, err: Exception) -> BrokerUnavailable:
    why = _refused_why(bootstrap)
    if why is not None:
        return BrokerUnavailable(why)
    return BrokerUnavailable(
        f"cannot reach a Kafka broker at {bootstrap} ({type(err).__name__}: {err}); check the address "
        f"(--broker or {BROKER_ENV}), that the broker is running and that its advertised listener is reachable "
        "from here; for secured clusters set RLOG_KAFKA_SECURITY_PROTOCOL and the SASL/SSL variables")


def _refused_why(bootstrap: str, *, handshake_only: bool = False) -> str | None:
    """With SASL configured and a broker answering on TCP: why it would not let the client in (the
    mechanism is not offered, or the credentials are refused); None when that is not the story."""
    from stream.sasl_probe import offered_mechanisms

    s = security_settings()
    proto = str(s.get("security_protocol", "PLAINTEXT")).upper()
    if not proto.startswith("SASL"):
        return None
    mech = str(s.get("sasl_mechanism", "PLAIN")).upper()
    for addr in (a.strip() for a in bootstrap.split(",") if a.strip()):
        host, _, port = addr.rpartition(":")
        tls = None
        if proto == "SASL_SSL":
            tls = ssl.create_default_context(cafile=s.get("ssl_cafile"))
            if s.get("ssl_check_hostname") is False:
                tls.check_hostname = False
        try:
            error, offered = offered_mechanisms(host.strip("[]"), int(port), mech, tls=tls)
        except (OSError, ValueError, struct.error):
            continue
        if error == 0:
            if handshake_only:  # the mechanism is taken; whether the credentials are is the client's to find out
                return None
            return (f"the Kafka broker at {addr} refused SASL {mech} authentication as "
                    f"{s.get('sasl_plain_username')!r}: check RLOG_KAFKA_SASL_PLAIN_USERNAME and "
                    "RLOG_KAFKA_SASL_PLAIN_PASSWORD (and that the user exists for this mechanism)")
        if error == UNSUPPORTED_SASL_MECHANISM:
            others = [m for m in offered if m.upper() != mech]  # some brokers echo the one asked for
            offers = (f"it offers {', '.join(others)}: set RLOG_KAFKA_SASL_MECHANISM to one of them" if others else
                      "it names no other: set RLOG_KAFKA_SASL_MECHANISM to the one its listener is configured for, "
                      "or RLOG_KAFKA_SECURITY_PROTOCOL to PLAINTEXT or SSL if the listener has no SASL")
            return f"the Kafka broker at {addr} answers but does not accept SASL mechanism {mech} ({offers})"
        return (f"the Kafka broker at {addr} answers but refused the SASL handshake (Kafka error {error}): check "
                "RLOG_KAFKA_SECURITY_PROTOCOL and RLOG_KAFKA_SASL_MECHANISM against the listener's settings")
    return None


def make_consumer(bootstrap: str, *, check: bool = True, **kwargs: Any):
    """A kafka-python consumer (no group unless given one) or BrokerUnavailable saying why.

    ``check``: try the address (and the SASL mechanism) first, for commands that meet the broker for
    the first time; a running worker's own reads (restoring state on each rebalance) skip it, since
    the broker answered it already and would log each probe's unfinished SASL handshake."""
    from kafka import KafkaConsumer
    from kafka.errors import KafkaError

    if check:
        check_reachable(bootstrap, sasl=True)
    try:
        return KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, **security_settings(), **kwargs)
    except (KafkaError, OSError) as e:
        raise _unavailable(bootstrap, e) from None


def check_reachable(bootstrap: str, timeout_s: float = 5.0, *, sasl: bool = False) -> None:
    """Fail in seconds, not after the client's 30 s bootstrap timeout, when no address answers;
    ``sasl``: also when the broker answers but refuses the configured SASL mechanism (one
    handshake, only before a client is made: not on every health probe, which a broker would log)."""
    import socket

    errors = []
    for addr in (a.strip() for a in bootstrap.split(",") if a.strip()):
        host, _, port = addr.rpartition(":")
        if not host or not port.isdigit():
            raise BrokerUnavailable(f"bad Kafka broker address {addr!r}: write HOST:PORT (e.g. localhost:9092)")
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
                pass
        except OSError as e:
            errors.append(e)
            continue
        why = _refused_why(addr, handshake_only=True) if sasl else None
        if why is not None:
            raise BrokerUnavailable(why)
        return
    if not errors:
        raise BrokerUnavailable(f"no Kafka broker address given (--broker or {BROKER_ENV})")
    raise _unavailable(bootstrap, errors[-1])


def make_producer(bootstrap: str, **kwargs: Any):
    """A kafka-python producer (acks=all, batched) or BrokerUnavailable."""
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    check_reachable(bootstrap, sasl=True)
    settings = {"acks": "all", "linger_ms": 20, "batch_size": 256 * 1024, "retries": 5,
                "request_timeout_ms": 15000, **security_settings(), **kwargs}
    try:
        return KafkaProducer(bootstrap_servers=bootstrap, **settings)
    except (KafkaError, OSError) as e:
        raise _unavailable(bootstrap, e) from None


def make_admin(bootstrap: str, **kwargs: Any):
    from kafka.admin import KafkaAdminClient
    from kafka.errors import KafkaError

    check_reachable(bootstrap, sasl=True)
    try:
        return KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000, **security_settings(), **kwargs)
    except (KafkaError, OSError) as e:
        raise _unavailable(bootstrap, e) from None


def ensure_topics(bootstrap: str, topics: Mapping[str, int],
                  configs: Mapping[str, Mapping[str, str]] | None = None, *, replication: int = 1) -> dict:
    """Create topics (name → partitions) that do not exist yet, with ``replication`` copies and their
    ``configs`` (name → topic settings, e.g. the parse-state topic's ``cleanup.policy: compact``). For
    a topic that exists already, a setting the broker reports otherwise is a warning with the fix.
    Returns {"created": [...], "existing": [...], "mismatches": [...]}."""
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    configs = configs or {}
    admin = make_admin(bootstrap)
    try:
        existing = set(admin.list_topics())
        new = [NewTopic(name, n, replication, topic_configs=dict(configs.get(name, {}))) for name, n in topics.items()
               if name not in existing]
        if new:
            with contextlib.suppress(TopicAlreadyExistsError):  # created meanwhile by another client
                admin.create_topics(new)
        old = [name for name in configs if name in existing and name in topics]
        mismatches = _check_topic_configs(admin, {name: configs[name] for name in old}) if old else []
    finally:
        admin.close()
    return {"created": [t.name for t in new], "existing": sorted(n for n in topics if n in existing),
            "mismatches": mismatches or []}


def topic_config_mismatches(described: Mapping, wanted: Mapping[str, Mapping[str, str]]) -> list[str]:
    """Settings the broker reports differently from ``wanted`` (pure; a broker that reports
    nothing, like the embedded one, yields nothing)."""
    by_topic = described.get("topic", described) if isinstance(described, Mapping) else {}
    out = []
    for name, want in wanted.items():
        have = by_topic.get(name) or {}
        for key, value in want.items():
            got = have.get(key)
            if isinstance(got, Mapping):
                got = got.get("value")
            if got is not None and str(got) != value:
                out.append(f"topic {name} has {key}={got}, rlog needs {key}={value} (kafka-configs.sh --alter "
                           f"--entity-type topics --entity-name {name} --add-config {key}={value})")
    return out


RECORD_OVERHEAD = 4096  # a record batch's framing, the key and headers, below a topic's max.message.bytes


def record_limit(described: Mapping, topics: Sequence[str], configured: int) -> tuple[int, list[str]]:
    """The largest record value rlog may write to ``topics``: ``configured``
    (``stream.max_record_bytes``), lowered to what a topic accepts (``max.message.bytes``, less
    the framing) when the broker reports less, with a line saying so for each such topic (pure;
    a broker that reports nothing, like the embedded one, leaves ``configured``)."""
    by_topic = described.get("topic", described) if isinstance(described, Mapping) else {}
    limit, notes = configured, []
    for name in topics:
        got = (by_topic.get(name) or {}).get("max.message.bytes")
        if isinstance(got, Mapping):
            got = got.get("value")
        try:
            room = int(got) - RECORD_OVERHEAD
        except (TypeError, ValueError):
            continue
        if room < limit:
            limit = max(room, 1024)
            notes.append(f"topic {name} accepts records up to {got} bytes (max.message.bytes): records are "
                         f"bounded to {limit} bytes instead of stream.max_record_bytes={configured}")
    return limit, notes


def broker_record_limit(bootstrap: str, topics: Sequence[str], configured: int) -> int:
    """``record_limit`` on what the broker reports for ``topics`` (``configured`` if it reports nothing)."""
    from kafka.admin import ConfigResource, ConfigResourceType

    admin = make_admin(bootstrap)
    try:
        described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, n) for n in topics])
    except Exception as e:  # noqa: BLE001 - a broker without DescribeConfigs: keep the configured bound
        log.debug("cannot read topic configs (%s)", e)
        return configured
    finally:
        admin.close()
    limit, notes = record_limit(described, topics, configured)
    for msg in notes:
        log.warning(msg)
    return limit


def _check_topic_configs(admin, wanted: Mapping[str, Mapping[str, str]]) -> list[str]:
    from kafka.admin import ConfigResource, ConfigResourceType

    try:
        described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, n) for n in wanted])
    except Exception as e:  # noqa: BLE001 - a broker without DescribeConfigs: nothing to check against
        log.debug("cannot read topic configs (%s)", e)
        return []
    found = topic_config_mismatches(described, wanted)
    for msg in found:
        log.warning(msg)
    return found


def read_topic_to_end(bootstrap: str, topic: str, *, timeout_s: float = 60.0) -> list[Any]:
    """Every record of ``topic`` up to its end offsets at call time: complete, not idle-based.

    Restoring state must not stop early because the broker was slow to answer.
    """
    import time

    from kafka import TopicPartition

    consumer = make_consumer(bootstrap, check=False)  # the worker's state restore: it reached the broker already
    try:
        deadline = time.monotonic() + timeout_s
        parts = consumer.partitions_for_topic(topic)
        while parts is None and time.monotonic() < deadline:
            time.sleep(0.2)
            parts = consumer.partitions_for_topic(topic)
        if not parts:
            return []
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        consumer.seek_to_beginning()
        ends = consumer.end_offsets(tps)
        out: list[Any] = []
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {topic} to its end within {timeout_s:.0f}s")
            for recs in consumer.poll(timeout_ms=500).values():
                out.extend(recs)
        return out
    finally:
        consumer.close()


def read_topic(bootstrap: str, topic: str, *, timeout_s: float = 10.0, max_records: int | None = None,
               idle_s: float = 2.0) -> list[Any]:
    """Every record of ``topic`` from the beginning (assigned consumer, no group): for tests and tools.

    Stops at ``max_records``, after ``idle_s`` without new records, or at ``timeout_s``.
    """
    import time

    from kafka import TopicPartition

    consumer = make_consumer(bootstrap, consumer_timeout_ms=200)
    try:
        deadline = time.monotonic() + timeout_s
        parts = None
        while parts is None and time.monotonic() < deadline:
            parts = consumer.partitions_for_topic(topic)
            if parts is None:
                time.sleep(0.2)
        if not parts:
            return []
        consumer.assign([TopicPartition(topic, p) for p in sorted(parts)])
        consumer.seek_to_beginning()
        out: list[Any] = []
        last = time.monotonic()
        while time.monotonic() < deadline:
            batch = consumer.poll(timeout_ms=200)
            got = [r for recs in batch.values() for r in recs]
            if got:
                out.extend(got)
                last = time.monotonic()
                if max_records is not None and len(out) >= max_records:
                    break
            elif time.monotonic() - last > idle_s:
                break
        return out
    finally:
        consumer.close()


def follow_topic(bootstrap: str, topic: str, *, from_beginning: bool = True, follow: bool = False,
                 idle_s: float = 2.0, wait_s: float = 10.0):
    """Yield ``topic``'s records (assigned consumer, no group: it changes no committed offset), each
    with its ``partition``, ``offset``, ``key`` and ``value``. Closing the generator (or an interrupt
    while it waits) closes the consumer.

    ``from_beginning``: start at the oldest record, else at the end (only what comes next).
    ``follow``: keep waiting for new records until interrupted; else stop once the records
    present when it started are read and ``idle_s`` passed without more. A topic that does
    not exist after ``wait_s`` is an error naming it.
    """
    import time

    from kafka import TopicPartition

    consumer = make_consumer(bootstrap)
    try:
        deadline = time.monotonic() + wait_s
        parts = consumer.partitions_for_topic(topic)
        while not parts and time.monotonic() < deadline:
            time.sleep(0.2)
            parts = consumer.partitions_for_topic(topic)
        if not parts:
            raise BrokerUnavailable(f"topic {topic!r} does not exist on {bootstrap} (is the worker's stream.prefix "
                                    "the same? alerts go to <prefix>.alerts)")
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        if from_beginning:
            consumer.seek_to_beginning()
        else:
            consumer.seek_to_end()
        ends = consumer.end_offsets(tps)
        last = time.monotonic()
        while True:
            got = False
            for recs in consumer.poll(timeout_ms=500).values():
                for r in recs:
                    got = True
                    yield r
            if got:
                last = time.monotonic()
            elif not follow and all(consumer.position(tp) >= ends[tp] for tp in tps) and \
                    time.monotonic() - last > idle_s:
                return
    finally:
        consumer.close()


class PartitionRange:
    """Offsets ``[start, end)`` of one partition, read in chunks outside the consumer group.

    For re-reading input the group has committed but a checkpoint does not cover (a stale
    checkpoint written by a worker that had already lost the partition, or a save that never
    landed): an assigned consumer changes no committed offset and leaves the group's own fetch
    position alone. Chunks keep memory bounded however wide the range is. ``missing`` counts
    offsets of the range the broker no longer holds (retention deleted them before the re-read).
    """

    def __init__(self, bootstrap: str, topic: str, partition: int, start: int, end: int, *,
                 timeout_s: float = 60.0) -> None:
        import time

        from kafka import KafkaConsumer, TopicPartition

        self._end, self._timeout_s = end, timeout_s
        self._deadline = time.monotonic() + timeout_s
        self._tp = TopicPartition(topic, partition)
        self._consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                       auto_offset_reset="earliest", **security_settings())
        try:
            self._consumer.assign([self._tp])
            earliest = self._consumer.beginning_offsets([self._tp])[self._tp]
            self.missing = max(0, min(earliest, end) - start)
            self._consumer.seek(self._tp, max(start, earliest))
        except Exception:
            self._consumer.close()
            raise

    def chunk(self, max_records: int = 500) -> list[Any]:
        """The next records of the range, in offset order; [] once it is read to ``end``."""
        import time

        while self._consumer.position(self._tp) < self._end:
            if time.monotonic() > self._deadline:
                raise TimeoutError(f"could not re-read {self._tp.topic}[{self._tp.partition}] up to offset "
                                   f"{self._end} within {self._timeout_s:.0f}s")
            recs = self._consumer.poll(timeout_ms=500, max_records=max_records).get(self._tp, [])
            recs = [r for r in recs if r.offset < self._end]
            if recs:
                self._deadline = time.monotonic() + self._timeout_s  # progress: the limit is per chunk
                return recs
        return []

    def close(self) -> None:
        self._consumer.close()
