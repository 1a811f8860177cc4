"""Labels from the injector's record: a line is abnormal when it arrived inside a fault's window
and matches that fault's expected trace. Pure: lines and injections in, labels out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from benchmarks.faultlab.model import FaultSpec, Injection, Label, LogLine


def label_lines(lines: Sequence[LogLine], injections: Sequence[Injection],
                specs: Mapping[str, FaultSpec]) -> list[Label]:
    """One label per line. Overlapping windows: the first injection whose trace the line matches."""
    out = []
    for ln in lines:
        hit = next((inj for inj in injections
                    if inj.start <= ln.at <= inj.end and specs[inj.fault].matches(ln.text)), None)
        out.append(Label(ln.n, 1, hit.fault, hit.category) if hit else Label(ln.n, 0))
    return out


def traced(labels: Sequence[Label]) -> dict[str, int]:
    """Labelled lines per fault: a fault with none left no trace (the run says so)."""
    counts: dict[str, int] = {}
    for lb in labels:
        if lb.label:
            counts[lb.fault] = counts.get(lb.fault, 0) + 1
    return counts
