"""The detection cascade: verdict cache → batched R-Log-fast → escalation to R-Log → alerts.

Plain Python around two ``Backend`` objects, so the stream, ``rlog analyze`` and the
benchmarks run the same decisions. Sessions are judged by their *normalised template
sequence* (``rlog.contract.representation``): the prompt is a pure function of it, so a
cached verdict (``rlog.cascade.cache``) is exactly what the model would say again.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from rlog.backends.base import Backend, BackendError, Generation, GenerationParams
from rlog.cascade.alerts import Alert, alert_id, pick_evidence
from rlog.cascade.cache import VerdictCache, sequence_key
from rlog.config import CascadeConfig
from rlog.contract.answers import FastAnswer, FullAnswer, parse_fast, parse_full
from rlog.contract.prompts import ChatPrompt, Mode
from rlog.contract.representation import prompt_for, sequence_of
from rlog.metrics import percentiles
from rlog.pipeline.sessions import Session

log = logging.getLogger(__name__)


def needs_escalation(fast: FastAnswer, below: float) -> bool:
    """Escalate what the fast model flagged, could not answer, or was unsure about."""
    if not fast.ok or fast.verdict == "abnormal":
        return True
    return fast.confidence is not None and fast.confidence < below


def final_verdict(fast: FastAnswer, full: FullAnswer | None, policy: str = "full") -> str:
    """The verdict of a session; 'unknown' when neither model gave a readable one.

    ``full``: R-Log decides escalated sessions (it may clear a fast flag). ``either``: a
    session is abnormal when either model says so; R-Log can raise an unsure verdict and
    explains every flag, but never clears one.
    """
    if policy == "either" and fast.ok and fast.verdict == "abnormal":
        return "abnormal"
    if full is not None and full.ok and full.verdict:
        return full.verdict
    if fast.ok and fast.verdict:
        return fast.verdict
    return "unknown"


@dataclass
class Decision:
    verdict: str
    fast: FastAnswer
    full: FullAnswer | None = None
    fast_ms: float = 0.0
    full_ms: float = 0.0

    @property
    def escalated(self) -> bool:
        return self.full is not None

    @property
    def errors(self) -> list[str]:
        errs = [f"fast: {self.fast.error}"] if self.fast.error else []
        if self.full is not None and self.full.error:
            errs.append(f"full: {self.full.error}")
        return errs


@dataclass
class CascadeStats:
    sessions: int = 0
    cache_hits: int = 0
    fast_calls: int = 0
    fast_batches: int = 0
    full_calls: int = 0
    full_batches: int = 0
    escalations: int = 0
    malformed_fast: int = 0
    malformed_full: int = 0
    undecided: int = 0
    abnormal: int = 0
    alerts: int = 0
    retries: int = 0
    fast_ms: deque = field(default_factory=lambda: deque(maxlen=10_000))
    full_ms: deque = field(default_factory=lambda: deque(maxlen=10_000))

    @property
    def cache_hit_ratio(self) -> float:
        return self.cache_hits / self.sessions if self.sessions else 0.0

    def summary(self) -> dict:
        d = {k: v for k, v in self.__dict__.items() if not isinstance(v, deque)}
        d["cache_hit_ratio"] = round(self.cache_hit_ratio, 4)
        for name in ("fast_ms", "full_ms"):
            xs = getattr(self, name)
            d[name.replace("_ms", "_batch_ms")] = {**percentiles(xs, (0.5, 0.95)), "n": len(xs)}
        return d


class Cascade:
    def __init__(self, fast: Backend, full: Backend | None, cfg: CascadeConfig,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.fast, self.full, self.cfg = fast, full, cfg
        self.cache = VerdictCache(cfg.cache_size)  # final decisions (fast + full) of judge()
        self.fast_cache = VerdictCache(cfg.cache_size)  # fast-only decisions of judge(escalate=False)
        self.full_cache = VerdictCache(cfg.cache_size)  # decisions of explain()
        self.stats = CascadeStats()
        self._sleep = sleep
        self.fast_params = GenerationParams(cfg.fast.max_new_tokens, cfg.fast.temperature, ("</answer>",))
        self.full_params = GenerationParams(cfg.full.max_new_tokens, cfg.full.temperature, ("</answer>",),
                                             logprobs=False)

    def _prompt(self, seq: Sequence[str], mode: Mode) -> ChatPrompt:
        return prompt_for(seq, mode, self.cfg)

    def _generate(self, backend: Backend, prompts: list[ChatPrompt], params: GenerationParams) -> list[Generation]:
        """Call a backend with retries and exponential backoff; raise after the last attempt."""
        delay = self.cfg.retry_backoff_s
        for attempt in range(self.cfg.retries + 1):
            try:
                out = backend.generate(prompts, params)
                if len(out) != len(prompts):
                    raise BackendError(f"{backend.model_id} returned {len(out)} outputs for {len(prompts)} prompts")
                return out
            except BackendError as e:
                if attempt == self.cfg.retries:
                    raise
                self.stats.retries += 1
                log.warning("model %s failed (%s); retry %d/%d in %.1fs", backend.model_id, e, attempt + 1,
                            self.cfg.retries, delay)
                self._sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")

    def _run(self, stage: str, backend: Backend, prompts: list[ChatPrompt],
             params: GenerationParams) -> tuple[list[Generation], list[float]]:
        """Generate for one stage in batches; per prompt, the latency of the batch it rode in."""
        batch_size = getattr(self.cfg, stage).batch_size
        lat: deque = getattr(self.stats, f"{stage}_ms")
        gens: list[Generation] = []
        ms: list[float] = []
        for i in range(0, len(prompts), batch_size):
            chunk = prompts[i: i + batch_size]
            t0 = time.perf_counter()
            gens.extend(self._generate(backend, chunk, params))
            dt = (time.perf_counter() - t0) * 1000
            lat.append(dt)
            ms.extend([dt] * len(chunk))
            setattr(self.stats, f"{stage}_batches", getattr(self.stats, f"{stage}_batches") + 1)
        setattr(self.stats, f"{stage}_calls", getattr(self.stats, f"{stage}_calls") + len(prompts))
        return gens, ms

    def _fast_stage(self, todo: dict[str, tuple[str, ...]]) -> dict[str, tuple[FastAnswer, float]]:
        keys = list(todo)
        prompts = [self._prompt(todo[k], "fast") for k in keys]
        gens, ms = self._run("fast", self.fast, prompts, self.fast_params)
        out = {}
        for k, p, g, t in zip(keys, prompts, gens, ms, strict=True):
            ans = parse_fast(g.text, p.prefill, g.tokens)
            self.stats.malformed_fast += not ans.ok
            out[k] = (ans, t)
        return out

    def _full_stage(self, todo: dict[str, tuple[str, ...]]) -> dict[str, tuple[FullAnswer, float]]:
        if not todo:
            return {}
        if self.full is None:
            raise BackendError("escalation needs a full model (cascade.full), but none is loaded")
        keys = list(todo)
        prompts = [self._prompt(todo[k], "full") for k in keys]
        gens, ms = self._run("full", self.full, prompts, self.full_params)
        self.stats.escalations += len(keys)
        out = {}
        for k, p, g, t in zip(keys, prompts, gens, ms, strict=True):
            ans = parse_full(g.text, p.prefill)
            self.stats.malformed_full += not ans.ok
            out[k] = (ans, t)
        return out

    def judge(self, sessions: Sequence[Session], *, escalate: bool | None = None) -> list[tuple[Session, Decision, bool]]:
        """Decide every session; returns (session, decision, served_from_cache).

        ``escalate=False`` runs the fast stage only (the stream's detect role, which hands
        escalations to the explain role through a topic); the default escalates when the
        config and a loaded full model allow.
        """
        if escalate is None:
            escalate = self.cfg.escalate and self.full is not None
        cache = self.cache if escalate else self.fast_cache
        seqs = [sequence_of(s) for s in sessions]
        keys = [sequence_key(q) for q in seqs]
        decided: dict[str, Decision] = {}
        cached: set[str] = set()
        todo: dict[str, tuple[str, ...]] = {}
        for q, k in zip(seqs, keys, strict=True):
            self.stats.sessions += 1
            if k in decided or k in todo:
                self.stats.cache_hits += 1  # duplicate inside this batch: judged once
                continue
            hit = cache.get(k)
            if hit is not None:
                decided[k] = hit
                cached.add(k)
                self.stats.cache_hits += 1
            else:
                todo[k] = q
        if todo:
            fast_answers = self._fast_stage(todo)
            esc = {k: todo[k] for k in todo if escalate and needs_escalation(fast_answers[k][0], self.cfg.escalate_below)}
            full_answers = self._full_stage(esc)
            for k in todo:
                fa, ft = fast_answers[k]
                full, lt = full_answers.get(k, (None, 0.0))
                d = Decision(final_verdict(fa, full, self.cfg.verdict), fa, full, ft, lt)
                decided[k] = d
                cache.put(k, d)
        return self._tally(sessions, keys, decided, cached)

    def explain(self, items: Sequence[tuple[Session, FastAnswer, float]]) -> list[tuple[Session, Decision, bool]]:
        """The full stage for sessions the fast stage escalated (the stream's explain role)."""
        seqs = [sequence_of(s) for s, _, _ in items]
        keys = [sequence_key(q) for q in seqs]
        decided: dict[str, Decision] = {}
        cached: set[str] = set()
        todo: dict[str, tuple[str, ...]] = {}
        fast = {k: (fa, ms) for k, (_, fa, ms) in zip(keys, items, strict=True)}
        for q, k in zip(seqs, keys, strict=True):
            if k in decided or k in todo:
                continue
            hit = self.full_cache.get(k)
            if hit is not None:
                decided[k] = hit
                cached.add(k)
            else:
                todo[k] = q
        full_answers = self._full_stage(todo)
        for k in todo:
            fa, ft = fast[k]
            full, lt = full_answers[k]
            d = Decision(final_verdict(fa, full, self.cfg.verdict), fa, full, ft, lt)
            decided[k] = d
            self.full_cache.put(k, d)
        return self._tally([s for s, _, _ in items], keys, decided, cached)

    def _tally(self, sessions: Sequence[Session], keys: list[str], decided: dict[str, Decision],
               cached: set[str]) -> list[tuple[Session, Decision, bool]]:
        out = []
        for s, k in zip(sessions, keys, strict=True):
            d = decided[k]
            self.stats.undecided += d.verdict == "unknown"
            self.stats.abnormal += d.verdict == "abnormal"
            out.append((s, d, k in cached))
        return out

    def alerts(self, judged: Sequence[tuple[Session, Decision, bool]]) -> list[Alert]:
        """One alert per abnormal session (and per undecided one when `alert_on_unknown` fails open)."""
        out = []
        for s, d, was_cached in judged:
            if d.verdict != "abnormal" and not (d.verdict == "unknown" and self.cfg.alert_on_unknown):
                continue
            key = sequence_key(sequence_of(s))
            full = d.full if d.full is not None and d.full.ok else None
            models = {"fast": self.fast.model_id if self.fast is not None else self.cfg.fast.model}
            if d.full is not None and self.full is not None:
                models["full"] = self.full.model_id
            out.append(Alert(
                alert_id=alert_id(s.source, s.session_id, key), session_id=s.session_id, source=s.source,
                kind=s.kind, start_ts=s.start_ts, end_ts=s.end_ts, n_lines=len(s.lines) + s.dropped_lines,
                templates=[{"id": t, "template": tpl, "count": n} for t, tpl, n in s.template_counts()],
                evidence=pick_evidence([(ln.template_id, ln.raw) for ln in s.lines], self.cfg.evidence_lines),
                verdict=d.verdict, confidence=d.fast.confidence,
                category=full.category if full else None,
                interpretation=full.interpretation if full else "",
                root_cause=full.root_cause if full else "", action=full.action if full else "",
                rationale=d.fast.rationale, escalated=d.escalated, cached=was_cached, models=models,
                latency_ms={"fast": 0.0 if was_cached else round(d.fast_ms, 1),
                            "full": 0.0 if was_cached else round(d.full_ms, 1)},
                errors=d.errors, close_reason=s.close_reason,
            ))
        self.stats.alerts += len(out)
        return out

    def process(self, sessions: Sequence[Session]) -> list[Alert]:
        return self.alerts(self.judge(sessions))
