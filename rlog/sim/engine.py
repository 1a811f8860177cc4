"""The simulation clock: normal workload and incidents merged into one time-ordered stream.

Activities schedule their lines ahead of time into a heap; lines are written in event-time
order, so components interleave like a central log collector sees them. Memory holds only
lines scheduled but not yet written (a few seconds of traffic plus running incidents), so
a run of millions of lines streams in constant memory. One seeded RNG drives everything:
the same config gives the same bytes.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from rlog.sim.render import Msg, render
from rlog.sim.scenarios import BENIGN, FAULTS, SCENARIOS, get_scenario
from rlog.sim.script import Script
from rlog.sim.workload import ACTIVITIES, DEFAULT_MIX
from rlog.sim.world import Rand, World
from rlog.truth import NORMAL, LineTruth


class Injection(BaseModel):
    """One incident at a chosen time (seconds after the start)."""

    model_config = ConfigDict(extra="forbid")
    scenario: str
    at_s: float = Field(ge=0)

    @field_validator("scenario")
    @classmethod
    def _known(cls, v: str) -> str:
        get_scenario(v)
        return v

    @classmethod
    def parse(cls, spec: str) -> Injection:
        """``disk_failure@600`` → disk failure 600 s after the start."""
        name, sep, at = spec.partition("@")
        if not sep:
            raise ValueError(f"injection {spec!r}: write SCENARIO@SECONDS, e.g. disk_failure@600")
        try:
            return cls(scenario=name.strip(), at_s=float(at))
        except ValueError as e:
            raise ValueError(f"injection {spec!r}: {e}") from None


class SimConfig(BaseModel):
    """Everything that decides a simulated run; the same config always gives the same logs."""

    model_config = ConfigDict(extra="forbid")
    seed: int = 0
    lines: int | None = Field(5000, ge=1, description="stop after this many lines (None: use duration_s)")
    duration_s: float | None = Field(None, gt=0, description="stop after this much simulated time")
    rate: float = Field(10.0, gt=0, description="mean normal log lines per simulated second")
    start: datetime = Field(datetime(2026, 1, 5, 8, 0, tzinfo=UTC), description="simulated clock at the first line")
    mix: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_MIX), description="share of lines per component")
    faults: list[str] = Field(default_factory=lambda: list(FAULTS), description="fault scenarios drawn at random")
    benign: list[str] = Field(default_factory=lambda: list(BENIGN), description="look-alike scenarios drawn at random")
    fault_gap_s: float = Field(90.0, ge=0, description="mean quiet time between random faults (0: none)")
    benign_gap_s: float = Field(120.0, ge=0, description="mean quiet time between random look-alikes (0: none)")
    warmup_s: float = Field(30.0, ge=0, description="normal traffic before the first random incident")
    inject: list[Injection] = Field(default_factory=list, description="incidents at chosen times, besides random ones")
    datanodes: int = Field(8, ge=4, le=200)
    compute_nodes: int = Field(24, ge=2, le=5000)

    @field_validator("start")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        return v if v.tzinfo is not None else v.replace(tzinfo=UTC)

    @field_validator("faults", "benign")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        for name in v:
            get_scenario(name)
        return v

    @model_validator(mode="after")
    def _consistent(self) -> SimConfig:
        if self.lines is None and self.duration_s is None:
            raise ValueError("give lines or duration_s (or both: whichever comes first stops the run)")
        unknown = set(self.mix) - set(ACTIVITIES)
        if unknown or not any(v > 0 for v in self.mix.values()):
            raise ValueError(f"mix needs positive shares for components among {', '.join(ACTIVITIES)}")
        for name in self.faults:
            if SCENARIOS[name].kind != "fault":
                raise ValueError(f"{name} is a benign look-alike, not a fault")
        for name in self.benign:
            if SCENARIOS[name].kind != "benign":
                raise ValueError(f"{name} is a fault, not a benign look-alike")
        return self


@dataclass
class Incident:
    """One injected scenario occurrence and what it wrote (filled in as its lines go out)."""

    id: str
    scenario: str
    kind: str
    category: str | None
    title: str
    cause: str
    action: str
    start_ts: float
    hosts: list[str]
    components: list[str]
    planned_lines: int
    lines: int = 0
    abnormal_lines: int = 0
    first_line: int | None = None
    last_line: int | None = None
    end_ts: float | None = None
    truth_abnormal: LineTruth = field(default=NORMAL, repr=False)
    truth_other: LineTruth = field(default=NORMAL, repr=False)
    # the values its cause and action name (host, device, service, ...): what training checks the logs show
    vars: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def done(self) -> bool:
        return self.lines >= self.planned_lines

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if not k.startswith("truth_")}


@dataclass(frozen=True, slots=True)
class SimLine:
    """One written line with its ground truth."""

    n: int  # 1-based line number in the output
    t_ms: int
    source: str
    host: str
    text: str
    event_ts: float  # the time a parser reads back from ``text``
    truth: LineTruth


class Simulator:
    """Iterate over ``lines()``; finished incidents are announced through ``on_incident``."""

    def __init__(self, cfg: SimConfig) -> None:
        self.cfg = cfg
        self.rng = Rand(cfg.seed)
        self.world = World.build(Rand(cfg.seed + 1), datanodes=cfg.datanodes, compute_nodes=cfg.compute_nodes)
        self.t0 = int(cfg.start.timestamp() * 1000)
        self._heap: list[tuple[int, int, Msg]] = []
        self._order = itertools.count()
        self.incidents: dict[str, Incident] = {}  # running ones only
        self.finished: list[Incident] = []
        self._ids = {"fault": itertools.count(1), "benign": itertools.count(1)}
        self._rates = self._component_rates()
        self.written = 0
        self.last_ms = self.t0
        self.info: OrderedDict[str, Incident] = OrderedDict()  # recent incidents by id, finished or not (bounded)
        self.dropped_down = 0  # workload lines not written because their host was down

    def _component_rates(self) -> dict[str, float]:
        """Spawn rate per component so that its share of *lines* matches ``mix``."""
        probe = Rand(self.cfg.seed + 2)
        probe_world = World.build(Rand(self.cfg.seed + 1), datanodes=self.cfg.datanodes,
                                  compute_nodes=self.cfg.compute_nodes)
        total = sum(v for v in self.cfg.mix.values() if v > 0)
        rates = {}
        for comp, share in self.cfg.mix.items():
            if share <= 0:
                continue
            acts, weights = zip(*ACTIVITIES[comp], strict=True)
            n = sum(len(probe.choices(acts, weights)[0](probe, probe_world)) for _ in range(400))
            rates[comp] = self.cfg.rate * (share / total) / (n / 400)
        return rates

    def _push(self, t_ms: int, msg: Msg) -> None:
        heapq.heappush(self._heap, (t_ms, next(self._order), msg))

    def _spawn_workload(self, t_ms: int) -> None:
        comps, rates = zip(*self._rates.items(), strict=True)
        comp = self.rng.choices(comps, rates)[0]
        acts, weights = zip(*ACTIVITIES[comp], strict=True)
        for dt, msg in self.rng.choices(acts, weights)[0](self.rng, self.world):
            self._push(t_ms + dt, msg)

    def _start_incident(self, name: str, t_ms: int) -> Incident:
        sc = SCENARIOS[name]
        script = Script(self.rng, self.world, t_ms)
        sc.script(script)
        kind = sc.kind
        inc_id = f"{'F' if kind == 'fault' else 'B'}{next(self._ids[kind]):04d}"
        inc = Incident(inc_id, name, kind, sc.category, sc.title, sc.cause.format(**script.vars),
                       sc.action.format(**script.vars), t_ms / 1000, list(script.hosts),
                       sorted({m.source for _, m in script.lines}), len(script.lines))
        inc.vars = {k: str(v) for k, v in script.vars.items()}
        inc.truth_abnormal = LineTruth(True, inc_id, name, sc.category)
        inc.truth_other = LineTruth(False, inc_id, name, sc.category)
        for dt, msg in script.lines:
            msg.incident = inc
            self._push(t_ms + dt, msg)
        self.incidents[inc_id] = inc
        self.info[inc_id] = inc
        while len(self.info) > 10_000:
            self.info.popitem(last=False)
        return inc

    def _schedule(self) -> Iterator[tuple[int, str]]:
        """(time, scenario) of every incident, in time order: explicit injections plus random ones.

        Random faults cycle through a shuffled list so every scenario recurs evenly; the next
        one starts a random gap after the previous one's symptoms end.
        """
        cfg = self.cfg
        rng = Rand(cfg.seed + 3)
        streams: list[Iterator[tuple[int, str]]] = [
            iter(sorted((self.t0 + int(i.at_s * 1000), i.scenario) for i in cfg.inject))]

        def random_stream(names: list[str], gap_s: float) -> Iterator[tuple[int, str]]:
            if gap_s <= 0 or not names:
                return
            t = self.t0 + int(cfg.warmup_s * 1000) + int(rng.expovariate(1 / gap_s) * 1000)
            while True:
                order = list(names)
                rng.shuffle(order)
                for name in order:
                    yield t, name
                    t += int(_TYPICAL_MS[name] + rng.expovariate(1 / gap_s) * 1000)

        streams.append(random_stream(list(cfg.faults), cfg.fault_gap_s))
        streams.append(random_stream(list(cfg.benign), cfg.benign_gap_s))
        yield from heapq.merge(*streams)

    def lines(self) -> Iterator[SimLine]:
        cfg = self.cfg
        end_ms = self.t0 + int(cfg.duration_s * 1000) if cfg.duration_s is not None else math.inf
        limit = cfg.lines if cfg.lines is not None else math.inf
        total_rate = sum(self._rates.values())
        next_spawn = self.t0
        schedule = self._schedule()
        next_inc = next(schedule, None)
        while self.written < limit:
            gen_t = min(next_spawn, next_inc[0] if next_inc else math.inf)
            if self._heap and self._heap[0][0] <= gen_t:
                t_ms, _, msg = heapq.heappop(self._heap)
                if t_ms >= end_ms:
                    break
                line = self._write(t_ms, msg)
                if line is not None:
                    yield line
                continue
            if gen_t >= end_ms and not self._heap:
                break
            if next_inc is not None and next_inc[0] <= next_spawn:
                self._start_incident(next_inc[1], next_inc[0])
                next_inc = next(schedule, None)
            else:
                self._spawn_workload(next_spawn)
                next_spawn += max(1, int(self.rng.expovariate(total_rate) * 1000))
        for inc in list(self.incidents.values()):  # cut off by the end of the run
            self._finish(inc)

    def _write(self, t_ms: int, msg: Msg) -> SimLine | None:
        inc: Incident | None = msg.incident  # type: ignore[assignment]
        if inc is None and self.world.is_down(msg.host, t_ms):
            self.dropped_down += 1
            return None
        self.written += 1
        self.last_ms = t_ms
        text, event_ts = render(msg, t_ms)
        truth = NORMAL
        if inc is not None:
            truth = inc.truth_abnormal if msg.abnormal else inc.truth_other
            inc.lines += 1
            inc.abnormal_lines += msg.abnormal
            inc.first_line = inc.first_line or self.written
            inc.last_line, inc.end_ts = self.written, t_ms / 1000
            if inc.done:
                self._finish(inc)
        return SimLine(self.written, t_ms, msg.source, msg.host, text, event_ts, truth)

    def _finish(self, inc: Incident) -> None:
        if self.incidents.pop(inc.id, None) is not None and inc.lines:
            self.finished.append(inc)

    def drain_finished(self) -> list[Incident]:
        out, self.finished = self.finished, []
        return out


def _typical_durations() -> dict[str, int]:
    """How long each scenario's symptoms usually last (ms), measured once from its script."""
    out = {}
    rng = Rand(12345)
    for name, sc in SCENARIOS.items():
        spans = []
        for _ in range(5):
            w = World.build(Rand(1))
            s = Script(rng, w, 0)
            sc.script(s)
            spans.append(s.duration_ms)
        out[name] = int(sum(spans) / len(spans))
    return out


_TYPICAL_MS = _typical_durations()
