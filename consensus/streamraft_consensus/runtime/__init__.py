"""asyncio multi-group runtime: drives many Raft groups in one process."""

from streamraft_consensus.runtime.api import LeaderChange, NullStateMachine, StateMachine
from streamraft_consensus.runtime.config import RuntimeConfig
from streamraft_consensus.runtime.errors import (
    ConsensusError,
    NotLeaderError,
    ProposalRejectedError,
    StoppedError,
    StorageFailedError,
    TermChangedError,
    UnknownGroupError,
)
from streamraft_consensus.runtime.runtime import Runtime

__all__ = [
    "ConsensusError",
    "LeaderChange",
    "NotLeaderError",
    "NullStateMachine",
    "ProposalRejectedError",
    "Runtime",
    "RuntimeConfig",
    "StateMachine",
    "StoppedError",
    "StorageFailedError",
    "TermChangedError",
    "UnknownGroupError",
]
