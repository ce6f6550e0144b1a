"""Deadlines keyed by what they guard, on a heap with lazy invalidation: re-arming a key just pushes a new
entry, and stale entries are dropped when they surface. Time is whatever the caller's clock says."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Hashable


class Deadlines:
    def __init__(self) -> None:
        self._heap: list[tuple[int, int, Hashable]] = []
        self._current: dict[Hashable, int] = {}
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._current)

    def arm(self, key: Hashable, deadline_ms: int) -> None:
        self._current[key] = deadline_ms
        heapq.heappush(self._heap, (deadline_ms, next(self._seq), key))

    def cancel(self, key: Hashable) -> None:
        self._current.pop(key, None)

    def next_deadline(self) -> int | None:
        while self._heap:
            deadline, _, key = self._heap[0]
            if self._current.get(key) == deadline:
                return deadline
            heapq.heappop(self._heap)
        return None

    def pop_expired(self, now_ms: int) -> list[Hashable]:
        """Keys whose deadline is <= now, earliest first; each is disarmed."""
        out: list[Hashable] = []
        while self._heap and self._heap[0][0] <= now_ms:
            deadline, _, key = heapq.heappop(self._heap)
            if self._current.get(key) == deadline:
                del self._current[key]
                out.append(key)
        return out
