"""R-Log-fast and the cascade on the benchmark's sessions, and a per-session speed probe.

The cascade is the stream's own (verdict cache, batching, escalation). R-Log-fast alone is
read off the same run: the fast verdict of every session before escalation, so the two
are compared on identical model outputs without paying for the fast model twice.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from tqdm import tqdm

from rlog.cascade.cascade import Cascade, Decision
from rlog.contract.answers import FastAnswer
from rlog.contract.representation import sequence_of
from rlog.metrics import TruthScorer, percentiles
from rlog.pipeline.sessions import Session


@dataclass
class LLMRun:
    fast_pred: list[bool]
    cascade_pred: list[bool]
    model_s: float
    stats: dict
    root_cause: dict | None = None


def run_cascade(cascade: Cascade, sessions: Sequence[Session], *, desc: str, progress: bool = True) -> LLMRun:
    """Judge ``sessions`` in the stream's chunk size, with a progress bar."""
    chunk = max(1, cascade.cfg.fast.batch_size)
    decisions: list[Decision] = []
    t0 = time.perf_counter()
    with tqdm(total=len(sessions), unit="session", desc=desc, disable=not progress, file=sys.stderr) as bar:
        for i in range(0, len(sessions), chunk):
            part = sessions[i: i + chunk]
            decisions.extend(d for _, d, _ in cascade.judge(part))
            bar.update(len(part))
    model_s = time.perf_counter() - t0
    scorer = None
    if any(s.truth is not None and s.truth.category for s in sessions):
        scorer = TruthScorer()
        for s, d in zip(sessions, decisions, strict=True):
            if s.truth is not None:
                full = d.full if d.full is not None and d.full.ok else None
                scorer.add(s.truth, d.verdict, full.category if full else None)
    return LLMRun(
        fast_pred=[d.fast.ok and d.fast.verdict == "abnormal" for d in decisions],
        cascade_pred=[d.verdict == "abnormal" for d in decisions],
        model_s=model_s, stats=cascade.stats.summary(),
        root_cause=scorer.root_cause() if scorer else None,
    )


def warm_up(cascade: Cascade, sessions: Sequence[Session], *, desc: str, progress: bool = True) -> dict:
    """Run R-Log-fast over earlier traffic (no escalation) so the cascade's memories hold what a
    stream that has been running would have learnt, then start its counters afresh.

    Only the model's own verdicts are remembered, never labels: a session the fast model judged
    confidently normal teaches its templates as known-normal, as it does in the stream. What the
    warm-up cost is returned, not counted in the scored run.
    """
    from rlog.cascade.cascade import CascadeStats

    chunk = max(1, cascade.cfg.fast.batch_size)
    t0 = time.perf_counter()
    with tqdm(total=len(sessions), unit="session", desc=desc, disable=not progress, file=sys.stderr) as bar:
        for i in range(0, len(sessions), chunk):
            part = sessions[i: i + chunk]
            cascade.judge(part, escalate=False)
            bar.update(len(part))
    st = cascade.stats
    out = {"sessions": len(sessions), "lines": sum(len(s.lines) for s in sessions), "fast_calls": st.fast_calls,
           "seconds": round(time.perf_counter() - t0, 1), "known_normal_templates": len(cascade.known),
           "remembered_verdicts": len(cascade.fast_cache)}
    cascade.stats = CascadeStats()
    return out


@dataclass
class Probe:
    """Per-session latency of R-Log-fast and R-Log on the same sessions, one at a time."""

    sessions: int = 0
    fast_ms: list[float] = field(default_factory=list)
    full_ms: list[float] = field(default_factory=list)
    fast_tokens: list[int] = field(default_factory=list)
    full_tokens: list[int] = field(default_factory=list)
    prompt_tokens: list[int] = field(default_factory=list)

    def summary(self) -> dict:
        fast = {"mean": _mean(self.fast_ms), **percentiles(self.fast_ms)}
        full = {"mean": _mean(self.full_ms), **percentiles(self.full_ms)}
        speedup = round(full["mean"] / fast["mean"], 2) if fast["mean"] and full["mean"] else None
        return {"sessions": self.sessions, "fast_ms": fast, "full_ms": full, "speedup_mean": speedup,
                "speedup_p50": round(full["p50"] / fast["p50"], 2) if fast["p50"] and full["p50"] else None,
                "fast_completion_tokens_mean": _mean(self.fast_tokens),
                "full_completion_tokens_mean": _mean(self.full_tokens),
                "prompt_tokens_mean": _mean(self.prompt_tokens),
                "fast_ms_all": [round(x, 1) for x in self.fast_ms], "full_ms_all": [round(x, 1) for x in self.full_ms]}


def _mean(xs: Sequence[float]) -> float | None:
    return round(sum(xs) / len(xs), 1) if xs else None


def pick_probe_sessions(sessions: Sequence[Session], labels: Sequence[bool], n: int) -> list[Session]:
    """Up to ``n`` sessions with distinct template sequences, abnormal and normal alternating."""
    seen: set[tuple[str, ...]] = set()
    pools: dict[bool, list[Session]] = {True: [], False: []}
    for s, lab in zip(sessions, labels, strict=True):
        q = sequence_of(s)
        if q not in seen:
            seen.add(q)
            pools[lab].append(s)
    out: list[Session] = []
    while len(out) < n and (pools[True] or pools[False]):
        for lab in (True, False):
            if pools[lab] and len(out) < n:
                out.append(pools[lab].pop(0))
    return out


def probe(cascade: Cascade, sessions: Sequence[Session], *, progress: bool = True) -> Probe:
    """Time each session alone (batch of one) through both models: the latency one session sees.

    R-Log is timed as the stream runs it: its structured answer where the backend writes in
    steps (the explain role on a flagged session), else one decoded answer."""
    p = Probe()
    if cascade.full is None:
        return p
    for s in tqdm(sessions, unit="session", desc="fast vs full probe", disable=not progress, file=sys.stderr):
        for mode, backend, params, ms, toks in (("fast", cascade.fast, cascade.fast_params, p.fast_ms, p.fast_tokens),
                                                ("full", cascade.full, cascade.full_params, p.full_ms, p.full_tokens)):
            prompt = cascade.prompt(s, mode)
            t0 = time.perf_counter()
            if mode == "fast" and cascade.scoring == "logits":  # one forward pass, nothing decoded
                backend.score([prompt])
                ms.append((time.perf_counter() - t0) * 1000)
                toks.append(0)
                p.prompt_tokens.append(backend.count_tokens(backend.render(prompt)))
                continue
            if mode == "full" and cascade.structured:  # the stream's explain role: the answer written in steps
                _, d, _ = cascade.explain([(s, FastAnswer("abnormal", 1.0, p_abnormal=1.0), 0.0)], share=False)[0]
                ms.append((time.perf_counter() - t0) * 1000)
                f = d.full
                written = " ".join([f.reasoning, f.interpretation, f.root_cause, f.action]) if f is not None else ""
                toks.append(backend.count_tokens(written))
                continue
            g = backend.generate([prompt], params)[0]
            ms.append((time.perf_counter() - t0) * 1000)
            toks.append(g.completion_tokens)
            if mode == "fast":
                p.prompt_tokens.append(g.prompt_tokens)
        p.sessions += 1
    return p
