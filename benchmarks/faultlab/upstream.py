"""Upstream web servers the lab puts behind a proxy: real HTTP on loopback, each one able to go
away, answer slowly or fail, so the proxy in front of it meets real upstream faults."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Upstream:
    """One HTTP server on ``port``: ``mode`` is ok, slow (``delay_s`` before answering) or error (500)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.mode = "ok"
        self.delay_s = 0.0
        self._server: ThreadingHTTPServer | None = None

    def _handler(self):
        up = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                if up.mode == "slow":
                    time.sleep(up.delay_s)
                code = 500 if up.mode == "error" else 404 if self.path.startswith("/missing") else 200
                body = b"ok\n" if code == 200 else b"no\n"
                try:
                    self.send_response(code)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the proxy gave up on us first

            def log_message(self, *args) -> None:  # the upstream's own log is not the daemon's
                pass

        return Handler

    def start(self) -> None:
        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def http_get(port: int, path: str, timeout_s: float = 8.0) -> int:
    """GET ``path`` from the daemon on ``port``: the status code, 0 when no answer came."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout_s) as r:
            r.read()
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return 0
