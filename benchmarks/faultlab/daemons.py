"""The daemons the lab can run, by name (one module each)."""

from __future__ import annotations

from benchmarks.faultlab.apache import Apache
from benchmarks.faultlab.daemon import Daemon
from benchmarks.faultlab.haproxy import HAProxy
from benchmarks.faultlab.mosquitto import Mosquitto
from benchmarks.faultlab.openssh import OpenSSH

DAEMONS: dict[str, type] = {"mosquitto": Mosquitto, "haproxy": HAProxy, "openssh": OpenSSH, "apache": Apache}


def make_daemon(name: str) -> Daemon:
    try:
        return DAEMONS[name]()
    except KeyError:
        raise ValueError(f"no daemon {name!r} in the lab: {', '.join(DAEMONS)}") from None
