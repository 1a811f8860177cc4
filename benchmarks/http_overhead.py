"""What the HTTP backend adds per call over the model server's own latency.

``python -m benchmarks.http_overhead --out benchmarks/results/http``

One real OpenAI-compatible server (``transformers serve`` on the built-in SmolLM2 folder),
two clients in the same run, alternating batch by batch so drift hits both alike:

- the baseline: a bare ``httpx.AsyncClient`` posting the already rendered prompts to
  ``/v1/completions``, ``concurrency`` at once (what a model server costs a minimal client);
- ``OpenAIBackend.generate`` on the same sessions: rendering with the chat template, the
  context check, the pooled client, the event-loop hop from the calling thread, parsing.

Each request asks for one token, so the server's part is small and the client's shows. The
result is the added wall time per call (batch difference / batch size), with a bootstrap
interval over batches; ``http_overhead.json`` and ``http_overhead.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

from benchmarks.model_server import ModelServer, build_tiny_model
from rlog.backends.base import GenerationParams
from rlog.backends.openai_backend import OpenAIBackend
from rlog.config import CascadeConfig
from rlog.contract.representation import prompt_for, view_of_templates
from rlog.models import SMOLLM2, resolve_model

SERVED = "rlog/smollm2-135m-instruct"


def _sessions(n: int, seed: int = 3) -> list[list[str]]:
    rng = random.Random(seed)
    words = ["disk", "read", "error", "block", "user", "login", "session", "timeout", "retry", "node", "kernel", "ok"]
    return [[" ".join(rng.choice(words) for _ in range(rng.randint(4, 9))) + " <*>" for _ in range(rng.randint(2, 6))]
            for _ in range(n)]


def _interval(xs: list[float], reps: int = 2000, seed: int = 0) -> tuple[float, float]:
    rng = random.Random(seed)
    means = sorted(statistics.fmean(rng.choices(xs, k=len(xs))) for _ in range(reps))
    return means[int(0.025 * reps)], means[int(0.975 * reps) - 1]


def measure(base_url: str, tokenizer: Path, *, concurrency: int = 8, batches: int = 30, warmup: int = 2,
            progress: bool = True) -> dict:
    import httpx

    cfg = CascadeConfig()
    backend = OpenAIBackend(base_url, SERVED, tokenizer, concurrency=concurrency, timeout_s=300)
    prompts = [prompt_for(view_of_templates(s), "fast", cfg) for s in _sessions(concurrency * (batches + warmup))]
    texts = [backend.render(p) for p in prompts]
    params = GenerationParams(max_new_tokens=1, logprobs=False)

    async def bare(batch: list[str], client) -> None:
        async def one(text):
            r = await client.post("/completions", json={"model": SERVED, "prompt": text, "max_tokens": 1,
                                                          "temperature": 0})
            r.raise_for_status()
            r.json()

        await asyncio.gather(*(one(t) for t in batch))

    loop = asyncio.new_event_loop()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    client = httpx.AsyncClient(base_url=base_url, limits=limits, timeout=300)
    rows = []
    try:
        for b in range(batches + warmup):
            chunk = slice(b * concurrency, (b + 1) * concurrency)
            order = ["bare", "rlog"] if b % 2 == 0 else ["rlog", "bare"]
            walls = {}
            for who in order:
                t0 = time.perf_counter()
                if who == "bare":
                    loop.run_until_complete(bare(texts[chunk], client))
                else:
                    backend.generate(prompts[chunk], params)
                walls[who] = (time.perf_counter() - t0) * 1000
            if b >= warmup:
                rows.append(walls)
            if progress:
                print(f"\rhttp overhead: batch {b + 1}/{batches + warmup}", end="", file=sys.stderr, flush=True)
    finally:
        loop.run_until_complete(client.aclose())
        loop.close()
        backend.close()
    if progress:
        print(file=sys.stderr)
    added = [(r["rlog"] - r["bare"]) / concurrency for r in rows]
    lo, hi = _interval(added)
    return {"concurrency": concurrency, "batches": len(rows), "max_tokens": 1,
            "bare_batch_ms_median": round(statistics.median(r["bare"] for r in rows), 1),
            "rlog_batch_ms_median": round(statistics.median(r["rlog"] for r in rows), 1),
            "bare_ms_per_call": round(statistics.median(r["bare"] for r in rows) / concurrency, 2),
            "added_ms_per_call_mean": round(statistics.fmean(added), 2),
            "added_ms_per_call_median": round(statistics.median(added), 2),
            "added_ms_per_call_95": [round(lo, 2), round(hi, 2)], "target_ms": 5.0}


def report(doc: dict) -> str:
    runs = doc["runs"]
    any_run = next(iter(runs.values()))
    lines = ["# HTTP backend overhead", "",
             f"`transformers serve` on this host ({doc['environment']['time']}, {doc['environment']['cpus']} CPUs): "
             f"{any_run['batches']} batches of {any_run['concurrency']} concurrent one-token completions per client, "
             "a bare httpx client (the baseline: the server's own latency as a minimal client sees it) and rlog's "
             "OpenAIBackend alternating batch by batch.", "",
             "| served model | bare client, ms per call | rlog backend, ms per call | added ms per call (mean) | 95% "
             "interval | target |", "|---|---|---|---|---|---|"]
    for r in runs.values():
        lines.append(f"| {r['model']} | {r['bare_ms_per_call']} | {round(r['rlog_batch_ms_median'] / r['concurrency'], 2)}"
                     f" | {r['added_ms_per_call_mean']} | {r['added_ms_per_call_95'][0]} to "
                     f"{r['added_ms_per_call_95'][1]} | ≤ {r['target_ms']} |")
    lines += ["", "Per call = a batch's wall time / its size. The tiny model keeps the server's part small, so the "
              "client's cost is resolved; with SmolLM2 the server's own time and its noise dominate.", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="out/http_overhead")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--batches", type=int, default=30)
    ap.add_argument("--models", default="tiny,smollm2", help="served models, in turn: tiny (random 2-layer Llama: the "
                                                            "server's own time small, so the client's shows) and/or "
                                                            "smollm2 (the built-in 135M model)")
    a = ap.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    results = {}
    for name in a.models.split(","):
        folder = build_tiny_model(out / "tiny-model") if name == "tiny" else resolve_model(SMOLLM2)
        with ModelServer({SERVED: folder}, out / f"server-{name}") as server:
            r = measure(server.base_url, folder, concurrency=a.concurrency, batches=a.batches)
        r["model"] = "tiny random Llama (2 layers), SmolLM2 tokenizer" if name == "tiny" else "SmolLM2-135M-Instruct"
        results[name] = r
    doc = {"runs": results, "environment": {"time": time.strftime("%Y-%m-%d %H:%M:%S"), "cpus": os.cpu_count(),
                                            "server": "transformers serve, CPU, float32 weights as stored"}}
    (out / "http_overhead.json").write_text(json.dumps(doc, indent=2), encoding="utf-8")
    text = report(doc)
    (out / "http_overhead.md").write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
