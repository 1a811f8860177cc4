"""One simulated message → one log line in its component's format, plus the event time a
parser will read back from that line (its precision: seconds for HDFS, milliseconds for
log4j, ...). Window ground truth is computed from that time, so it matches what
``rlog analyze`` sees exactly."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(slots=True)
class Msg:
    """A message waiting to be written. ``abnormal`` and ``incident`` are ground truth."""

    source: str
    host: str
    level: str
    comp: str
    text: str
    pid: str = ""  # syslog pid, log4j thread, HDFS pid
    abnormal: bool = False
    incident: object | None = None  # the Incident that wrote it (None: normal workload)


def _dt(t_ms: int) -> datetime:
    return datetime.fromtimestamp(t_ms // 1000, UTC)


def render(m: Msg, t_ms: int) -> tuple[str, float]:
    """The log line for ``m`` at ``t_ms`` (ms since the epoch) and its parseable event time."""
    sec, ms = divmod(t_ms, 1000)
    d = _dt(t_ms)
    if m.source == "storage":  # HDFS: 081109 203615 148 INFO dfs.DataNode$PacketResponder: ...
        return f"{d:%y%m%d %H%M%S} {m.pid} {m.level} {m.comp}: {m.text}", float(sec)
    if m.source == "compute":  # BGL/RAS without the label column
        return (f"{sec} {d:%Y.%m.%d} {m.host} {d:%Y-%m-%d-%H.%M.%S}.{ms * 1000:06d} {m.host} RAS {m.comp} "
                f"{m.level} {m.text}", float(sec))
    if m.source == "api":  # log4j: 2026-01-05 08:00:00,123 INFO [thread] logger: message
        return f"{d:%Y-%m-%d %H:%M:%S},{ms:03d} {m.level} [{m.pid}] {m.comp}: {m.text}", sec + ms / 1000
    if m.source == "syslog":  # rsyslog RFC 3339: 2026-01-05T08:00:00.123000+00:00 host prog[pid]: message
        tag = f"{m.comp}[{m.pid}]" if m.pid else m.comp
        return f"{d:%Y-%m-%dT%H:%M:%S}.{ms * 1000:06d}+00:00 {m.host} {tag}: {m.text}", sec + ms / 1000
    raise ValueError(f"unknown simulated component {m.source!r}")
