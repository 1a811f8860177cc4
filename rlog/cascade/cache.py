"""Verdict memory: identical sessions never reach a model twice.

Keyed by the session's representation (``rlog.contract.representation``), which the
prompt is a pure function of, so a remembered decision is exactly what the model would
say again. Bounded LRU: memory stays flat under an endless stream.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from typing import Generic, TypeVar

D = TypeVar("D")


def sequence_key(templates: Sequence[str]) -> str:
    """The cache key of a session representation (also part of its deterministic alert id)."""
    return hashlib.blake2b("\n".join(templates).encode("utf-8"), digest_size=12).hexdigest()


class VerdictCache(Generic[D]):
    """Bounded LRU of decisions by sequence key; identical sessions never reach a model twice."""

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
