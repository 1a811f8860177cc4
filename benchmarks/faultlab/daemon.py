"""A daemon in the lab: a Debian package's real binary, on loopback, in a private folder.

``Daemon`` is the extension point (one class per daemon); ``Process`` runs one of its
processes and reads what it writes to its log stream line by line, stamping when each line
arrived, across restarts (the lab restarts daemons as part of some faults).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from benchmarks.faultlab.model import FaultSpec, LogLine
from rlog.errors import RlogError


class DaemonError(RlogError, RuntimeError):
    """A daemon of the lab did not start or stopped answering; the message holds its last lines."""


class Daemon(Protocol):
    """What the runner needs of a daemon. ``inject`` performs a fault while the workload goes on
    and returns what it did (recorded in the manifest); it must leave the daemon serving again."""

    name: str
    packages: tuple[str, ...]
    faults: Mapping[str, FaultSpec]

    def missing(self) -> str | None: ...

    def start(self, workdir: Path, rng: random.Random) -> None: ...

    def work(self, rng: random.Random) -> None: ...

    def inject(self, fault: str, rng: random.Random) -> dict: ...

    def lines(self) -> list[LogLine]: ...

    def version(self) -> str: ...

    def stop(self) -> None: ...


def missing_binaries(*names: str, packages: tuple[str, ...]) -> str | None:
    lost = [n for n in names if shutil.which(n) is None and not Path(n).exists()]
    if lost:
        return f"{', '.join(lost)} not installed (apt-get install {' '.join(packages)})"
    return None


class LogStream:
    """Lines a daemon writes, in arrival order, from every process it has run (thread-safe)."""

    def __init__(self) -> None:
        self._lines: list[LogLine] = []
        self._lock = threading.Lock()

    def add(self, text: str) -> None:
        with self._lock:
            self._lines.append(LogLine(len(self._lines) + 1, time.time(), text))

    def follow(self, pipe) -> threading.Thread:
        def read() -> None:
            for raw in iter(pipe.readline, b""):
                self.add(raw.decode("utf-8", "replace").rstrip("\r\n"))
            pipe.close()

        t = threading.Thread(target=read, daemon=True)
        t.start()
        return t

    def snapshot(self) -> list[LogLine]:
        with self._lock:
            return list(self._lines)


class Process:
    """One daemon process whose stderr (and stdout) is its log stream."""

    def __init__(self, args: list[str], log: LogStream, *, cwd: Path) -> None:
        self.args, self.log, self.cwd = args, log, cwd
        self.proc: subprocess.Popen | None = None
        self._reader: threading.Thread | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(self.args, cwd=self.cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     start_new_session=True, env={**os.environ, "LC_ALL": "C"})
        self._reader = self.log.follow(self.proc.stdout)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.alive():
            os.killpg(self.proc.pid, sig)  # type: ignore[union-attr]
            try:
                self.proc.wait(10)  # type: ignore[union-attr]
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)  # type: ignore[union-attr]
                self.proc.wait(5)  # type: ignore[union-attr]
        if self._reader is not None:
            self._reader.join(5)

    def wait_exit(self, timeout_s: float) -> int | None:
        try:
            return self.proc.wait(timeout_s) if self.proc is not None else None
        except subprocess.TimeoutExpired:
            return None
