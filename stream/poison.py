"""Model calls that hold through an outage but step over a poison session.

A backend that fails for every session is an outage: the batch is retried with backoff,
input is held (consumer lag grows), health says degraded and nothing is dropped. A session
that fails while others pass is poison: held forever, it would stop its partition (every
restart meets it again). After ``attempts`` failed tries of a batch, its items are tried one
by one; those that still fail are poison when the rest passed or the backend answers a plain
canary request, and the caller sends them to the dead letters with the error. An error that
is not a backend failure (a bug some input found) isolates the batch at once.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from rlog.backends.base import BackendError

log = logging.getLogger("rlog.stream")

T = TypeVar("T")
R = TypeVar("R")


async def call_isolating(run: Callable[[list[T]], Awaitable[list[R]]], items: Sequence[T], *, attempts: int,
                         alive: Callable[[], Awaitable[bool]], wait: Callable[[float], Awaitable[None]],
                         failed: Callable[[BaseException, float], None]) -> tuple[list[R], list[tuple[int, BaseException]]]:
    """``run(items)``'s results, and the items (by index) judged poison with their errors.

    ``failed(error, delay)`` is told of each failed try of the whole batch before waiting
    ``delay`` seconds (health, metrics, the log); ``alive()`` asks the backend a plain question.
    """
    items = list(items)
    tries, delay = 0, 1.0
    while True:
        try:
            return await run(items), []
        except BackendError as e:
            tries += 1
            err: BaseException = e
        except Exception as e:  # noqa: BLE001 - not an outage: some input found a bug; find which
            log.error("model stage failed on a batch of %d (%r); trying its sessions one by one", len(items), e,
                      exc_info=True)
            tries, err = attempts, e
        if tries >= attempts:
            good: list[R] = []
            bad: list[tuple[int, BaseException]] = []
            for i, item in enumerate(items):
                try:
                    good.extend(await run([item]))
                except Exception as e:  # noqa: BLE001 - kept with the item, decided below
                    bad.append((i, e))
            if not bad:
                return good, []  # the failure passed
            if good or await alive():
                return good, bad
            tries = 0  # everything fails, a plain request too: an outage, hold the input
        failed(err, delay)
        await wait(delay)
        delay = min(delay * 2, 60.0)
