"""What at-least-once delivery may leave behind after a crash, as exact assertions.

A reader that delivered ``want[:m]``, crashed, and resumed from a checkpoint ``k <= m`` delivers
``want[:m] + want[k:]``: nothing lost, order kept, and one run of ``m - k`` records repeated right where
the crash happened. Anything else (a gap, a record out of order, a repeat from elsewhere) fails.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


def split_replay(got: Sequence[T], want: Sequence[T], resumed_at: int) -> int:
    """Asserts ``got == want[:m] + want[resumed_at:]`` for some ``m >= resumed_at`` and returns ``m``: the
    reader resumed at ``resumed_at`` (its checkpoint) after having delivered ``m``."""
    assert 0 <= resumed_at <= len(want), f"resumed at {resumed_at} of {len(want)}: {got}"
    m = len(got) - (len(want) - resumed_at)
    assert m >= resumed_at, f"{len(want) - len(got)} records lost (resumed at {resumed_at}): {got}"
    assert list(got) == [*want[:m], *want[resumed_at:]], f"not want[:{m}] + want[{resumed_at}:]: {got}"
    return m
