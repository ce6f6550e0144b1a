"""Fault injection for tests: drop traffic per ordered pair of nodes (direction-aware)."""

from __future__ import annotations

import random


class FaultInjector:
    """Shared by every transport in a test process, or one per process driven over a control channel.

    ``block(a, b)`` drops everything node ``a`` sends to node ``b`` (b->a still flows); ``partition``
    blocks both directions; ``set_drop_rate`` drops a random fraction of a->b frames."""

    def __init__(self, seed: int = 0) -> None:
        self._blocked: set[tuple[int, int]] = set()
        self._drop_rate: dict[tuple[int, int], float] = {}
        self._rand = random.Random(seed)

    def block(self, frm: int, to: int) -> None:
        self._blocked.add((frm, to))

    def partition(self, a: int, b: int) -> None:
        self.block(a, b)
        self.block(b, a)

    def isolate(self, node: int, others: list[int]) -> None:
        for other in others:
            self.partition(node, other)

    def set_drop_rate(self, frm: int, to: int, rate: float) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"drop rate {rate} is outside [0, 1]")
        self._drop_rate[(frm, to)] = rate

    def heal(self) -> None:
        self._blocked.clear()
        self._drop_rate.clear()

    def allows(self, frm: int, to: int) -> bool:
        if (frm, to) in self._blocked:
            return False
        rate = self._drop_rate.get((frm, to), 0.0)
        return not (rate and self._rand.random() < rate)
