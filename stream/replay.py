"""`rlog replay`: archived logs into a Kafka topic, at their original pace or as fast as possible.

The bytes of each line go out unchanged (invalid UTF-8 included: the stream must cope,
and dead-letters what it cannot parse). JSON envelopes keep their source as the record
key, so each component lands on one partition in order; plain lines are keyed by the
file name (or ``--key``). ``KafkaSink`` does the same for a simulation as it runs
(``rlog simulate --to-kafka``), paced by simulated event time.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from rlog.pipeline.formats import LogFormat
from rlog.sim.engine import SimLine
from rlog.sim.output import envelope
from rlog.terminal import printable
from stream.kafka_io import make_producer

log = logging.getLogger(__name__)


# A line is sent as one record: cut below the producer's 1 MiB request limit, which the line, its
# key and the record framing must fit together (a line of exactly 1 MiB failed the whole replay).
MAX_LINE_BYTES = 1_000_000


@dataclass
class ReplayStats:
    lines: int = 0
    bytes: int = 0
    truncated: int = 0  # lines longer than max_line_bytes: their head is sent (the worker caps lines anyway)
    skipped: int = 0  # records the producer refused as too large (a giant key): counted, the rest goes on
    elapsed_s: float = 0.0
    first_ts: float | None = None
    last_ts: float | None = None


def line_time(raw: bytes, fmt: LogFormat | None) -> tuple[float | None, str | None]:
    """(event time, envelope source) of a raw line, when it has them."""
    text = raw.decode("utf-8", "replace").rstrip("\r\n")
    if text.startswith("{"):
        try:
            obj = orjson.loads(text)
        except orjson.JSONDecodeError:
            obj = None
        if isinstance(obj, dict):
            ts = obj.get("ts")
            src = obj.get("source") or obj.get("service")
            msg = obj.get("message")
            if isinstance(ts, (int, float)):
                return float(ts), src if isinstance(src, str) else None
            if fmt is not None and isinstance(msg, str):
                fields = fmt.match(msg)
                return (fmt.timestamp(fields) if fields else None), src if isinstance(src, str) else None
            return None, src if isinstance(src, str) else None
    if fmt is not None:
        fields = fmt.match(text)
        if fields:
            return fmt.timestamp(fields), None
    return None, None


def replay(path: str | Path, topic: str, producer, *, rate: float | None = None, speedup: float | None = None,
           fmt: LogFormat | None = None, key: str | None = None, progress: bool = True,
           max_line_bytes: int = MAX_LINE_BYTES,
           sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic,
           on_send: Callable[[int], None] | None = None) -> ReplayStats:
    """Produce every line of ``path`` to ``topic``.

    ``speedup`` paces by event time (envelope ``ts`` or the ``fmt`` timestamp; 1 = real time);
    ``rate`` paces at a fixed number of lines per second; neither sends at full speed.
    ``on_send(n)`` is called as line ``n`` (1-based) is handed to the producer (the
    benchmark times produce-to-alert latency from it). A line over ``max_line_bytes`` is
    sent cut to its head and counted; no line stops the replay.
    """
    from kafka.errors import MessageSizeTooLargeError
    from tqdm import tqdm

    path = Path(path)
    default_key = (key or path.name).encode()
    st = ReplayStats()
    t0 = clock()
    origin: tuple[float, float] | None = None
    size = path.stat().st_size
    with open(path, "rb") as f, tqdm(total=size, unit="B", unit_scale=True, desc=f"replay {printable(path.name)}",
                                     disable=not progress, file=sys.stderr, mininterval=0.5) as bar:
        while True:
            raw = f.readline(max_line_bytes)
            if not raw:
                break
            if not raw.endswith(b"\n") and len(raw) >= max_line_bytes:  # giant line: keep the head only
                st.truncated += 1
                while True:
                    rest = f.readline(max_line_bytes)
                    if not rest or rest.endswith(b"\n"):
                        break
            value = raw.rstrip(b"\r\n")
            ts, src = line_time(value, fmt) if (speedup or key is None) else (None, None)
            if speedup and ts is not None:
                if origin is None:
                    origin = (clock(), ts)
                wait = origin[0] + (ts - origin[1]) / speedup - clock()
                if wait > 0:
                    sleep(wait)
            elif rate:
                wait = t0 + st.lines / rate - clock()
                if wait > 0:
                    sleep(wait)
            try:
                producer.send(topic, key=src.encode() if (src and key is None) else default_key, value=value)
            except MessageSizeTooLargeError as e:
                st.skipped += 1
                log.warning("line %d not sent: %s", st.lines + st.skipped, e)
                continue
            st.lines += 1
            if on_send is not None:
                on_send(st.lines)
            st.bytes += len(raw)
            if ts is not None:
                st.first_ts = ts if st.first_ts is None else st.first_ts
                st.last_ts = ts
            if st.lines % 512 == 0:
                bar.update(f.tell() - bar.n)
        producer.flush()
        bar.update(size - bar.n)
    st.elapsed_s = clock() - t0
    return st


class KafkaSink:
    """Produce envelopes to a topic, keyed by component, paced to (accelerated) event time.

    ``speedup`` 1 replays in real time, 60 makes a minute of logs take a second, 0 sends as
    fast as the broker takes them.
    """

    def __init__(self, topic: str, bootstrap: str, speedup: float = 1.0, *, producer: Any = None,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> None:
        self.topic, self.speedup = topic, speedup
        self.producer = producer or make_producer(bootstrap)
        self._sleep, self._clock = sleep, clock
        self._origin: tuple[float, int] | None = None
        self.sent = 0

    def send(self, line: SimLine) -> None:
        if self.speedup > 0:
            if self._origin is None:
                self._origin = (self._clock(), line.t_ms)
            due = self._origin[0] + (line.t_ms - self._origin[1]) / 1000 / self.speedup
            wait = due - self._clock()
            if wait > 0:
                self._sleep(wait)
        self.producer.send(self.topic, key=line.source.encode(), value=envelope(line))
        self.sent += 1

    def close(self) -> None:
        self.producer.flush()
        self.producer.close()
