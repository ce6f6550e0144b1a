"""Read-only snapshot of a leader's view of its followers, for metrics (under-replication, follower lag)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LeaderProgress:
    last_index: int
    """The leader's last log index."""
    commit: int
    match: dict[int, int]
    """Other member (voter or learner) -> highest index known to be replicated on it."""
    learners: frozenset[int]
    recovering: frozenset[int]
    """Members whose last response said they are rebuilding a wiped disk (acks not counted)."""
    entry_bytes: float
    """Mean size of recently appended entries' data (moving average): follower lag in bytes is estimated
    as lag in entries times this, without reading the log."""
    quiesced: bool

    def lag_entries(self, peer: int) -> int:
        return max(0, self.last_index - self.match.get(peer, 0))

    def lag_bytes(self, peer: int) -> int:
        return round(self.lag_entries(peer) * self.entry_bytes)
