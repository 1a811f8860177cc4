"""Soak run: an endless-looking stream through the parse role on the embedded broker.

``python -m benchmarks.soak --lines 1000000 --templates 100000 --out out/soak``

Lines come from ``--templates`` distinct random templates (every one new to Drain3, the worst
case for its bounded cluster table) with variable values, plus a giant line (``--big-mb``)
every ``--big-every`` lines. A parse-only worker reads them; every ``--report-every`` lines
consumed the run records the worker's resident memory, its template count and open sessions,
and the throughput of that stretch. Lines go under 8 record keys (sources), each with its own
Drain3 miner bounded by ``parse.max_clusters``: the template bound is 8 times that. Memory
must stay flat, the template count at its bound, the throughput level. Results:
``soak.json``, ``soak.md`` (table) and ``soak.png``.
"""

from __future__ import annotations

import argparse
import random
import sys
import threading
import time
from pathlib import Path

import orjson

from stream import worker_proc as wp
from stream.broker import EmbeddedBroker, free_port
from stream.kafka_io import ensure_topics, make_producer

_LETTERS = "abcdefghijklmnopqrstuvwxyz"


def _word(k: int) -> str:
    out = ""
    k += 26 * 26
    while k:
        k, r = divmod(k, 26)
        out += _LETTERS[r]
    return out


def soak_line(i: int, rng: random.Random, templates: int) -> str:
    """Line ``i``: one of ``templates`` constant-word patterns with random values."""
    k = rng.randrange(templates)
    # Drain3 branches on the token count, then on the first tokens: vary both, or its tree's
    # fan-out limit (max_children) would fold the patterns long before the cluster bound
    words = " ".join(_word(k * (j + 3) + j) for j in range(k % 24 + 2))
    return f"{words} finished in {rng.randrange(10_000)} ms for request {rng.getrandbits(48):x} ({i})"


def run_soak(lines: int, templates: int, big_every: int, big_mb: float, report_every: int, out: Path,
             seed: int = 0, max_clusters: int = 5000) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    name = "soak"
    conf = {"parse": {"format": "raw", "envelope": "none", "max_clusters": max_clusters},
            "session": {"mode": "fixed", "by": "count", "size": 20, "timeout_s": 5},
            "stream": {"app_id": name, "prefix": name, "input_topic": f"{name}.raw", "web_port": port,
                       "partitions": 2, "session_timeout_s": wp.GROUP_SESSION_S}}
    cfg_path = wp.write_config(conf, out / "worker-config.yaml")
    log_path = out / "worker.log"
    rows: list[dict] = []
    produced = {"n": 0, "big": 0}
    with EmbeddedBroker() as broker:
        ensure_topics(broker.bootstrap, {f"{name}.raw": 2})
        proc = wp.start_worker(cfg_path, broker.bootstrap, log_path, roles=("parse",), verbose=False)
        try:
            if not wp.wait_ready(port, proc, log_path):
                raise RuntimeError(f"the worker did not start; see {log_path}")

            def produce() -> None:
                rng = random.Random(seed)
                p = make_producer(broker.bootstrap, max_request_size=int(big_mb * 1.1 * 2**20) + 2**20)
                big = ("x" * 1000 + " ") * int(big_mb * 1024)
                for i in range(lines):
                    text = big if big_every and i % big_every == big_every - 1 else soak_line(i, rng, templates)
                    produced["big"] += text is big
                    p.send(f"{name}.raw", key=b"app-%d" % (i % 8), value=text.encode())
                    produced["n"] = i + 1
                p.flush()
                p.close()

            t = threading.Thread(target=produce, daemon=True)
            t0 = time.monotonic()
            t.start()
            last_n, last_t, next_report = 0, t0, report_every
            while True:
                m = wp.scrape_metrics(port)
                n = int(m.get("rlog_lines_total", 0))
                now = time.monotonic()
                if n >= next_report or (n >= lines and not t.is_alive()):
                    rows.append({"lines": n, "seconds": round(now - t0, 1), "rss_mb": wp.rss_mb(proc.pid),
                                 "templates": int(m.get("rlog_templates", 0)),
                                 "open_sessions": int(m.get("rlog_open_sessions", 0)),
                                 "lines_per_s": round((n - last_n) / max(1e-9, now - last_t), 1),
                                 "produced": produced["n"]})
                    print(f"soak: {n:,} lines, RSS {rows[-1]['rss_mb']:.0f} MB, {rows[-1]['templates']} templates, "
                          f"{rows[-1]['lines_per_s']:,.0f} lines/s", file=sys.stderr, flush=True)
                    last_n, last_t = n, now
                    next_report = (n // report_every + 1) * report_every
                    if n >= lines:
                        break
                if proc.poll() is not None:
                    raise RuntimeError(f"the worker exited ({proc.returncode}); see {log_path}")
                time.sleep(0.5)
            peak = wp.peak_rss_mb(proc.pid)
        finally:
            wp.stop_worker(proc)
    res = {"lines": lines, "templates_generated": templates, "big_lines": produced["big"], "big_mb": big_mb,
           "max_clusters": max_clusters, "worker_peak_rss_mb": peak, "rows": rows,
           "elapsed_s": rows[-1]["seconds"] if rows else None}
    (out / "soak.json").write_bytes(orjson.dumps(res, option=orjson.OPT_INDENT_2))
    _write_report(res, out)
    return res


def _write_report(res: dict, out: Path) -> None:
    head = "| lines consumed | s | worker RSS MB | templates | open sessions | lines/s (stretch) |\n|---|---|---|---|---|---|\n"
    body = "".join(f"| {r['lines']:,} | {r['seconds']} | {r['rss_mb']:.0f} | {r['templates']:,} | {r['open_sessions']:,} "
                   f"| {r['lines_per_s']:,.0f} |\n" for r in res["rows"])
    (out / "soak.md").write_text(
        f"# Soak: {res['lines']:,} lines, {res['templates_generated']:,} distinct templates, {res['big_lines']} lines of "
        f"{res['big_mb']:g} MB, parse role on the embedded broker\n\nTemplate bound (parse.max_clusters): "
        f"{res['max_clusters']:,}; worker peak RSS {res['worker_peak_rss_mb']:.0f} MB.\n\n" + head + body)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    xs = [r["lines"] for r in res["rows"]]
    fig, ax = plt.subplots(1, 3, figsize=(12, 3.2))
    for a, key, title in zip(ax, ("rss_mb", "templates", "lines_per_s"), ("worker RSS (MB)", "templates",
                                                                        "lines/s"), strict=True):
        a.plot(xs, [r[key] for r in res["rows"]], marker="o")
        a.set_title(title)
        a.set_xlabel("lines consumed")
        a.set_ylim(bottom=0)
    fig.tight_layout()
    fig.savefig(out / "soak.png", dpi=110)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--templates", type=int, default=100_000)
    ap.add_argument("--big-every", type=int, default=250_000, help="a giant line every N lines (0: none)")
    ap.add_argument("--big-mb", type=float, default=10.0)
    ap.add_argument("--report-every", type=int, default=100_000)
    ap.add_argument("--out", type=Path, default=Path("out/soak"))
    a = ap.parse_args(argv)
    run_soak(a.lines, a.templates, a.big_every, a.big_mb, a.report_every, a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
