"""A worker told to stop stops within a bound, whatever its stages are doing.

Faust stops cooperatively: it cancels the agents, commits, leaves the group, then the
interpreter joins every thread. A stage can hold that up for good: a model call running in
the pool thread (or its retries), a send retrying against a broker that is away, an agent
that crashed and is being restarted, a client waiting out its request timeout. Kubernetes
then waits ``terminationGracePeriodSeconds`` and kills the pod; by hand, an operator reaches
for ``kill -9``. So the first SIGTERM/SIGINT arms a deadline (``stream.stop_timeout_s``, kept
under the chart's grace period): the cooperative stop runs, and if the process is still
there when the deadline passes it says so and exits. A second signal exits at once.

Nothing is lost by the forced exit: input is acknowledged only after what it produced was
delivered and checkpointed, so what was in flight is read again by the next owner.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable

log = logging.getLogger("rlog.stream")

FORCED_EXIT = 1


class StopDeadline:
    """Arms once; exits the process ``timeout_s`` after the first ``arm`` unless it ended first."""

    def __init__(self, timeout_s: float, exit_now: Callable[[int], None] = os._exit) -> None:
        self.timeout_s = timeout_s
        self._exit = exit_now
        self._armed_at: float | None = None
        self._lock = threading.Lock()

    @property
    def armed(self) -> bool:
        return self._armed_at is not None

    def arm(self, why: str) -> None:
        with self._lock:
            if self._armed_at is not None:
                self._say(f"rlog: {why} again while stopping: exiting now")
                self._exit(FORCED_EXIT)
                return
            self._armed_at = time.monotonic()
        log.warning("%s: stopping (at most %.0fs, stream.stop_timeout_s)", why, self.timeout_s)
        threading.Thread(target=self._watch, name="rlog-stop-deadline", daemon=True).start()

    def _watch(self) -> None:
        time.sleep(self.timeout_s)
        try:
            self._say(f"rlog: the worker did not stop within {self.timeout_s:.0f}s (stream.stop_timeout_s): a stage "
                      "was still busy (a model call, a send retrying, a restarting agent); exiting now. Input not "
                      "yet acknowledged is read again by the next owner: nothing is lost")
        finally:
            self._exit(FORCED_EXIT)

    @staticmethod
    def _say(text: str) -> None:
        # straight to file descriptor 2: Faust replaces sys.stderr with a logging proxy, and the log
        # may be the very thing that is stuck (a handler's lock)
        with contextlib.suppress(OSError):
            os.write(2, (text + "\n").encode())


def bounded_worker(app, deadline: StopDeadline, **kwargs):
    """A ``faust.Worker`` for ``app`` whose stop signals arm ``deadline`` first."""
    import faust

    class Worker(faust.Worker):
        def _on_sigterm(self) -> None:
            deadline.arm("SIGTERM")
            super()._on_sigterm()

        def _on_sigint(self) -> None:
            deadline.arm("SIGINT")
            super()._on_sigint()

        def on_worker_shutdown(self) -> None:
            # a crash also ends here: bound the rest of the way out (threads joined at exit)
            if not deadline.armed:
                deadline.arm("the worker is shutting down")
            super().on_worker_shutdown()

    return Worker(app, **kwargs)
