"""Idempotent-producer state: per-partition sequence/epoch checks with duplicate detection
(`state`), snapshots and recovery from the log's batch headers (`snapshot`, `recovery`), and producer-id
allocation that never reuses an id after a restart (`ids`)."""

from streamraft_broker.producer.ids import InitProducerIdResult, ProducerIdAllocator
from streamraft_broker.producer.recovery import recover
from streamraft_broker.producer.snapshot import take_snapshot
from streamraft_broker.producer.state import (
    BatchMetadata,
    CheckResult,
    Duplicate,
    Ok,
    ProducerEntry,
    ProducerStateManager,
    Rejected,
)

__all__ = [
    "BatchMetadata",
    "CheckResult",
    "Duplicate",
    "InitProducerIdResult",
    "Ok",
    "ProducerEntry",
    "ProducerIdAllocator",
    "ProducerStateManager",
    "Rejected",
    "recover",
    "take_snapshot",
]
