"""The detection cascade: verdict memory → batched R-Log-fast → escalation to R-Log → alerts.

Plain Python around two ``Backend`` objects, so the stream, ``rlog analyze`` and the
benchmarks run the same decisions. A session is shown to the models as its view
(``rlog.contract.representation``) and remembered by its signature
(``rlog.cascade.memory``): a known session, or one made only of templates already judged
normal, never reaches a model. Sessions of the same trouble are one open incident
(``rlog.cascade.incidents``): judged once, explained once.

R-Log-fast is a one-pass scorer where the backend can return logits: P(abnormal) is read
at the verdict position and compared with the adapter's calibrated threshold; sessions at
or above it, and unsure ones just below it (the band), escalate to R-Log. Backends that
only generate keep the decoded answer and its token log-probabilities.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace

from rlog.backends.base import Backend, BackendError, Generation, GenerationParams, can_score
from rlog.cascade.alerts import Alert, alert_id, headline_of, pick_evidence
from rlog.cascade.category import CategoryModel, category_model_for
from rlog.cascade.explain import structured_answer, written_budget
from rlog.cascade.fallback import category_of, complete
from rlog.cascade.incidents import Incident, Incidents
from rlog.cascade.memory import KnownNormal, VerdictCache, sequence_key
from rlog.config import CascadeConfig
from rlog.contract.answers import FastAnswer, FullAnswer, parse_fast, parse_full
from rlog.contract.evidence import FEATURES, evidence_of, logit
from rlog.contract.prompts import ChatPrompt, Mode
from rlog.contract.representation import SessionView, prompt_for, sequence_of, signature_key, view_of
from rlog.metrics import percentiles
from rlog.pipeline.sessions import Session, SessionLine

log = logging.getLogger(__name__)


def needs_escalation(fast: FastAnswer, below: float, threshold: float = 0.5, band: float = 0.0) -> bool:
    """Escalate what the fast model flagged, could not answer, or was unsure about.

    A scored answer is unsure within ``band`` below ``threshold``; a decoded one when the
    probability of its 'normal' is below ``below``.
    """
    if not fast.ok or fast.verdict == "abnormal":
        return True
    if fast.p_abnormal is not None:
        return fast.p_abnormal >= threshold - band
    return fast.confidence is not None and fast.confidence < below


def final_verdict(fast: FastAnswer, full: FullAnswer | None, policy: str = "full") -> str:
    """The verdict of a session; 'unknown' when neither model gave a readable one.

    ``full``: R-Log decides escalated sessions (it may clear a fast flag). ``either``: a
    session is abnormal when either model says so; R-Log can raise an unsure verdict and
    explains every flag, but never clears one. ``fast``: R-Log-fast's verdict stands; R-Log
    only explains (and decides only a session R-Log-fast could not answer).
    """
    if policy in ("either", "fast") and fast.ok and fast.verdict == "abnormal":
        return "abnormal"
    if policy == "fast" and fast.ok and fast.verdict:
        return fast.verdict
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
    known_normal: bool = False  # decided by the known-normal template memory, no model call
    incident: str | None = None  # the open incident the session is part of (abnormal verdicts)

    @property
    def escalated(self) -> bool:
        return self.full is not None

    @property
    def errors(self) -> list[str]:
        errs = [f"fast: {self.fast.error}"] if self.fast.error else []
        if self.full is not None and self.full.error:
            errs.append(f"full: {self.full.error}")
        return errs


def decision_to_state(d: Decision) -> list:
    """A decision as compact plain data for checkpoints (R-Log's reasoning is left out: it is long)."""
    full = None
    if d.full is not None:
        full = {**asdict(d.full), "reasoning": ""}
    return [d.verdict, asdict(d.fast), full, round(d.fast_ms, 1), round(d.full_ms, 1), d.known_normal, d.incident]


def decision_from_state(row: list) -> Decision:
    verdict, fast, full, fast_ms, full_ms, known, *rest = row  # rows saved before incidents have six fields
    return Decision(verdict, FastAnswer(**fast), FullAnswer(**full) if full is not None else None, fast_ms, full_ms,
                    known, rest[0] if rest else None)


@dataclass
class CascadeStats:
    sessions: int = 0
    memory_hits: int = 0  # remembered signatures (and duplicates inside one batch)
    known_normal_hits: int = 0
    incident_hits: int = 0  # sessions answered from an open incident
    explanations_reused: int = 0  # flagged sessions given an open incident's explanation instead of R-Log's
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
    def cache_hits(self) -> int:
        """Sessions answered from memory: a remembered signature, known-normal templates or an open incident."""
        return self.memory_hits + self.known_normal_hits + self.incident_hits

    @property
    def cache_hit_ratio(self) -> float:
        return self.cache_hits / self.sessions if self.sessions else 0.0

    def summary(self) -> dict:
        d = {k: v for k, v in self.__dict__.items() if not isinstance(v, deque)}
        d["cache_hits"] = self.cache_hits
        d["cache_hit_ratio"] = round(self.cache_hit_ratio, 4)
        for name in ("fast_ms", "full_ms"):
            xs = getattr(self, name)
            d[name.replace("_ms", "_batch_ms")] = {**percentiles(xs, (0.5, 0.95)), "n": len(xs)}
        return d


class Cascade:
    def __init__(self, fast: Backend, full: Backend | None, cfg: CascadeConfig,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.fast, self.full, self.cfg = fast, full, cfg
        # who names categories: the fitted evidence model (shipped with the built-in R-Log adapter), when asked
        self.categories: CategoryModel | None = (category_model_for(cfg.explain.category_model)
                                                 if cfg.explain.category == "fitted" else None)
        size = cfg.memory.size
        self.cache = VerdictCache(size)  # final decisions (fast + full) of judge()
        self.fast_cache = VerdictCache(size)  # fast-only decisions of judge(escalate=False)
        self.full_cache = VerdictCache(size)  # decisions of explain()
        self.known = KnownNormal(cfg.memory.templates)
        ic = cfg.incidents
        isize = ic.size if ic.enabled else 0
        self.incidents: Incidents[Decision] = Incidents(isize, ic.window_s, ic.min_overlap)  # final decisions
        self.fast_incidents: Incidents[Decision] = Incidents(isize, ic.window_s, ic.min_overlap)  # fast-only ones
        self.stats = CascadeStats()
        self._sleep = sleep
        self.fast_params = GenerationParams(cfg.fast.max_new_tokens, cfg.fast.temperature, ("</answer>",))
        self.full_params = GenerationParams(cfg.full.max_new_tokens, cfg.full.temperature, ("</answer>",),
                                             logprobs=False)
        scorer = fast is not None and can_score(fast)
        if cfg.scoring == "logits" and fast is not None and not scorer:
            raise BackendError(f"cascade.scoring is 'logits' but the {cfg.fast.backend} backend of "
                               f"{fast.model_id} cannot return logits; set cascade.scoring: generate or auto")
        self.scoring = "logits" if scorer and cfg.scoring != "generate" else "generate"
        cal = getattr(fast, "calibration", None)
        self.threshold = cfg.threshold if cfg.threshold is not None else cal.threshold if cal else 0.5
        self.band = cfg.band if cfg.band is not None else cal.band if cal else 0.0
        if self.band >= self.threshold:
            raise BackendError(f"cascade.band ({self.band}) must be below the threshold ({self.threshold})")
        can_transcribe = full is not None and callable(getattr(full, "transcript", None))
        if cfg.explain.structured == "on" and full is not None and not can_transcribe:
            raise BackendError(f"cascade.explain.structured is 'on' but the {cfg.full.backend} backend of "
                               f"{full.model_id} cannot write an answer in steps; set it to auto or off")
        self.structured = can_transcribe and cfg.explain.structured != "off"
        self.fusion = cal.fusion if cal is not None and cfg.fusion else None
        if self.fusion is not None:
            unknown = set(self.fusion.weights) - set(FEATURES)
            if unknown:
                raise BackendError(f"the calibration of {fast.model_id} fuses unknown evidence feature(s) "
                                   f"{', '.join(sorted(unknown))} (known: {', '.join(FEATURES)}); recalibrate it "
                                   "with this version (`rlog train calibrate`) or set cascade.fusion: false")

    def _count(self, backend: Backend | None):
        return getattr(backend, "count_tokens", None)

    def prompt(self, session: Session, mode: Mode) -> ChatPrompt:
        """What the model of ``mode`` is asked about ``session`` (its view, capped in that model's tokens)."""
        return self._prompt_of(view_of(session, self.cfg.view), mode)

    def _prompt_of(self, view: SessionView, mode: Mode) -> ChatPrompt:
        backend = self.fast if mode == "fast" else self.full
        return prompt_for(view, mode, self.cfg, self._count(backend))

    def answers(self, stage: Mode) -> bool:
        """Whether the stage's backend answers a plain one-line session now (one call, no retries).

        Tells an outage (this fails too) from a session only some input breaks (this passes);
        the memories are not touched.
        """
        backend = self.fast if stage == "fast" else self.full
        if backend is None:
            return False
        canary = Session("rlog-canary", "rlog", "window", [SessionLine(0, None, "service heartbeat ok", "canary",
                                                                       "service heartbeat ok")])
        try:
            out = backend.generate([self._prompt_of(view_of(canary, self.cfg.view), stage)],
                                   GenerationParams(max_new_tokens=1, logprobs=False))
        except BackendError:
            return False
        return len(out) == 1

    def needs_escalation(self, fast: FastAnswer) -> bool:
        if self.cfg.verdict == "fast":  # R-Log decides nothing: it explains flags (and answers what fast could not)
            return not fast.ok or fast.verdict == "abnormal"
        return needs_escalation(fast, self.cfg.escalate_below, self.threshold, self.band)

    def _retrying(self, backend: Backend, call: Callable[[], list], n: int) -> list:
        """Call a backend with retries and exponential backoff; raise after the last attempt."""
        delay = self.cfg.retry_backoff_s
        for attempt in range(self.cfg.retries + 1):
            try:
                out = call()
                if len(out) != n:
                    raise BackendError(f"{backend.model_id} returned {len(out)} outputs for {n} prompts")
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

    def _run(self, stage: str, backend: Backend, prompts: list,
             call: Callable[[list], list], batch_size: int | None = None) -> tuple[list, list[float]]:
        """Run one stage in batches; per prompt, the latency of the batch it rode in."""
        batch_size = batch_size or getattr(self.cfg, stage).batch_size
        lat: deque = getattr(self.stats, f"{stage}_ms")
        outs: list = []
        ms: list[float] = []
        for i in range(0, len(prompts), batch_size):
            chunk = prompts[i: i + batch_size]
            t0 = time.perf_counter()
            outs.extend(self._retrying(backend, lambda c=chunk: call(c), len(chunk)))
            dt = (time.perf_counter() - t0) * 1000
            lat.append(dt)
            ms.extend([dt] * len(chunk))
            setattr(self.stats, f"{stage}_batches", getattr(self.stats, f"{stage}_batches") + 1)
        setattr(self.stats, f"{stage}_calls", getattr(self.stats, f"{stage}_calls") + len(prompts))
        return outs, ms

    def _fast_stage(self, todo: dict[str, Session]) -> dict[str, tuple[FastAnswer, float]]:
        keys = list(todo)
        views = [view_of(todo[k], self.cfg.view) for k in keys]  # kept: the fusion reads their evidence
        prompts = [self._prompt_of(v, "fast") for v in views]
        out = {}
        if self.scoring == "logits":
            probs, ms = self._run("fast", self.fast, prompts, self.fast.score)  # type: ignore[attr-defined]
            for k, v, p_model, t in zip(keys, views, probs, ms, strict=True):
                # the calibrated score: the model's reading corrected by the view's plain evidence
                p = p_model if self.fusion is None else self.fusion.apply(logit(p_model), evidence_of(v))
                abnormal = p >= self.threshold
                out[k] = (FastAnswer("abnormal" if abnormal else "normal", p if abnormal else 1 - p,
                                     p_abnormal=p, p_model=p_model), t)
            return out
        gens: list[Generation]
        gens, ms = self._run("fast", self.fast, prompts, lambda c: self.fast.generate(c, self.fast_params))
        for k, p, g, t in zip(keys, prompts, gens, ms, strict=True):
            ans = parse_fast(g.text, p.prefill, g.tokens)
            self.stats.malformed_fast += not ans.ok
            out[k] = (ans, t)
        return out

    def _full_stage(self, todo: dict[str, Session], settled: dict[str, str | None] | None = None,
                    ) -> dict[str, tuple[FullAnswer, float]]:
        """R-Log on escalated sessions; ``settled``: per key, the verdict the answer is written under
        when the cascade has already decided it (see ``_settled``)."""
        if not todo:
            return {}
        if self.full is None:
            raise BackendError("escalation needs a full model (cascade.full), but none is loaded")
        keys = list(todo)
        views = {k: view_of(todo[k], self.cfg.view) for k in keys}
        prompts = [self._prompt_of(views[k], "full") for k in keys]
        full = self.full
        if self.structured:
            budget = written_budget(self.cfg.explain)
            jobs = [(p, (settled or {}).get(k),
                     self._category(pick_evidence(todo[k], views[k], self.cfg.evidence_lines)))
                    for k, p in zip(keys, prompts, strict=True)]

            def write(chunk):
                out = []
                for prompt, verdict, category in chunk:
                    with full.transcript(prompt, budget) as t:  # type: ignore[attr-defined]
                        out.append(structured_answer(t, self.cfg.explain, continue_as=verdict, category=category))
                return out

            answers, ms = self._run("full", full, jobs, write, batch_size=1)  # written one by one: own latency
        else:
            gens, ms = self._run("full", full, prompts, lambda c: full.generate(c, self.full_params))
            answers = [parse_full(g.text, p.prefill) for p, g in zip(prompts, gens, strict=True)]
        self.stats.escalations += len(keys)
        out = {}
        for k, ans, t in zip(keys, answers, ms, strict=True):
            self.stats.malformed_full += not ans.ok
            out[k] = (ans, t)
        return out

    def _category(self, evidence: Sequence[dict]) -> tuple[str, float | None] | None:
        """The category the cascade names for this evidence (and its probability), or None when R-Log's
        own choice stands."""
        if self.cfg.explain.category == "rlog":
            return None
        if self.categories is not None:
            cat, p = self.categories.choose(evidence)
            return cat, round(p, 4)
        return category_of(evidence), None  # rule

    def _settled(self, fast: FastAnswer) -> str | None:
        """The verdict already final before R-Log answers: 'abnormal' when R-Log-fast flagged the session
        and the policy lets R-Log raise but not clear. R-Log then explains the flag it cannot undo."""
        if self.cfg.verdict in ("either", "fast") and fast.ok and fast.verdict == "abnormal":
            return "abnormal"
        return None

    def _confidently_normal(self, d: Decision) -> bool:
        """A decision its templates may be remembered as normal by: normal, not escalated, not unsure."""
        f = d.fast
        if d.verdict != "normal" or d.escalated or not f.ok:
            return False
        if f.p_abnormal is not None:
            return f.p_abnormal < self.threshold - self.band
        return f.confidence is None or f.confidence >= self.cfg.escalate_below

    def key(self, session: Session) -> str:
        return signature_key(session, self.cfg)

    def judge(self, sessions: Sequence[Session], *, escalate: bool | None = None) -> list[tuple[Session, Decision, bool]]:
        """Decide every session; returns (session, decision, answered_from_memory).

        ``escalate=False`` runs the fast stage only (the stream's detect role, which hands
        escalations to the explain role through a topic); the default escalates when the
        config and a loaded full model allow.
        """
        if escalate is None:
            escalate = self.cfg.escalate and self.full is not None
        cache = self.cache if escalate else self.fast_cache
        incidents = self.incidents if escalate else self.fast_incidents
        keys = [self.key(s) for s in sessions]
        decided: dict[str, Decision] = {}
        cached: set[str] = set()
        todo: dict[str, Session] = {}
        unfamiliar: dict[str, frozenset[str]] = {}
        for s, k in zip(sessions, keys, strict=True):
            self.stats.sessions += 1
            if k in decided or k in todo:
                self.stats.memory_hits += 1  # duplicate inside this batch: judged once
                continue
            hit = cache.get(k)
            if hit is not None:
                decided[k] = hit
                cached.add(k)
                self.stats.memory_hits += 1
                continue
            u = unfamiliar[k] = self.known.unfamiliar(s)
            if self.known.covers(s, u):
                decided[k] = Decision("normal", FastAnswer("normal", None), known_normal=True)
                cached.add(k)
                self.stats.known_normal_hits += 1
                continue
            inc = incidents.recall(s.source, u, s.end_ts)
            if inc is not None:
                decided[k] = inc.decision
                cached.add(k)
                self.stats.incident_hits += 1
            else:
                todo[k] = s
        if todo:
            fast_answers = self._fast_stage(todo)
            esc = {k: todo[k] for k in todo if escalate and self.needs_escalation(fast_answers[k][0])}
            escalated = self._escalate(esc, {k: fast_answers[k] for k in esc}, unfamiliar, incidents)
            for k, s in todo.items():
                d = escalated.get(k)
                if d is None:
                    fa, ft = fast_answers[k]
                    d = self._opening(Decision(final_verdict(fa, None, self.cfg.verdict), fa, None, ft),
                                      s, unfamiliar[k], incidents)
                decided[k] = d
                cache.put(k, d)
                if self._confidently_normal(d):
                    self.known.learn(s)
        return self._tally(sessions, keys, decided, cached)

    def unfamiliar(self, session: Session) -> frozenset[str]:
        """The session's templates the known-normal memory does not cover (what incidents are matched by)."""
        return self.known.unfamiliar(session)

    def _escalate(self, esc: dict[str, Session], fast: dict[str, tuple[FastAnswer, float]],
                  unfamiliar: dict[str, frozenset[str]], incidents: Incidents[Decision], share: bool = True,
                  ) -> dict[str, Decision]:
        """R-Log on the escalations, in order, except those an open incident already explains.

        Written one by one (the structured path), a session also sees the incidents opened by
        the ones before it in the batch; decoded in batches, by those of earlier batches."""
        out: dict[str, Decision] = {}
        pending: list[str] = []
        step = 1 if self.structured else max(1, self.cfg.full.batch_size)

        def flush() -> None:
            answers = self._full_stage({k: esc[k] for k in pending}, {k: self._settled(fast[k][0]) for k in pending})
            for k in pending:
                fa, ft = fast[k]
                full, lt = answers[k]
                d = Decision(final_verdict(fa, full, self.cfg.verdict), fa, full, ft, lt)
                out[k] = self._opening(d, esc[k], unfamiliar[k], incidents) if share else d
            pending.clear()

        for k, s in esc.items():
            inc = self._incident_for(s, fast[k][0], unfamiliar[k], incidents) if share else None
            if inc is not None:
                out[k] = self._joined(inc, *fast[k])
                continue
            pending.append(k)
            if len(pending) >= step:
                flush()
        if pending:
            flush()
        return out

    def _incident_for(self, s: Session, fa: FastAnswer, unfamiliar: frozenset[str],
                      incidents: Incidents[Decision]) -> Incident[Decision] | None:
        """The open, explained incident an escalated session is part of, if any.

        A session whose unfamiliar part holds all of an incident's pattern is part of it; a flagged
        one (settled abnormal) that is only like one shares its explanation. Unsure sessions still
        go to R-Log, whose verdict they need."""
        explained = lambda d: d.full is not None and d.full.ok  # noqa: E731
        inc = incidents.recall(s.source, unfamiliar, s.end_ts)
        if inc is not None and explained(inc.decision):
            return inc
        if self._settled(fa) == "abnormal":
            return incidents.similar(s.source, unfamiliar, s.end_ts, usable=explained)
        return None

    def _joined(self, inc: Incident[Decision], fa: FastAnswer, fast_ms: float) -> Decision:
        """The decision of a flagged session that takes an open incident's explanation."""
        self.stats.explanations_reused += 1
        return Decision("abnormal", fa, inc.decision.full, fast_ms, 0.0, incident=inc.incident_id)

    def _opening(self, d: Decision, s: Session, unfamiliar: frozenset[str], incidents: Incidents[Decision]) -> Decision:
        """An abnormal decision opens an incident (named in the decision) that later sessions join."""
        if d.verdict == "abnormal":
            inc = incidents.open(s.source, unfamiliar, s.end_ts, d)
            if inc is not None:
                d.incident = inc.incident_id
        return d

    def explain(self, items: Sequence[tuple[Session, FastAnswer, float]],
                unfamiliar: Mapping[str, frozenset[str]] | None = None, *, share: bool = True,
                ) -> list[tuple[Session, Decision, bool]]:
        """The full stage for sessions the fast stage escalated (the stream's explain role).

        ``unfamiliar``: by session id, its unfamiliar templates as the detect role saw them (the
        escalation record carries them: this role's own known-normal memory may be empty);
        a session not in it is read from this cascade's memory. ``share=False``: every session gets
        R-Log's own answer, whatever incident it is part of (to score R-Log itself)."""
        keys = [self.key(s) for s, _, _ in items]
        decided: dict[str, Decision] = {}
        cached: set[str] = set()
        todo: dict[str, Session] = {}
        unf: dict[str, frozenset[str]] = {}
        fast = {k: (fa, ms) for k, (_, fa, ms) in zip(keys, items, strict=True)}
        for (s, _, _), k in zip(items, keys, strict=True):
            if k in decided or k in todo:
                continue
            hit = self.full_cache.get(k)
            if hit is not None:
                decided[k] = hit
                cached.add(k)
            else:
                given = (unfamiliar or {}).get(s.session_id)
                unf[k] = frozenset(given) if given is not None else self.known.unfamiliar(s)
                todo[k] = s
        for k, d in self._escalate(todo, {k: fast[k] for k in todo}, unf, self.incidents, share).items():
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

    # ------------------------------------------------------------------ persistence

    def memory_state(self) -> dict:
        """The verdict memories as plain data (the most recent ``memory.persist`` of each)."""
        n = self.cfg.memory.persist
        return {"cache": self.cache.state(decision_to_state, n), "fast": self.fast_cache.state(decision_to_state, n),
                "full": self.full_cache.state(decision_to_state, n), "known": self.known.state(n),
                "incidents": self.incidents.state(decision_to_state, n),
                "fast_incidents": self.fast_incidents.state(decision_to_state, n)}

    def load_memory(self, state: dict) -> int:
        """Fold a saved memory in; returns how many verdicts it held."""
        self.cache.load_state(state.get("cache", []), decision_from_state)
        self.fast_cache.load_state(state.get("fast", []), decision_from_state)
        self.full_cache.load_state(state.get("full", []), decision_from_state)
        self.known.load_state(state.get("known", []))
        self.incidents.load_state(state.get("incidents", {}), decision_from_state)
        self.fast_incidents.load_state(state.get("fast_incidents", {}), decision_from_state)
        return len(self.cache) + len(self.fast_cache) + len(self.full_cache)

    # ------------------------------------------------------------------ alerts

    def alerts(self, judged: Sequence[tuple[Session, Decision, bool]]) -> list[Alert]:
        """One alert per abnormal session (and per undecided one when `alert_on_unknown` fails open)."""
        out = []
        for s, d, was_cached in judged:
            if d.verdict != "abnormal" and not (d.verdict == "unknown" and self.cfg.alert_on_unknown):
                continue
            key = sequence_key(sequence_of(s))
            evidence = pick_evidence(s, view_of(s, self.cfg.view), self.cfg.evidence_lines)
            answer = d.full
            decided = self._category(evidence)
            if decided is not None:  # the cascade names the category (the structured path already wrote it)
                rule = [] if self.categories is not None else ["category"]  # the keywords' guess is a fallback
                answer = replace(answer or FullAnswer(None), category=decided[0], category_p=decided[1],
                                 fallback=[*(answer.fallback if answer else []), *rule])
            # never unreadable: what R-Log left empty (or an alert R-Log never saw) is filled from the evidence
            full = complete(answer, s, evidence)
            category_by = "rule" if "category" in full.fallback else "fitted" if decided is not None else "rlog"
            models = {"fast": self.fast.model_id if self.fast is not None else self.cfg.fast.model}
            if d.full is not None and self.full is not None:
                models["full"] = self.full.model_id
            confidence = d.fast.p_abnormal if d.fast.p_abnormal is not None else d.fast.confidence
            scores = {} if d.fast.p_model is None else {"model": round(d.fast.p_model, 4),
                                                        "fused": round(d.fast.p_abnormal, 4)}
            if d.full is not None and d.full.p_abnormal is not None:
                scores["full"] = d.full.p_abnormal
            out.append(Alert(
                alert_id=alert_id(s.source, s.session_id, key), session_id=s.session_id, source=s.source,
                kind=s.kind, start_ts=s.start_ts, end_ts=s.end_ts, n_lines=len(s.lines) + s.dropped_lines,
                templates=[{"id": t, "template": tpl, "count": n} for t, tpl, n in s.template_counts()],
                evidence=evidence, headline=headline_of(evidence),
                verdict=d.verdict, confidence=confidence, scores=scores,
                category=full.category, category_confidence=full.category_p,
                interpretation=full.interpretation, root_cause=full.root_cause, action=full.action,
                rationale=d.fast.rationale, escalated=d.escalated, cached=was_cached, models=models,
                latency_ms={"fast": 0.0 if was_cached else round(d.fast_ms, 1),
                            "full": 0.0 if was_cached else round(d.full_ms, 1)},
                errors=d.errors, close_reason=s.close_reason, fallback=full.fallback, category_by=category_by,
                incident_id=d.incident,
            ))
        self.stats.alerts += len(out)
        return out

    def process(self, sessions: Sequence[Session]) -> list[Alert]:
        return self.alerts(self.judge(sessions))
