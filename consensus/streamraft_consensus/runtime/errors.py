"""Errors a runtime caller can get back from propose / read_index / membership calls."""

from __future__ import annotations


class ConsensusError(Exception):
    """Base of the runtime's errors."""


class NotLeaderError(ConsensusError):
    def __init__(self, group: int, leader_hint: int) -> None:
        super().__init__(
            f"group {group}: this node is not the leader (leader hint: {leader_hint or 'unknown'})"
        )
        self.group = group
        self.leader_hint = leader_hint


class TermChangedError(ConsensusError):
    """Leadership changed while the proposal was in flight: it may or may not have been committed."""

    def __init__(self, group: int, index: int, term: int) -> None:
        super().__init__(
            f"group {group}: term changed while proposal at index {index} (term {term}) was pending"
        )
        self.group = group
        self.index = index
        self.term = term


class ProposalRejectedError(ConsensusError):
    """The leader refused the proposal for now (leader transfer, pending conf change, flow control)."""


class StorageFailedError(ConsensusError):
    """A write or fsync of the group's storage on this node failed (disk full, I/O error): the group is
    stopped here (fail-stop) until a retry re-opens it from what is durable on disk."""

    def __init__(self, group: int, error: OSError) -> None:
        super().__init__(f"group {group}: storage failed on this node: {error}")
        self.group = group
        self.error = error


class StoppedError(ConsensusError):
    """The runtime or the group was stopped."""


class UnknownGroupError(ConsensusError, KeyError):
    def __init__(self, group: int) -> None:
        super().__init__(f"unknown group {group}")
        self.group = group
