"""Per-group state held by the runtime around one RawNode."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from streamraft_consensus.core.node import RawNode
from streamraft_consensus.core.types import ConfChange, ConfState, Message
from streamraft_consensus.storage.protocol import RaftStorage


@dataclass
class Proposal:
    data: bytes | ConfChange
    future: asyncio.Future[int]
    appended: asyncio.Future[int] | None = None
    """Resolved with the entry's index once it is written (not yet synced) to this leader's log."""


@dataclass
class PendingRead:
    future: asyncio.Future[int]
    index: int = -1
    """Set once the leader confirmed it; the read is served when ``applied >= index``."""


@dataclass
class Group:
    id: int
    raw: RawNode
    storage: RaftStorage
    conf_state: ConfState
    applied: int
    conf_index: int = 0
    """``conf_state`` is the configuration as of every applied index from here on: the index of the last
    configuration change applied (or an upper bound of it), below which a snapshot cannot be taken."""
    inbox: list[Message] = field(default_factory=list)
    proposals: list[Proposal] = field(default_factory=list)
    control: list[tuple[str, int, asyncio.Future[int]]] = field(default_factory=list)
    """Queued transfer-leadership requests: (kind, target, future)."""
    reads: list[tuple[bytes, PendingRead]] = field(default_factory=list)
    """Read-index requests not yet handed to the core."""
    waiting: dict[int, tuple[int, asyncio.Future[int]]] = field(default_factory=dict)
    appending: dict[int, asyncio.Future[int]] = field(default_factory=dict)
    """index -> future of a proposal that asked to hear when it reaches this leader's log."""
    """index -> (term, future) of proposals appended to the log, resolved when applied."""
    confirmed_reads: dict[bytes, PendingRead] = field(default_factory=dict)
    leader: int = 0
    term: int = 0
    is_leader: bool = False
    quiesced: bool = False
    needs_wake: bool = False
    """Woken from quiescence: the core's election/heartbeat clocks must restart from zero."""
    idle_ticks: int = 0
    stopped: bool = False
    durable_vote: tuple[int, int] = (0, 0)
    """(term, vote) of the last hard state made durable: a leader's appends of that term may go out
    before its own entries are synced (see ``Runtime._handle_readies``)."""
    failed: OSError | None = None
    """Set when a write or fsync of ``storage`` failed: the group is stopped here (no ticks, messages,
    proposals or applies) until ``reopen`` succeeds (see ``Runtime._retry_failed``)."""
    reopen: Callable[[], RaftStorage] | None = None
    """Opens the group's storage again from disk, after a failure."""
    retry_at: float = 0.0
    retry_delay: float = 0.0
    resumed_at: float = float("-inf")
    entry_bytes: float = 0.0
    """Moving average of appended entries' data size (for follower lag in bytes)."""

    def peers(self, me: int) -> set[int]:
        cs = self.conf_state
        return (set(cs.voters) | set(cs.learners) | set(cs.voters_outgoing) | set(cs.learners_next)) - {me}
