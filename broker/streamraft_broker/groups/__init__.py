"""The consumer-group coordinator (classic protocol) with committed offsets and group metadata kept in the
compacted internal topic `__consumer_offsets`.

`GroupCoordinator` (coordinator.py) is the async API for the handler layer and returns the plain dataclasses
of model.py (error codes are kio `ErrorCode`s); `OffsetsStore` (store.py) writes and reloads
`__consumer_offsets` through a PartitionLog, with keys and values encoded as Kafka does (codec.py)."""

from streamraft_broker.groups.config import GroupConfig
from streamraft_broker.groups.coordinator import GroupCoordinator, GroupStore, GroupStoreError
from streamraft_broker.groups.model import (
    CommittedOffset,
    FetchedOffset,
    GroupDescription,
    GroupListing,
    GroupState,
    JoinedMember,
    JoinRequest,
    JoinResult,
    LeaveResult,
    MemberDescription,
    MemberIdentity,
    OffsetCommitEntry,
    OffsetFetchResult,
    PartitionResult,
    SyncResult,
)
from streamraft_broker.groups.store import TOPIC, TOPIC_CONFIGS, LoadedState, OffsetsStore

__all__ = [
    "TOPIC",
    "TOPIC_CONFIGS",
    "CommittedOffset",
    "FetchedOffset",
    "GroupConfig",
    "GroupCoordinator",
    "GroupDescription",
    "GroupListing",
    "GroupState",
    "GroupStore",
    "GroupStoreError",
    "JoinRequest",
    "JoinResult",
    "JoinedMember",
    "LeaveResult",
    "LoadedState",
    "MemberDescription",
    "MemberIdentity",
    "OffsetCommitEntry",
    "OffsetFetchResult",
    "OffsetsStore",
    "PartitionResult",
    "SyncResult",
]
