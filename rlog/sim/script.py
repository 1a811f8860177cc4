"""The building blocks of an injected incident: a script of timed messages, and its scenario card."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from rlog.contract.prompts import CATEGORIES
from rlog.sim.render import Msg
from rlog.sim.world import Rand, World


class Script:
    """What a scenario writes: messages at offsets from its start, and hosts it takes down."""

    def __init__(self, rng: Rand, world: World, t0_ms: int) -> None:
        self.rng, self.w, self.t0 = rng, world, t0_ms
        self.lines: list[tuple[int, Msg]] = []
        self.vars: dict[str, str] = {}
        self.hosts: dict[str, None] = {}

    def emit(self, dt_ms: float, msg: Msg, abnormal: bool = True) -> None:
        msg.abnormal = abnormal
        self.lines.append((max(0, int(dt_ms)), msg))
        self.hosts[msg.host] = None

    def down(self, host: str, from_ms: float, to_ms: float) -> None:
        """``host`` writes no normal workload lines in [from, to) after the start."""
        self.w.mark_down(host, self.t0 + int(from_ms), self.t0 + int(to_ms))

    def spread(self, start: float, end: float, n: int) -> list[float]:
        """``n`` sorted random offsets in [start, end): symptoms repeat irregularly, not on a clock."""
        return sorted(self.rng.uniform(start, end) for _ in range(n))

    @property
    def duration_ms(self) -> int:
        return max((dt for dt, _ in self.lines), default=0)


@dataclass(frozen=True)
class Scenario:
    name: str
    kind: str  # "fault" or "benign"
    title: str
    script: Callable[[Script], None]
    category: str | None = None  # root-cause category (faults only)
    action: str = ""  # recommended action, formatted with the script's vars
    cause: str = ""  # root cause in words, formatted with the script's vars
    components: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.kind == "fault" and self.category not in CATEGORIES:
            raise ValueError(f"scenario {self.name}: category {self.category!r} is not in the taxonomy")


def uptime(rng: Rand) -> str:
    return f"[{rng.randrange(10000, 9000000)}.{rng.randrange(10**6):06d}]"


def java_trace(exc: str, frames: list[str]) -> str:
    return exc + "".join(f"\n\tat {f}" for f in frames)
