"""Values the runtime hands to its caller, and what it needs from the caller's state machine."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from streamraft_consensus.core.types import Entry, Snapshot


@dataclass(frozen=True)
class LeaderChange:
    group: int
    leader: int
    """0 when no leader is known."""
    term: int
    is_self: bool


class StateMachine(Protocol):
    def apply(self, group: int, entries: Sequence[Entry]) -> None:
        """Committed NORMAL entries with data, in index order. Called on the event loop: keep it quick."""
        ...

    def restore(self, group: int, snapshot: Snapshot) -> None:
        """Replace the group's state with ``snapshot`` (received from the leader, or found at start)."""
        ...


class NullStateMachine:
    def apply(self, group: int, entries: Sequence[Entry]) -> None:
        pass

    def restore(self, group: int, snapshot: Snapshot) -> None:
        pass
