"""Apache httpd (Debian ``apache2``): a site with static pages and an application behind a reverse
proxy (a real upstream HTTP server), its access log (combined) and error log on one stream, the
routine 404s and client aborts, and six real faults of six categories."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import threading
import time
from pathlib import Path

from benchmarks.faultlab.daemon import Service, free_port, missing_binaries
from benchmarks.faultlab.model import FaultSpec
from benchmarks.faultlab.upstream import Upstream, http_get

MODULES = "/usr/lib/apache2/modules"
MAX_WORKERS = 6
_START = (r"AH00489", r"resuming normal operations", r"AH00094", r"Command line: ")

FAULTS = {f.name: f for f in (
    FaultSpec("docroot_unreadable", "permissions",
              "the site's files are no longer readable by the server user: pages answer 403",
              "restore the ownership and mode of the document root (a deploy or a chmod changed them)",
              (r"AH00132", r"AH00035", r"permissions deny server access", r"Permission denied", r'" 403 '),
              "storage"),
    FaultSpec("app_upstream_down", "network",
              "the application behind the reverse proxy stopped answering: its pages answer 503",
              "restart or repair the application server; check why it stopped (its log, OOM, a deploy)",
              (r"AH00957", r"AH01114", r"AH00959", r"failed to make connection to backend", r"Connection refused",
               r'" 503 '), "dependency", 2.0),
    FaultSpec("workers_exhausted", "overload",
              f"every worker (MaxRequestWorkers {MAX_WORKERS}) is busy with slow application requests: new "
              "requests wait or fail",
              "find what makes the application slow; add capacity or raise MaxRequestWorkers with the memory to "
              "back it",
              (r"AH00484", r"MaxRequestWorkers", r"AH01102", r"AH00898", r"timeout", r'" 50[234] '), "dependency",
              2.5),
    FaultSpec("malformed_requests", "protocol",
              "clients send requests that are not valid HTTP: a broken client or a scanner",
              "identify the source address and block it or fix the client",
              (r"AH00126", r"AH00127", r"AH00135", r"AH00566", r"AH00567", r"AH02430", r"AH10244", r"Invalid method",
               r"malformed request", r"Invalid URI", r'" 400 ', r'" 501 ', r"Response header name"), "security", 1.5),
    FaultSpec("crash_restart", "crash",
              "the server's parent process died (killed) and was restarted: requests in flight were cut",
              "read the kernel and service manager logs for why it died; check that the site answers again",
              (*_START, r"AH00558", r"AH00015", r"Address already in use"), "software", 2.0),
    FaultSpec("bad_config_restart", "configuration",
              "a restart with a broken configuration: the server refuses to start until it is fixed",
              "run apache2ctl configtest to see the line it rejects, fix it, start again",
              (r"AH00526", r"Syntax error on line", r"Invalid command", r"was not closed", r"AH00016",
               r"needs a path", *_START), "configuration", 3.0),
)}


class Apache(Service):
    """apache2 -DFOREGROUND with a config of its own: static files in ``workdir/site``, ``/app`` proxied
    to an upstream, error and access logs on stderr/stdout."""

    name = "apache"
    packages = ("apache2",)
    faults = FAULTS
    conf_name = "apache2.conf"
    broken_lines = ("MaxRequestWorker 10\n", "ProxyPass /x\n", "<Directory /srv>\n")  # what an operator mistypes

    def __init__(self) -> None:
        super().__init__()
        self.app: Upstream | None = None

    def missing(self) -> str | None:
        return missing_binaries("apache2", f"{MODULES}/mod_proxy_http.so", packages=self.packages)

    def version(self) -> str:
        r = subprocess.run(["apache2", "-v"], capture_output=True, text=True, timeout=10,
                           env={**os.environ, "APACHE_RUN_DIR": str(self.workdir)})
        return r.stdout.splitlines()[0].split(":", 1)[-1].strip()

    def command(self, conf: Path) -> list[str]:
        w = self.workdir
        env = {"APACHE_RUN_DIR": w, "APACHE_LOCK_DIR": w, "APACHE_LOG_DIR": w, "APACHE_PID_FILE": w / "apache2.pid"}
        return ["env", *(f"{k}={v}" for k, v in env.items()), "apache2", "-DFOREGROUND", "-f", str(conf)]

    def _config(self, extra: str = "") -> Path:
        w = self.workdir
        mods = ("mpm_event", "authz_core", "authz_host", "dir", "mime", "alias", "proxy",
                "proxy_http", "headers", "status")
        user = "User www-data\nGroup www-data\n" if os.geteuid() == 0 else ""
        self.conf.write_text(
            "".join(f"LoadModule {m}_module {MODULES}/mod_{m}.so\n" for m in mods) +
            f"ServerRoot {w}\nServerName lab.local\nListen 127.0.0.1:{self.port}\nPidFile {w / 'apache2.pid'}\n"
            f"Mutex file:{w}\nDefaultRuntimeDir {w}\n{user}"
            f"ErrorLog /dev/stderr\nLogLevel warn\nLogFormat \"%h %l %u %t \\\"%r\\\" %>s %b \\\"%{{Referer}}i\\\" "
            f"\\\"%{{User-agent}}i\\\"\" combined\nCustomLog /dev/stdout combined\n"
            f"ServerLimit 1\nThreadsPerChild {MAX_WORKERS}\nMaxRequestWorkers {MAX_WORKERS}\nTimeout 5\n"
            f"TypesConfig /etc/mime.types\nDocumentRoot {w / 'site'}\n"
            f"<Directory {w / 'site'}>\n    Require all granted\n</Directory>\nDirectoryIndex index.html\n"
            f"ProxyPass /app http://127.0.0.1:{self.app.port if self.app else 9}/ timeout=3 retry=0\n"
            + extra)
        return self.conf

    def start(self, workdir: Path, rng: random.Random) -> None:
        self.workdir = w = Path(workdir)
        site = w / "site"
        site.mkdir(parents=True, exist_ok=True)
        (site / "index.html").write_text("<h1>shop</h1>\n")
        for i in range(20):
            (site / f"page{i}.html").write_text(f"<p>page {i}</p>\n")
        (site / "static").mkdir(exist_ok=True)
        (site / "static" / "app.js").write_text("console.log(1)\n")
        if os.geteuid() == 0:  # the workers run as www-data: let them reach the site
            for p in (w, *w.parents):
                if p == Path("/"):
                    break
                os.chmod(p, os.stat(p).st_mode | 0o005)
            for p in site.rglob("*"):
                os.chmod(p, 0o755 if p.is_dir() else 0o644)
            os.chmod(site, 0o755)
        self.app = Upstream(free_port())
        self.app.start()
        self.port = free_port()
        self._launch(self._config())

    def _launch(self, conf: Path | None = None) -> None:
        (self.workdir / "apache2.pid").unlink(missing_ok=True)  # a killed parent leaves it behind
        super()._launch(conf)

    def stop(self) -> None:
        super().stop()
        if self.app is not None:
            self.app.stop()

    def _killed(self) -> None:
        subprocess.run(["pkill", "-9", "-f", str(self.conf)], capture_output=True, timeout=10)  # its children

    # ------------------------------------------------------------------ normal work

    def _get(self, path: str) -> int:
        return http_get(self.port, path)

    def work(self, rng: random.Random) -> None:
        """A visitor: pages, static files and the application; now and then a page that does not
        exist (404) or a request abandoned before the answer."""
        for _ in range(rng.randrange(1, 4)):
            r = rng.random()
            if r < 0.07:
                self._get(f"/page{rng.randrange(20, 40)}.html")
            elif r < 0.1:
                with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                    s.sendall(b"GET /app/report HTTP/1.1\r\nHost: shop\r\n\r\n")
            else:
                self._get(rng.choice(("/", f"/page{rng.randrange(20)}.html", "/static/app.js", "/app/cart",
                                      f"/app/items/{rng.randrange(300)}")))

    # ------------------------------------------------------------------ faults

    def _docroot_unreadable(self, rng: random.Random) -> dict:
        site = self.workdir / "site"
        victims = rng.sample(sorted(site.glob("page*.html")), k=8) + [site / "index.html"]
        for p in victims:
            os.chmod(p, 0o000)
        os.chmod(site / "static", 0o700)
        held = rng.uniform(3.0, 5.0)
        for _ in range(rng.randrange(6, 12)):
            self._get(rng.choice(["/", "/static/app.js", *(f"/{p.name}" for p in victims)]))
        time.sleep(held)
        for p in victims:
            os.chmod(p, 0o644)
        os.chmod(site / "static", 0o755)
        return {"files": len(victims) + 1, "held_s": round(held, 2)}

    def _app_upstream_down(self, rng: random.Random) -> dict:
        assert self.app is not None
        self.app.stop()
        held = rng.uniform(2.0, 4.0)
        for _ in range(rng.randrange(4, 10)):
            self._get(f"/app/items/{rng.randrange(300)}")
        time.sleep(held)
        self.app.start()
        return {"down_s": round(held, 2)}

    def _workers_exhausted(self, rng: random.Random) -> dict:
        assert self.app is not None
        self.app.mode, self.app.delay_s = "slow", rng.uniform(2.0, 2.8)
        n = rng.randrange(MAX_WORKERS * 3, MAX_WORKERS * 5)
        threads = [threading.Thread(target=self._get, args=("/app/report",), daemon=True) for _ in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(15)
        self.app.mode, self.app.delay_s = "ok", 0.0
        return {"requests": n}

    def _malformed_requests(self, rng: random.Random) -> dict:
        bad = [b"GET /index.html HTTP/9.9\r\nHost: x\r\n\r\n", b"GET /%zz HTTP/1.1\r\nHost: x\r\n\r\n",
               b"GET index.html HTTP/1.1\r\nHost: x\r\n\r\n", b"\x16\x03\x01\x02\x00\x01" + bytes(40) + b"\r\n\r\n",
               b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", b"BREW /pot HTTP/1.1\r\nHost: x\r\n\r\n"]
        sent = rng.sample(bad, k=rng.randrange(3, len(bad) + 1))
        for b in sent:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=3) as s:
                    s.sendall(b)
                    s.recv(1024)
            except OSError:
                pass
        return {"requests": len(sent)}
