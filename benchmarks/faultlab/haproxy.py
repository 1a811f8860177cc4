"""HAProxy (Debian ``haproxy``), an HTTP load balancer in front of two upstream servers: clients
browsing, its access log per request with the routine 404s and client aborts, health checks,
and six real faults (upstream loss, all upstreams gone, a slow upstream, a saturated queue,
malformed requests, a broken configuration). A crash is not among them: HAProxy in the
foreground writes nothing when it starts cleanly, so a restart leaves no trace in its log."""

from __future__ import annotations

import random
import socket
import subprocess
import time
from pathlib import Path

from benchmarks.faultlab.daemon import Service, free_port, missing_binaries
from benchmarks.faultlab.model import FaultSpec
from benchmarks.faultlab.upstream import Upstream, http_get

TIMEOUT_SERVER_S = 1.5
SERVER_MAXCONN = 4
_START = (r"haproxy version is", r"Loading success", r"New worker", r"Proxy \S+ started", r"path to executable")

FAULTS = {f.name: f for f in (
    FaultSpec("upstream_down", "network",
              "one upstream server stopped answering: the proxy took it out of the pool",
              "restart or repair the upstream service on that host; check why it stopped (its own log, OOM, deploys)",
              (r"Server \S+ is DOWN", r"Server \S+ is UP", r"Connection refused", r"Layer4"), "network", 2.5),
    FaultSpec("all_upstreams_down", "network",
              "every upstream server of the backend is down: clients get 503 from the proxy",
              "bring the upstream service back (all its instances are down), then find the common cause",
              (r"Server \S+ is DOWN", r"Server \S+ is UP", r"has no server available", r"<NOSRV>", r" 503 ",
               r"Layer4"), "dependency", 2.5),
    FaultSpec("slow_upstream", "overload",
              f"an upstream answers slower than timeout server ({TIMEOUT_SERVER_S} s): requests end in 504",
              "find what slows the upstream (load, locks, a slow dependency); scale it or raise the timeout knowingly",
              (r" 504 ", r" sH-- ", r"Layer7 timeout", r"Server \S+ is (DOWN|UP)"), "dependency", 2.0),
    FaultSpec("malformed_requests", "protocol",
              "clients send requests that are not valid HTTP: a broken client or a scanner",
              "identify the source address; block or fix it",
              (r"<BADREQ>", r" 400 ", r"PR--", r"CR--"), "security", 1.5),
    FaultSpec("queue_saturated", "overload",
              f"more concurrent requests than the upstreams' maxconn ({SERVER_MAXCONN} each) while they answer "
              "slowly: requests wait in the queue past timeout queue and get 503",
              "add upstream capacity or find what slows them; shed or rate-limit the burst at the edge",
              (r" sQ-- ", r" 503 ", r"Server \S+ is (DOWN|UP)"), "dependency", 2.0),
    FaultSpec("bad_config_restart", "configuration",
              "a restart with a broken configuration file: the proxy refuses to start until it is fixed",
              "run haproxy -c -f <file> to see the line it rejects, fix it, start again",
              (r"\[ALERT\]", r"unknown keyword", r"Fatal errors found", r"Error\(s\) found", *_START),
              "configuration", 3.0),
)}


class HAProxy(Service):
    """The proxy on a free loopback port, two upstream servers behind it, its log on stdout/stderr."""

    name = "haproxy"
    packages = ("haproxy",)
    faults = FAULTS
    conf_name = "haproxy.cfg"
    broken_lines = ("    maxconnn 100\n", "    nbthread many\n", "    tune.bufsize\n")  # what an operator mistypes
    settle_s = 0.5  # its first health checks

    def __init__(self) -> None:
        super().__init__()
        self.upstreams: list[Upstream] = []

    def missing(self) -> str | None:
        return missing_binaries("haproxy", packages=self.packages)

    def version(self) -> str:
        r = subprocess.run(["haproxy", "-v"], capture_output=True, text=True, timeout=10)
        return r.stdout.splitlines()[0].strip()

    def command(self, conf: Path) -> list[str]:
        return ["haproxy", "-db", "-f", str(conf)]

    def _config(self, extra: str = "") -> Path:
        servers = "\n".join(f"    server s{i + 1} 127.0.0.1:{u.port} maxconn {SERVER_MAXCONN} check inter 400 fall 2 rise 2"
                            for i, u in enumerate(self.upstreams))
        self.conf.write_text(
            "global\n    log stdout format raw local0 info\n    maxconn 512\n" + extra +
            "defaults\n    mode http\n    log global\n    option httplog\n    option dontlognull\n"
            f"    timeout connect 1s\n    timeout client 5s\n    timeout server {int(TIMEOUT_SERVER_S * 1000)}ms\n"
            "    timeout queue 1s\n"
            f"frontend web\n    bind 127.0.0.1:{self.port}\n    default_backend app\n"
            f"backend app\n    balance roundrobin\n    option httpchk GET /health\n{servers}\n")
        return self.conf

    def start(self, workdir: Path, rng: random.Random) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.upstreams = [Upstream(free_port()) for _ in range(2)]
        for u in self.upstreams:
            u.start()
        self.port = free_port()
        self._launch(self._config())

    def stop(self) -> None:
        super().stop()
        for u in self.upstreams:
            u.stop()

    # ------------------------------------------------------------------ normal work

    def _get(self, path: str) -> int:
        return http_get(self.port, path, timeout_s=5.0)

    def work(self, rng: random.Random) -> None:
        """A visitor: a few pages, now and then a page that does not exist (404), or a request
        abandoned before the answer (a client abort)."""
        for _ in range(rng.randrange(1, 4)):
            r = rng.random()
            if r < 0.08:
                self._get(f"/missing/{rng.randrange(100)}")
            elif r < 0.12:
                with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                    s.sendall(b"GET /slowpage HTTP/1.1\r\nHost: shop\r\n\r\n")  # and hang up at once
            else:
                self._get(rng.choice(("/", "/products", f"/products/{rng.randrange(500)}", "/cart", "/static/app.js")))

    # ------------------------------------------------------------------ faults

    def _down(self, which: list[Upstream], rng: random.Random) -> dict:
        for u in which:
            u.stop()
        held = rng.uniform(2.0, 4.0)
        time.sleep(held)
        for u in which:
            u.start()
        return {"down_s": round(held, 2), "upstreams": [u.port for u in which]}

    def _upstream_down(self, rng: random.Random) -> dict:
        return self._down([rng.choice(self.upstreams)], rng)

    def _all_upstreams_down(self, rng: random.Random) -> dict:
        return self._down(list(self.upstreams), rng)

    def _slow_upstream(self, rng: random.Random) -> dict:
        u = rng.choice(self.upstreams)
        u.mode, u.delay_s = "slow", TIMEOUT_SERVER_S + rng.uniform(0.5, 1.5)
        held = rng.uniform(3.0, 5.0)
        time.sleep(held)
        u.mode, u.delay_s = "ok", 0.0
        return {"slow_s": round(held, 2), "upstream": u.port}

    def _malformed_requests(self, rng: random.Random) -> dict:
        bad = [b"GET / HTTP/9.9\r\n\r\n", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(32),  # TLS on http
               b"GET /%%%\x00 HTTP/1.1\r\nHost: x\r\n\r\n", b"BREW /pot HTTP/1.1\r\nHost x\r\n\r\n",
               b"GET / HTTP/1.1\r\n" + b"X-Long: " + b"a" * 20000 + b"\r\n\r\n"]
        sent = rng.sample(bad, k=rng.randrange(3, len(bad) + 1))
        for b in sent:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                    s.sendall(b)
                    s.recv(1024)
            except OSError:
                pass
        return {"requests": len(sent)}

    def _queue_saturated(self, rng: random.Random) -> dict:
        import threading

        for u in self.upstreams:
            u.mode, u.delay_s = "slow", rng.uniform(0.8, 1.2)  # slow, not past timeout server
        n = rng.randrange(30, 60)
        codes: list[int] = []
        threads = [threading.Thread(target=lambda: codes.append(self._get("/checkout")), daemon=True)
                   for _ in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        for u in self.upstreams:
            u.mode, u.delay_s = "ok", 0.0
        return {"requests": n, "served": codes.count(200), "503": codes.count(503)}
