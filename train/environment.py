"""The simulated O&M environment for train/: sessions with ground truth, and a reward.

R-Log learns in a simulated operations environment: it sees a log session, answers, and
is rewarded for the right format, the right verdict and (full model) the right root-cause
category. Episodes come out of the same parser, sessionizer and prompt builder the stream
serves with, so what a model is trained on is exactly what it will be asked in production.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import orjson

from rlog.config import CascadeConfig, RlogConfig, load_config
from rlog.contract.prompts import ChatPrompt, Mode
from rlog.contract.representation import SessionView, TokenCounter, prompt_for, sequence_of, view_of
from rlog.pipeline.lines import Line
from rlog.pipeline.pipeline import Pipeline
from rlog.pipeline.sessions import Session
from rlog.sim.engine import Incident, SimConfig, Simulator
from rlog.sim.output import analysis_config
from rlog.sim.scenarios import SCENARIOS
from rlog.truth import SessionTruth
from train.explain_data import as_action, as_root_cause, cap_words, grounded, lower_first, served_answer
from train.rewards import DEFAULT_WEIGHTS, RewardWeights, Score, anomaly_score


@dataclass(frozen=True)
class Episode:
    """One session to judge, with what really happened in it."""

    session: Session
    truth: SessionTruth
    incident: Incident | None  # the dominant injected incident (fault or look-alike), if any

    @property
    def templates(self) -> tuple[str, ...]:
        return sequence_of(self.session)

    def view(self, cfg: CascadeConfig | None = None) -> SessionView:
        return view_of(self.session, (cfg or CascadeConfig()).view)

    def prompt(self, mode: Mode, cfg: CascadeConfig | None = None, count: TokenCounter | None = None) -> ChatPrompt:
        cfg = cfg or CascadeConfig()
        return prompt_for(self.view(cfg), mode, cfg, count)


def score_answer(completion: str, truth: SessionTruth, mode: Mode, *, prefill: str | None = None,
                 weights: RewardWeights = DEFAULT_WEIGHTS) -> Score:
    """Reward one model output for a simulated session (train.rewards' anomaly reward).

    The session's true root-cause category earns the full model its bonus.
    """
    return anomaly_score(completion, "abnormal" if truth.label else "normal", mode,
                         category=truth.category if truth.label else None, prefill=prefill, weights=weights)


def reference_answer(ep: Episode, mode: Mode, shown: str | None = None) -> str:
    """An ideal output for the episode (what the prefill is followed by), for supervised warm-up.

    It quotes the templates that state the failure, so the rationale is grounded in what
    the model is shown; the full model's answer is the injected fault's, in the shape serving
    writes it (``train.explain_data.served_answer``). ``shown``: the session as the prompt
    shows it; a host, device or address it does not show is named generically (``grounded``).
    """
    abnormal = [ln.template for ln in ep.session.lines if ln.truth is not None and ln.truth.label]
    cited: list[str] = []
    for t in abnormal:
        if t not in cited:
            cited.append(t)
    evidence = "; ".join(f"the line \"{t[:160]}\"" for t in cited[:3])
    inc = ep.incident
    if ep.truth.label:
        title = inc.title if inc else "a failure"
        lead = evidence[0].upper() + evidence[1:] if evidence else "The logs state a failure"
        short = f"{lead}: {title}, which does not recover."
        if mode == "fast":
            return f"abnormal</answer><think>{short}</think>"
        cause = inc.cause if inc else "unknown"
        action = inc.action if inc else "investigate the failing component"
        where = f" on {inc.hosts[0]}" if inc and inc.hosts else ""
        if shown is not None and inc is not None:
            cause, action = grounded(cause, inc.vars, shown), grounded(action, inc.vars, shown)
            if inc.hosts and inc.hosts[0].lower() not in shown.lower():
                where = ""
        return served_answer("abnormal", ep.truth.category, cap_words(f"{title[0].upper() + title[1:]}{where}"),
                             as_root_cause(cause), as_action(action) or cap_words(lower_first(action)),
                             analysis=f"{short} The immediate cause: {cause} Category: {ep.truth.category}.")
    if ep.truth.lookalike and inc is not None:
        why = f"The unusual lines show {inc.title}; they recover by themselves and no line states an unrecovered failure."
    else:
        why = "Routine operations: no line states an error that does not recover."
    if mode == "fast":
        return f"normal</answer><think>{why}</think>"
    return served_answer("normal", analysis=why)


class SimEnvironment:
    """Episodes from a simulated run, in stream order, in constant memory.

    ``config`` decides parsing and sessions (default: how ``rlog analyze`` reads a
    simulation: each component in its own format, 40-line windows per component).
    """

    def __init__(self, sim: SimConfig, config: RlogConfig | None = None, *,
                 weights: RewardWeights = DEFAULT_WEIGHTS) -> None:
        self.sim_cfg = sim
        self.config = config or load_config(env={}, base=analysis_config())
        self.weights = weights
        self.simulator: Simulator | None = None

    def episodes(self) -> Iterator[Episode]:
        sim = self.simulator = Simulator(self.sim_cfg)
        pipe = Pipeline(self.config)

        def wrap(sessions: list[Session]) -> Iterator[Episode]:
            for s in sessions:
                t = s.truth
                if t is not None:
                    yield Episode(s, t, sim.info.get(t.incident) if t.incident else None)

        for line in sim.lines():
            env = orjson.dumps({"source": line.source, "host": line.host, "message": line.text}).decode()
            sessions, _ = pipe.feed("sim", Line(line.n, env), line.truth)
            yield from wrap(sessions)
        sessions, _ = pipe.flush()
        yield from wrap(sessions)

    def score(self, completion: str, episode: Episode, mode: Mode, prefill: str | None = None) -> Score:
        return score_answer(completion, episode.truth, mode, prefill=prefill, weights=self.weights)


def scenario_of(ep: Episode) -> str:
    """'normal', a fault name, or a look-alike name: the stratum an episode belongs to."""
    return ep.truth.scenario or "normal"


__all__ = ["Episode", "RewardWeights", "SCENARIOS", "Score", "SimEnvironment", "reference_answer", "scenario_of",
           "score_answer"]
