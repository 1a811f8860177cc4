"""Micro-batching: one generate call for many sessions, without holding any of them long."""

from __future__ import annotations

from typing import Generic, TypeVar

T = TypeVar("T")


class MicroBatcher(Generic[T]):
    """Collects items until ``max_size`` or until the oldest has waited ``max_wait_s``."""

    def __init__(self, max_size: int, max_wait_s: float) -> None:
        self.max_size, self.max_wait_s = max_size, max_wait_s
        self._items: list[T] = []
        self._first: float | None = None

    def add(self, item: T, now: float) -> list[T] | None:
        if not self._items:
            self._first = now
        self._items.append(item)
        return self.drain() if len(self._items) >= self.max_size else None

    def due(self, now: float) -> list[T] | None:
        if self._items and self._first is not None and now - self._first >= self.max_wait_s:
            return self.drain()
        return None

    def drain(self) -> list[T]:
        items, self._items, self._first = self._items, [], None
        return items

    def __len__(self) -> int:
        return len(self._items)
