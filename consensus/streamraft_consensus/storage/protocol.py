"""The write side of Raft storage, as the runtime sees it.

The runtime depends only on ``core.storage.LogStorage`` (reads) plus this small write protocol, so a group
can be backed by ``SegmentLog`` or by another durable log (the broker's partition log) that implements both.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from streamraft_consensus.core.storage import LogStorage
from streamraft_consensus.core.types import ConfState, Entry, HardState, Snapshot


class LogWriter(Protocol):
    def append(self, entries: Sequence[Entry]) -> None:
        """Append contiguous entries; an index at or below the last one first deletes that suffix.
        Not durable until ``sync()`` returns."""
        ...

    def set_hard_state(self, hs: HardState) -> None:
        """Record the hard state; durable once ``sync()`` returns."""
        ...

    def set_conf_state(self, cs: ConfState) -> None: ...

    def apply_snapshot(self, snapshot: Snapshot) -> None:
        """Replace the log with ``snapshot`` (received from the leader); durable on return."""
        ...

    def create_snapshot(self, index: int, conf_state: ConfState, data: bytes) -> Snapshot:
        """Persist a local snapshot of the applied state at ``index`` (durable on return)."""
        ...

    def compact(self, index: int) -> None:
        """Discard entries up to ``index`` (which a durable snapshot covers)."""
        ...

    def needs_sync(self) -> bool: ...

    def sync(self) -> None:
        """Make every write so far durable. Blocking: call it from a worker thread."""
        ...

    def close(self) -> None: ...


class RaftStorage(LogStorage, LogWriter, Protocol):
    """What one Raft group needs from storage."""
