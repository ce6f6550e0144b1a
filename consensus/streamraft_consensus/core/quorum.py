"""Quorum arithmetic: commit index and vote tallies for a majority config and a joint config.

The core uses one-at-a-time membership changes (see ``core.raft``) and hence only ``MajorityConfig``;
``JointConfig`` is the joint-consensus rule (both majorities must agree), kept here tested so the
core can move to joint changes without new arithmetic.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Collection, Mapping


class VoteResult(enum.IntEnum):
    PENDING = 0
    LOST = 1
    WON = 2


def majority(n: int) -> int:
    return n // 2 + 1


class MajorityConfig:
    __slots__ = ("voters",)

    def __init__(self, voters: Collection[int]) -> None:
        self.voters = frozenset(voters)

    def committed_index(self, match: Callable[[int], int]) -> int:
        """The largest index acknowledged by a majority; an empty config commits everything (joint rule)."""
        n = len(self.voters)
        if n == 0:
            return 1 << 63
        if n == 1:
            (v,) = self.voters
            return match(v)
        acked = sorted((match(v) for v in self.voters), reverse=True)
        return acked[majority(n) - 1]

    def vote_result(self, votes: Mapping[int, bool]) -> VoteResult:
        n = len(self.voters)
        if n == 0:
            return VoteResult.WON
        granted = rejected = 0
        for v in self.voters:
            got = votes.get(v)
            if got is None:
                continue
            if got:
                granted += 1
            else:
                rejected += 1
        q = majority(n)
        if granted >= q:
            return VoteResult.WON
        if n - rejected < q:
            return VoteResult.LOST
        return VoteResult.PENDING

    def has_quorum(self, members: Collection[int]) -> bool:
        return sum(1 for v in self.voters if v in members) >= majority(len(self.voters))


class JointConfig:
    __slots__ = ("incoming", "outgoing")

    def __init__(self, incoming: Collection[int], outgoing: Collection[int] = ()) -> None:
        self.incoming = MajorityConfig(incoming)
        self.outgoing = MajorityConfig(outgoing)

    def committed_index(self, match: Callable[[int], int]) -> int:
        return min(self.incoming.committed_index(match), self.outgoing.committed_index(match))

    def vote_result(self, votes: Mapping[int, bool]) -> VoteResult:
        r1 = self.incoming.vote_result(votes)
        r2 = self.outgoing.vote_result(votes)
        if r1 == r2:
            return r1
        if VoteResult.LOST in (r1, r2):
            return VoteResult.LOST
        return VoteResult.PENDING
