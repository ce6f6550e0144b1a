"""The simulator's checker must be able to fail: inject bugs into the core and expect a violation."""

from __future__ import annotations

import random

import pytest
from streamraft_consensus.core.node import Config, RawNode
from streamraft_consensus.core.raft import Raft
from streamraft_consensus.core.storage import LogStorage
from streamraft_consensus.core.types import Message, MessageType
from streamraft_consensus.sim.world import NodeFactory, Violation, run_seed

SEEDS = range(60)


class _VotesTwice(Raft):
    def can_grant_vote(self, m: Message) -> bool:
        return True


class _IgnoresLogFreshness(Raft):
    def _handle_vote(self, m: Message) -> None:
        # Grants votes without the "candidate's log is at least as up to date" check.
        rtype = MessageType.VOTE_RESP if m.type == MessageType.VOTE else MessageType.PRE_VOTE_RESP
        if self.can_grant_vote(m):
            self.msgs.append(Message(rtype, m.frm, self.id, m.term))
            if m.type == MessageType.VOTE:
                self.election_elapsed = 0
                self.vote = m.frm
        else:
            self.msgs.append(Message(rtype, m.frm, self.id, self.term, reject=True))


class _CommitsWithoutQuorum(Raft):
    def maybe_commit(self) -> bool:
        # Commit everything of the current term as soon as the leader has it.
        return self.log.maybe_commit(self.log.last_index(), self.term)


def _factory(cls: type[Raft]) -> NodeFactory:
    def make(cfg: Config, storage: LogStorage, rand: random.Random) -> RawNode:
        node = RawNode(cfg, storage, rand)
        node.raft = cls(cfg, storage, rand)
        return node

    return make


def _first_violation(cls: type[Raft]) -> Violation:
    for seed in SEEDS:
        try:
            run_seed(seed, fault_ticks=150, node_factory=_factory(cls))
        except Violation as v:
            return v
    raise AssertionError(f"no seed in {SEEDS} detected the injected {cls.__name__} bug")


def test_double_vote_is_caught() -> None:
    v = _first_violation(_VotesTwice)
    assert v.invariant in {
        "election safety",
        "log matching",
        "state machine safety",
        "leader completeness",
        "durability",
        "core assertion",
        "linearizable read",
    }, v


def test_commit_without_quorum_is_caught() -> None:
    v = _first_violation(_CommitsWithoutQuorum)
    assert v.invariant != "liveness", v


def test_stale_leader_election_is_caught() -> None:
    v = _first_violation(_IgnoresLogFreshness)
    assert v.invariant != "liveness", v


def test_correct_core_passes_the_same_seeds() -> None:
    for seed in range(10):
        stats = run_seed(seed, fault_ticks=150)
        assert stats.acked > 0


@pytest.mark.parametrize("seed", [3, 17])
def test_replay_is_bit_for_bit(seed: int) -> None:
    assert run_seed(seed, fault_ticks=100) == run_seed(seed, fault_ticks=100)
