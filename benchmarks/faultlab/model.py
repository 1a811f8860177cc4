"""What the injector records: faults, their windows, and a labelled line."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

from rlog.contract.prompts import CATEGORIES as ROOT_CATEGORIES

# the fault categories of issue 31; every fault names one
CATEGORIES = ("resources", "permissions", "crash", "network", "authentication", "configuration", "overload",
              "protocol")


@dataclass(frozen=True)
class FaultSpec:
    """A fault a daemon can suffer: what the injector does is the daemon's code; this says what it is.

    ``trace``: regexes of the lines the daemon writes because of it (its expected trace), matched
    only inside the window the injector records. ``cause`` and ``fix``: one line each, written for
    an operator (the explanation references for R-Log)."""

    name: str
    category: str
    cause: str
    fix: str
    trace: tuple[str, ...]
    root: str  # the root-cause category an alert should name (``rlog.contract.prompts.CATEGORIES``)
    settle_s: float = 2.0  # after the injector's last action, how long the daemon may still be writing its trace

    def __post_init__(self) -> None:
        if self.category not in CATEGORIES:
            raise ValueError(f"fault {self.name}: category {self.category!r} is not one of {', '.join(CATEGORIES)}")
        if self.root not in ROOT_CATEGORIES:
            raise ValueError(f"fault {self.name}: root category {self.root!r} is not one of {', '.join(ROOT_CATEGORIES)}")
        for t in self.trace:
            re.compile(t)

    def matches(self, text: str) -> bool:
        return any(re.search(t, text) for t in self.trace)


@dataclass
class Injection:
    """One fault as it happened: the injector's wall-clock window (start of its first action to end
    of the last, plus the spec's settle time)."""

    incident: str  # <fault>#<n>: one injection
    fault: str
    category: str
    root: str
    start: float
    end: float
    cause: str
    fix: str
    detail: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class LogLine:
    """One line of the daemon's own log, with when it reached the lab (its arrival, wall clock)."""

    n: int
    at: float
    text: str


@dataclass(frozen=True)
class Label:
    n: int
    label: int
    fault: str = ""
    category: str = ""
