"""Model stages hold through an outage but step over a poison session (stream.poison)."""

from __future__ import annotations

import asyncio

from rlog.backends.base import BackendError
from rlog.cascade.cascade import Cascade
from rlog.config import CascadeConfig
from rlog.pipeline.sessions import Session, SessionLine
from stream.poison import call_isolating


def _session(sid, templates):
    return Session(sid, "src", "window", [SessionLine(i, None, t, "T" + t, t) for i, t in enumerate(templates)])


class _Breaks:
    """A real backend with a fault injected: prompts showing ``poison`` fail, and all fail while ``down``."""

    def __init__(self, inner):
        self.inner, self.model_id, self.calibration = inner, inner.model_id, getattr(inner, "calibration", None)
        self.down = False

    def _check(self, prompts):
        if self.down or any("poison" in m["content"] for p in prompts for m in p.messages):
            raise BackendError("injected failure")

    def score(self, prompts):
        self._check(prompts)
        return self.inner.score(prompts)

    def generate(self, prompts, params):
        self._check(prompts)
        return self.inner.generate(prompts, params)

    def count_tokens(self, text):
        return self.inner.count_tokens(text)


def _run(cas, sessions, attempts=2, max_waits=None):
    waits, failures = [], []

    async def run(part):
        return cas.judge(part, escalate=False)

    async def alive():
        return cas.answers("fast")

    async def wait(delay):
        waits.append(delay)
        if max_waits is not None and len(waits) >= max_waits:
            raise TimeoutError("still holding")  # the test stops an outage that would hold forever

    out = asyncio.run(call_isolating(run, sessions, attempts=attempts, alive=alive, wait=wait,
                                     failed=lambda e, d: failures.append(str(e))))
    return out, waits, failures


def test_a_session_that_breaks_the_model_is_set_aside_and_the_others_are_judged(tiny_backend):
    fast = _Breaks(tiny_backend)
    cas = Cascade(fast, None, CascadeConfig(escalate=False, retries=0, threshold=0.5, band=0.0))
    sessions = [_session("a", ["boot ok"]), _session("b", ["poison pill line"]), _session("c", ["served <*>"])]
    (judged, poison), waits, failures = _run(cas, sessions)
    assert [s.session_id for s, _, _ in judged] == ["a", "c"] and all(d.fast.ok for _, d, _ in judged)
    assert [(i, str(e)) for i, e in poison] == [(1, "injected failure")]
    assert waits == [1.0] and failures == ["injected failure"]  # one backoff, then the batch is split
    (alone, poison), _, _ = _run(cas, [_session("d", ["poison again"])])
    assert alone == [] and [i for i, _ in poison] == [0]  # alone: the canary answers, so it is the session


def test_an_outage_holds_every_session_and_drops_none(tiny_backend):
    fast = _Breaks(tiny_backend)
    fast.down = True
    cas = Cascade(fast, None, CascadeConfig(escalate=False, retries=0))
    try:
        _run(cas, [_session("a", ["boot ok"]), _session("b", ["served <*>"])], max_waits=5)
    except TimeoutError:
        pass
    else:
        raise AssertionError("an outage must hold the batch, not return")
    assert not cas.answers("fast")
    fast.down = False
    (judged, poison), waits, _ = _run(cas, [_session("a", ["boot ok"]), _session("b", ["served <*>"])])
    assert len(judged) == 2 and poison == [] and waits == []  # back up: judged as usual
