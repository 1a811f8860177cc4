"""A streaming worker as a child process: config, start, readiness, metrics, peak memory, stop.

`rlog demo` and the benchmark's streaming path both run the real `rlog run` in its own
process against a broker, exactly as an operator would, and watch it through /metrics.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from rlog.config import RlogConfig

IDLE_CLOSE_S = 5.0  # trailing partial sessions close this long after the replay goes quiet
# The embedded broker (tansu) holds every consumer-group join for half the session timeout:
# at the default 60 s a lone demo or benchmark worker waits 30 s before reading a line.
GROUP_SESSION_S = 10.0


def worker_config(sections: dict[str, Any], cfg: RlogConfig, *, port: int, name: str) -> dict[str, Any]:
    """Parse + session ``sections`` of the logs, the run's cascade and stream settings, own topics."""
    conf = {k: dict(v) for k, v in sections.items()}
    session = conf.setdefault("session", {})
    session["timeout_s"] = min(float(session.get("timeout_s", IDLE_CLOSE_S)), IDLE_CLOSE_S)
    conf["cascade"] = cfg.cascade.model_dump(mode="json")
    conf["stream"] = {**cfg.stream.model_dump(mode="json"), "broker": None, "web_port": port, "app_id": name,
                      "prefix": name, "input_topic": f"{name}.raw",
                      "session_timeout_s": min(cfg.stream.session_timeout_s, GROUP_SESSION_S)}
    return conf


def write_config(conf: dict[str, Any], path: Path) -> Path:
    path.write_text(yaml.safe_dump(conf, sort_keys=False))
    return path


def start_worker(config_path: Path, bootstrap: str, log_path: Path, *, roles: tuple[str, ...] = (),
                 verbose: bool = True) -> subprocess.Popen:
    """An ``rlog run`` worker process (all roles unless ``roles`` names some)."""
    args = [sys.executable, "-m", "rlog.cli", *(["-v"] if verbose else []), "run", "--broker", bootstrap, "--config",
            str(config_path), *(a for r in roles for a in ("--role", r))]
    with open(log_path, "wb") as logf:
        return subprocess.Popen(args, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})


def scrape_metrics(port: int) -> dict[str, float]:
    """The worker's Prometheus samples by name (with labels); empty while it is not serving."""
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    except OSError:
        return {}
    out: dict[str, float] = {}
    for ln in text.splitlines():
        if ln and not ln.startswith("#"):
            name, _, value = ln.rpartition(" ")
            with contextlib.suppress(ValueError):
                out[name] = float(value)
    return out


def wait_ready(port: int, proc: subprocess.Popen, log_path: Path, timeout_s: float = 180) -> bool:
    """True once /metrics answers; on exit or timeout prints the log's tail and returns False."""
    deadline = time.monotonic() + timeout_s
    while not scrape_metrics(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            print(log_path.read_text(errors="replace")[-3000:], file=sys.stderr)
            return False
        time.sleep(1)
    return True


def judged_counts(m: dict[str, float]) -> tuple[int, int, int]:
    """(sessions published, sessions through the fast stage, escalations explained)."""
    fast = sum(v for k, v in m.items() if k.startswith('rlog_verdicts_total{stage="fast"'))
    full = sum(v for k, v in m.items() if k.startswith('rlog_verdicts_total{stage="full"'))
    return int(m.get("rlog_sessions_total", 0)), int(fast), int(full)


def all_judged(m: dict[str, float], expected: int) -> bool:
    """Every expected session was published, judged by R-Log-fast, and every escalation explained."""
    published, fast, full = judged_counts(m)
    return published >= expected and fast >= published and full >= int(m.get("rlog_escalations_total", 0))


def peak_rss_mb(pid: int) -> float | None:
    """The process's peak resident memory (Linux VmHWM), None where /proc does not say."""
    return _status_mb(pid, "VmHWM")


def rss_mb(pid: int) -> float | None:
    """The process's resident memory now (Linux VmRSS), None where /proc does not say."""
    return _status_mb(pid, "VmRSS")


def _status_mb(pid: int, key: str) -> float | None:
    try:
        for ln in Path(f"/proc/{pid}/status").read_text().splitlines():
            if ln.startswith(f"{key}:"):
                return int(ln.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def stop_worker(proc: subprocess.Popen, timeout_s: float = 30) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
