"""Configuration and errors of a Raft node (re-exported by ``core.node``, the public API)."""

from __future__ import annotations

from dataclasses import dataclass

from streamraft_consensus.core.types import NONE


@dataclass(frozen=True)
class Config:
    id: int
    election_tick: int = 10
    heartbeat_tick: int = 1
    max_size_per_msg: int = 1 << 20
    max_inflight_msgs: int = 256
    pre_vote: bool = True
    check_quorum: bool = True
    applied: int = 0
    max_uncommitted_bytes: int = 64 << 20
    recovering: bool = False
    """This node's disk was wiped: it must not vote, campaign or have its acknowledgements counted until a
    leader confirms it is a learner and it has applied past that point (see ``Raft.recovering``)."""

    def validate(self) -> None:
        if self.id <= NONE:
            raise ValueError(f"node id must be >= 1, got {self.id}")
        if self.heartbeat_tick <= 0:
            raise ValueError(f"heartbeat_tick must be > 0, got {self.heartbeat_tick}")
        if self.election_tick <= self.heartbeat_tick:
            raise ValueError(
                f"election_tick ({self.election_tick}) must exceed heartbeat_tick ({self.heartbeat_tick})"
            )
        if self.max_inflight_msgs <= 0:
            raise ValueError(f"max_inflight_msgs must be > 0, got {self.max_inflight_msgs}")
        if self.max_size_per_msg <= 0 or self.max_uncommitted_bytes <= 0:
            raise ValueError("max_size_per_msg and max_uncommitted_bytes must be > 0")
        if self.applied < 0:
            raise ValueError(f"applied must be >= 0, got {self.applied}")


class NotLeader(Exception):
    """Raised by propose* (and read/transfer calls that need one) when this node is not the leader."""

    def __init__(self, leader_hint: int) -> None:
        super().__init__(f"not the leader (leader hint: {leader_hint or 'unknown'})")
        self.leader_hint = leader_hint


class ProposalDropped(Exception):
    """The leader refused the proposal right now (transfer in progress, conf change pending, too much
    uncommitted data); retrying later may succeed."""
