"""Eclipse Mosquitto (Debian ``mosquitto``), an MQTT broker: devices connecting, publishing and
subscribing, with its routine noise (connections dropped without a goodbye, a client id taken
over by a reconnecting device, keep-alive pings), and six real faults of six categories."""

from __future__ import annotations

import getpass
import os
import random
import socket
import subprocess
import time
from pathlib import Path

from benchmarks.faultlab import mqtt
from benchmarks.faultlab.daemon import Service, free_port, missing_binaries
from benchmarks.faultlab.model import FaultSpec

USER, PASSWORD = "device", "device-secret"
MAX_CONNECTIONS = 40

FAULTS = {f.name: f for f in (
    FaultSpec("auth_bruteforce", "authentication",
              "a client retries a login with wrong passwords: a misconfigured device or a password-guessing attack",
              "find the client by its address, fix its credentials or block it; rate-limit failed logins",
              (r"not authori[sz]ed", r"Bad username or password", r"CONNACK to \S+ \(0, 5\)"), "security"),
    FaultSpec("connection_flood", "overload",
              f"connections beyond max_connections ({MAX_CONNECTIONS}): a reconnect storm or a connection flood",
              "find the clients that reconnect in a loop (backoff), raise max_connections only if the load is real",
              (r"Client <unknown> closed its connection", r"max_connections", r"denied", r"Out of memory",
               r"too many open files"), "network"),
    FaultSpec("malformed_packets", "protocol",
              "a client sends bytes that are not valid MQTT: a broken client library or a protocol probe",
              "identify the client by address and fix or block it; keep the broker patched",
              (r"protocol error", r"malformed packet", r"[Ii]nvalid protocol", r"disconnected due to"), "security"),
    FaultSpec("crash_restart", "crash",
              "the broker process died (killed) and was restarted: in-flight sessions were lost",
              "read the kernel log and the service manager for why it died (OOM killer, a crash) and check "
              "that clients reconnected",
              (r"mosquitto version \S+ (starting|running)", r"Config loaded from", r"Opening ipv[46] listen socket",
               r"Restoring in-memory database", r"Loaded .* from persistent"), "software"),
    FaultSpec("persistence_blocked", "permissions",
              "the broker cannot write its persistence file: retained messages and sessions are not saved",
              "free the persistence path (a stray directory or a read-only or full disk) and check its ownership",
              (r"Error saving in-memory database", r"unable to open .* for writing", r"Error: .*(directory|denied|"
               r"space)"), "storage"),
    FaultSpec("bad_config_restart", "configuration",
              "a restart with a broken configuration file: the broker refuses to start until it is fixed",
              "run mosquitto -c <file> -v to see the line it rejects, fix it, start again",
              (r"Error: Unknown configuration variable", r"Error found at", r"Error: Unable to open config",
               r"Error: .*config", r"mosquitto version \S+ (starting|running)", r"Config loaded from",
               r"Opening ipv[46] listen socket", r"Restoring in-memory database"), "configuration", settle_s=3.0),
)}


class Mosquitto(Service):
    """The broker, its password file and persistence in ``workdir``, listening on a free loopback port."""

    name = "mosquitto"
    packages = ("mosquitto",)
    faults = FAULTS
    conf_name = "mosquitto.conf"
    broken_lines = ("max_conections 100\n", "listner 1884\n", "persistance true\n")  # what an operator mistypes

    def missing(self) -> str | None:
        return missing_binaries("mosquitto", "mosquitto_passwd", packages=self.packages)

    def version(self) -> str:
        r = subprocess.run(["mosquitto", "-h"], capture_output=True, text=True, timeout=10)
        return (r.stdout or r.stderr).splitlines()[0].strip()

    def command(self, conf: Path) -> list[str]:
        return ["mosquitto", "-c", str(conf)]

    def _config(self, extra: str = "") -> Path:
        data = self.workdir / "data"
        data.mkdir(exist_ok=True)
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous false\n"
            f"password_file {self.workdir / 'passwords'}\n"
            f"user {getpass.getuser()}\n"  # as root, mosquitto would switch to a 'mosquitto' user
            "log_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\nlog_type information\n"
            "log_type subscribe\nlog_type unsubscribe\n"
            "log_timestamp true\nlog_timestamp_format %Y-%m-%dT%H:%M:%S\n"
            "connection_messages true\n"
            f"max_connections {MAX_CONNECTIONS}\n"
            f"persistence true\npersistence_location {data}/\nautosave_interval 3\n" + extra)
        return self.conf

    def start(self, workdir: Path, rng: random.Random) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        pw = self.workdir / "passwords"
        pw.write_text("")
        subprocess.run(["mosquitto_passwd", "-b", str(pw), USER, PASSWORD], check=True, capture_output=True,
                       timeout=30)
        os.chmod(pw, 0o600)
        self.port = free_port()
        self._launch(self._config())

    # ------------------------------------------------------------------ normal work

    def _id(self, rng: random.Random) -> str:
        return f"sensor-{rng.randrange(60):02d}"

    def _client(self, cid: str, **kw) -> mqtt.Client:
        return mqtt.Client(self.port, cid, username=USER, password=PASSWORD, **kw)

    def work(self, rng: random.Random) -> None:
        """One device's visit: mostly connect, publish readings, leave; sometimes subscribe, ping,
        drop the connection without a goodbye, or take over a client id still connected."""
        cid = self._id(rng)
        c = self._client(cid, keepalive=rng.choice((30, 60, 120)))
        if rng.random() < 0.15:
            c.subscribe(f"plant/{rng.randrange(4)}/alarms/#", qos=rng.choice((0, 1)))
        for i in range(rng.randrange(1, 5)):
            c.publish(f"plant/{rng.randrange(4)}/{cid}/temp", f"{20 + rng.random() * 5:.2f}".encode(),
                      qos=rng.choice((0, 0, 1)), packet_id=i + 1)
        if rng.random() < 0.1:
            c.ping()
        r = rng.random()
        if r < 0.12:
            c.drop()  # routine: "Client … closed its connection."
        elif r < 0.17:
            again = self._client(cid)  # routine: a device reconnecting takes its id over
            c.drop()
            again.disconnect()
        else:
            c.disconnect()

    # ------------------------------------------------------------------ faults

    def _auth_bruteforce(self, rng: random.Random) -> dict:
        tries = rng.randrange(8, 20)
        for i in range(tries):
            c = mqtt.Client(self.port, f"gw-{rng.randrange(1000)}", username=rng.choice((USER, "admin", "root")),
                            password=f"guess{i}")
            c.drop()
            time.sleep(rng.uniform(0.02, 0.15))
        return {"tries": tries}

    def _connection_flood(self, rng: random.Random) -> dict:
        n = MAX_CONNECTIONS + rng.randrange(10, 30)
        held, refused = [], 0
        for _ in range(n):
            try:
                held.append(socket.create_connection(("127.0.0.1", self.port), timeout=2))
            except OSError:
                refused += 1
        time.sleep(rng.uniform(1.0, 2.0))
        for s in held:
            s.close()
        return {"connections": n, "refused_at_tcp": refused}

    def _malformed_packets(self, rng: random.Random) -> dict:
        bad = [mqtt.packet(mqtt.CONNECT, 0, b"\x00\x04MQTX\x04\x02\x00\x3c\x00\x01x"),  # wrong protocol name
               mqtt.packet(mqtt.CONNECT, 0, b"\x00\x04MQTT\x09\x02\x00\x3c\x00\x01x"),  # unknown protocol level
               b"\x00\x00",  # packet type 0
               mqtt.packet(mqtt.CONNECT, 0, b"\x00\x04MQTT\x04\x01\x00\x3c\x00\x01x"),  # reserved flag set
               bytes([0x10, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F])]  # remaining length past the limit
        sent = rng.sample(bad, k=rng.randrange(3, len(bad) + 1))
        for b in sent:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                    s.sendall(b)
                    time.sleep(0.2)
            except OSError:
                pass
        return {"packets": len(sent)}

    def _persistence_blocked(self, rng: random.Random) -> dict:
        block = self.workdir / "data" / "mosquitto.db.new"  # the file a save writes first, a directory now
        block.mkdir(exist_ok=True)
        held = rng.uniform(4.0, 7.0)  # autosave runs every 3 s: at least one save fails
        c = self._client("retainer")
        c.publish("plant/config", b"v2", qos=1)  # something to save
        c.disconnect()
        time.sleep(held)
        block.rmdir()
        return {"blocked_s": round(held, 2)}
