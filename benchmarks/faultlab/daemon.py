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
import socket
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Service:
    """What every lab daemon shares: its log stream, one process at a time on a loopback port in a
    folder of its own, launching with a readiness wait, stopping, and the two faults every daemon
    suffers the same way (killed and restarted; restarted on a broken configuration).

    A daemon says how it is run (``command``), what file configures it (``conf_name``) and, where
    an open port is not enough, when it is ready (``ready``)."""

    name = "service"
    packages: tuple[str, ...] = ()
    faults: Mapping[str, FaultSpec] = {}
    conf_name = "daemon.conf"
    broken_lines: tuple[str, ...] = ()  # lines that make its configuration invalid (bad_config_restart)
    settle_s = 0.0  # after it answers, until it is really serving (a proxy's first health checks)

    def __init__(self) -> None:
        self.log = LogStream()
        self.proc: Process | None = None
        self.port = 0
        self.workdir = Path(".")

    def command(self, conf: Path) -> list[str]:
        raise NotImplementedError

    def _config(self, extra: str = "") -> Path:
        """Write the daemon's configuration (``extra`` appended) to ``conf`` and return it."""
        raise NotImplementedError

    def ready(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
            return True
        except OSError:
            return False

    @property
    def conf(self) -> Path:
        return self.workdir / self.conf_name

    def lines(self) -> list[LogLine]:
        return self.log.snapshot()

    def inject(self, fault: str, rng: random.Random) -> dict:
        return getattr(self, f"_{fault}")(rng)

    def _process(self, conf: Path) -> Process:
        return Process(self.command(conf), self.log, cwd=self.workdir)

    def _launch(self, conf: Path | None = None) -> None:
        self.proc = self._process(conf or self.conf)
        self.proc.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.ready():
                time.sleep(self.settle_s)
                return
            if not self.proc.alive():
                break
            time.sleep(0.1)
        tail = "\n".join(ln.text for ln in self.log.snapshot()[-10:])
        raise DaemonError(f"{self.name} did not start on port {self.port}:\n{tail}")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill(signal.SIGTERM)

    def _killed(self) -> None:
        """After the daemon was killed (-9): what else of it must go (children holding its port)."""

    def _crash_restart(self, rng: random.Random) -> dict:
        assert self.proc is not None
        self.proc.kill(signal.SIGKILL)
        self._killed()
        down = rng.uniform(0.5, 2.0)
        time.sleep(down)
        self._launch()
        return {"down_s": round(down, 2)}

    def _broken_restart(self, rng: random.Random, broken: Path) -> dict:
        """Stop the daemon, start it on ``broken`` (it refuses and exits), wait for the operator to
        notice; the caller repairs and relaunches."""
        assert self.proc is not None
        self.proc.kill(signal.SIGTERM)
        self.proc = self._process(broken)
        self.proc.start()
        code = self.proc.wait_exit(10)
        time.sleep(rng.uniform(0.5, 1.5))
        return {"exit_code": code}

    def _bad_config_restart(self, rng: random.Random) -> dict:
        """Restarted on a configuration with one of ``broken_lines``; repaired and started again."""
        out = self._broken_restart(rng, self._config(extra=rng.choice(self.broken_lines)))
        self._launch(self._config())
        return out
