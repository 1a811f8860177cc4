"""Verdict memory: sessions the models already judged never reach a model again.

Two bounded LRU memories, both plain data so they ride in the stream's checkpoints:

- ``VerdictCache``: decisions by session key (``rlog.contract.representation.signature_key``:
  the source, the template set and log2-bucketed counts; or the exact sequence);
- ``KnownNormal``: templates the fast model saw in confidently normal sessions, with the
  largest count bucket seen. A session made only of such templates, at counts seen before,
  is normal without a call: steady traffic costs nothing, and anything new pays once.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from rlog.contract.representation import count_bucket
from rlog.pipeline.sessions import Session

D = TypeVar("D")


def sequence_key(templates: Sequence[str]) -> str:
    """A key of a template sequence (part of a session's deterministic alert id)."""
    return hashlib.blake2b("\n".join(templates).encode("utf-8"), digest_size=12).hexdigest()


class VerdictCache(Generic[D]):
    """Bounded LRU of decisions by session key."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._d: OrderedDict[str, D] = OrderedDict()
        self.hits = self.misses = 0

    def get(self, key: str) -> D | None:
        d = self._d.get(key)
        if d is None:
            self.misses += 1
            return None
        self.hits += 1
        self._d.move_to_end(key)
        return d

    def put(self, key: str, decision: D) -> None:
        if self.size <= 0:
            return
        self._d[key] = decision
        self._d.move_to_end(key)
        while len(self._d) > self.size:
            self._d.popitem(last=False)

    def __len__(self) -> int:
        return len(self._d)

    def state(self, encode: Callable[[D], object], limit: int) -> list:
        """The ``limit`` most recently used entries, oldest first, as plain data."""
        items = list(self._d.items())[-limit:] if limit > 0 else []
        return [[k, encode(v)] for k, v in items]

    def load_state(self, rows: list, decode: Callable[[object], D]) -> None:
        for k, v in rows:
            self.put(k, decode(v))


class KnownNormal:
    """Templates judged normal, per source, with the largest count bucket they were judged at."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._d: OrderedDict[tuple[str, str], int] = OrderedDict()

    @staticmethod
    def _buckets(session: Session) -> dict[str, int]:
        return {tid: count_bucket(n) for tid, _, n in session.template_counts()}

    def _remember(self, key: tuple[str, str], bucket: int) -> None:
        self._d[key] = max(bucket, self._d.get(key, -1))
        self._d.move_to_end(key)
        while len(self._d) > self.size:
            self._d.popitem(last=False)

    def unfamiliar(self, session: Session) -> frozenset[str]:
        """The session's template ids not known-normal at their count: what makes it worth a look
        (``rlog.cascade.incidents`` remembers incidents by it). Pure lookup, no LRU touch."""
        out = []
        for tid, b in self._buckets(session).items():
            known = self._d.get((session.source, tid))
            if known is None or b > known:
                out.append(tid)
        return frozenset(out)

    def covers(self, session: Session, unfamiliar: frozenset[str] | None = None) -> bool:
        """True when every template of the session is known-normal at this count or more;
        ``unfamiliar``: the session's ``unfamiliar()``, when the caller has it already."""
        if unfamiliar is None:
            unfamiliar = self.unfamiliar(session)
        if self.size <= 0 or not session.lines or unfamiliar:
            return False
        for tid, _, _ in session.template_counts():
            self._d.move_to_end((session.source, tid))
        return True

    def learn(self, session: Session) -> None:
        if self.size <= 0:
            return
        for tid, b in self._buckets(session).items():
            self._remember((session.source, tid), b)

    def __len__(self) -> int:
        return len(self._d)

    def state(self, limit: int) -> list:
        items = list(self._d.items())[-limit:] if limit > 0 else []
        return [[src, tid, b] for (src, tid), b in items]

    def load_state(self, rows: list) -> None:
        for src, tid, b in rows:
            self._remember((src, tid), int(b))
