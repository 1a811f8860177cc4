"""Lines per second of each stage before the models, on a dataset's scored lines.

One pass of the real ``Pipeline`` with the miner and the sessionizer timed in place, so
the stages are measured together, as they run, not as three separate toy loops. Drain3
alone (defaults, the message text only) is timed on the same lines as the ceiling any
Drain-based pipeline works under.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import orjson
from drain3 import TemplateMiner
from drain3.template_miner_config import TemplateMinerConfig

from rlog.config import RlogConfig
from rlog.pipeline.lines import Line
from rlog.pipeline.pipeline import Pipeline


def _timed(fn: Callable[..., Any], acc: list[float]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            acc[0] += time.perf_counter() - t0

    return wrapper


def _message(text: str) -> str:
    if text.startswith("{"):
        try:
            obj = orjson.loads(text)
            if isinstance(obj, dict) and isinstance(obj.get("message"), str):
                return obj["message"]
        except orjson.JSONDecodeError:
            pass
    return text


def measure_stages(lines: Sequence[str], cfg: RlogConfig, source: str = "bench") -> dict[str, Any]:
    """Seconds and lines/s for: parse (decode, envelope, format, multi-line), mine (Drain3 with
    rlog's masks), sessionize, the three together, and Drain3 alone."""
    pipe = Pipeline(cfg)
    mine_t, sess_t = [0.0], [0.0]
    make_source = pipe.source
    wrapped: set[int] = set()

    def timed_source(name: str):
        st = make_source(name)
        if id(st.store) not in wrapped:
            wrapped.add(id(st.store))
            st.store.mine = _timed(st.store.mine, mine_t)  # type: ignore[method-assign]
        return st

    pipe.source = timed_source  # type: ignore[method-assign]
    pipe.sessionizer.add = _timed(pipe.sessionizer.add, sess_t)  # type: ignore[method-assign]
    t0 = time.perf_counter()
    for i, text in enumerate(lines, 1):
        pipe.feed(source, Line(i, text))
    pipe.flush()
    total = time.perf_counter() - t0
    messages = [_message(t) for t in lines]
    miner = TemplateMiner(config=TemplateMinerConfig())
    t0 = time.perf_counter()
    for m in messages:
        miner.add_log_message(m)
    drain_alone = time.perf_counter() - t0
    n = len(lines)
    parse = max(total - mine_t[0] - sess_t[0], 1e-9)

    def rate(seconds: float) -> float | None:
        return round(n / seconds, 1) if seconds > 0 and n else None

    return {"lines": n, "seconds": {"parse": round(parse, 4), "mine": round(mine_t[0], 4),
                                    "sessionize": round(sess_t[0], 4), "pipeline": round(total, 4),
                                    "drain3_alone": round(drain_alone, 4)},
            "lines_per_s": {"parse": rate(parse), "mine": rate(mine_t[0]), "sessionize": rate(sess_t[0]),
                            "pipeline": rate(total), "drain3_alone": rate(drain_alone)}}
