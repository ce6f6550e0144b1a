"""Values that cross the boundary of the Raft core.

These are the contract between the pure core (``core.raft``), durable storage (``storage``), the gRPC
transport (``transport``, which maps them to protobuf) and the simulator (``sim``). They are immutable so
that a Ready handed to the caller cannot be changed behind the core's back.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

NONE = 0
"""Node id meaning "nobody" (no vote, no leader). Real node ids are >= 1."""


class Role(enum.IntEnum):
    FOLLOWER = 0
    PRE_CANDIDATE = 1
    CANDIDATE = 2
    LEADER = 3


class EntryType(enum.IntEnum):
    NORMAL = 0
    CONF_CHANGE = 1


class MessageType(enum.IntEnum):
    APPEND = 1
    APPEND_RESP = 2
    VOTE = 3
    VOTE_RESP = 4
    PRE_VOTE = 5
    PRE_VOTE_RESP = 6
    HEARTBEAT = 7
    HEARTBEAT_RESP = 8
    SNAPSHOT = 9
    TIMEOUT_NOW = 10
    READ_INDEX = 11
    READ_INDEX_RESP = 12
    PROPOSE = 13
    """A follower forwarding a client proposal to the leader."""


class ConfChangeType(enum.IntEnum):
    ADD_VOTER = 0
    ADD_LEARNER = 1
    REMOVE = 2


@dataclass(frozen=True, slots=True)
class Entry:
    term: int
    index: int
    type: EntryType = EntryType.NORMAL
    data: bytes = b""

    def size(self) -> int:
        """Bytes this entry counts against max-bytes limits (payload plus a fixed header estimate)."""
        return len(self.data) + 24


@dataclass(frozen=True, slots=True)
class HardState:
    term: int = 0
    vote: int = NONE
    commit: int = 0


@dataclass(frozen=True, slots=True)
class ConfState:
    voters: tuple[int, ...] = ()
    learners: tuple[int, ...] = ()
    # Joint consensus: the outgoing voter set while a joint configuration is in force, else empty.
    voters_outgoing: tuple[int, ...] = ()
    learners_next: tuple[int, ...] = ()
    auto_leave: bool = False


@dataclass(frozen=True, slots=True)
class ConfChange:
    """One or more membership changes proposed as a single CONF_CHANGE entry."""

    changes: tuple[tuple[ConfChangeType, int], ...]

    def encode(self) -> bytes:
        return b"".join(int(t).to_bytes(1, "big") + n.to_bytes(8, "big") for t, n in self.changes)

    @classmethod
    def decode(cls, data: bytes) -> ConfChange:
        if len(data) % 9:
            raise ValueError(f"conf change payload of {len(data)} bytes is not a multiple of 9")
        return cls(
            tuple(
                (ConfChangeType(data[i]), int.from_bytes(data[i + 1 : i + 9], "big"))
                for i in range(0, len(data), 9)
            )
        )


@dataclass(frozen=True, slots=True)
class SnapshotMeta:
    index: int = 0
    term: int = 0
    conf_state: ConfState = field(default_factory=ConfState)


@dataclass(frozen=True, slots=True)
class Snapshot:
    meta: SnapshotMeta = field(default_factory=SnapshotMeta)
    data: bytes = b""

    def is_empty(self) -> bool:
        return self.meta.index == 0


@dataclass(frozen=True, slots=True)
class Message:
    type: MessageType
    to: int
    frm: int
    term: int = 0
    log_term: int = 0
    index: int = 0
    entries: tuple[Entry, ...] = ()
    commit: int = 0
    reject: bool = False
    reject_hint: int = 0
    snapshot: Snapshot | None = None
    # Opaque request context: read-index request ids, transfer/campaign markers.
    context: bytes = b""
    # On APPEND_RESP / HEARTBEAT_RESP: the sender is rebuilding a wiped disk and its acknowledgement must
    # not count toward a commit, check-quorum or read-index quorum (streamraft_broker.replication.rejoin).
    recovering: bool = False
    # On APPEND: the receiver is a learner in the leader's committed configuration (see ``recovering``).
    learner_confirmed: bool = False


@dataclass(frozen=True, slots=True)
class SoftState:
    leader: int = NONE
    role: Role = Role.FOLLOWER


@dataclass(frozen=True, slots=True)
class ReadState:
    """A read-index request has been confirmed: reads at ``index`` are linearizable once applied."""

    index: int
    context: bytes


@dataclass(frozen=True, slots=True)
class Ready:
    """Everything the caller must do, in order: persist (hard state, snapshot, entries), then send
    ``messages``, then apply ``committed_entries``; finally call ``advance(ready)``.

    Messages a leader sends may go out before its own entries are durable (Raft thesis 10.2.1), but
    messages from followers/candidates (votes, append responses) must wait for persistence: the core only
    puts into ``messages`` what is safe to send once this Ready's writes are durable.
    """

    soft_state: SoftState | None = None
    hard_state: HardState | None = None
    entries: tuple[Entry, ...] = ()
    snapshot: Snapshot | None = None
    committed_entries: tuple[Entry, ...] = ()
    messages: tuple[Message, ...] = ()
    read_states: tuple[ReadState, ...] = ()
    must_sync: bool = False
