"""The read side of Raft's log storage, as the core sees it (etcd-io/raft's Storage interface).

The core only reads through this protocol; writes happen outside the core when the caller persists a
Ready. ``storage.MemoryStorage``-like in-memory implementations live in the core package (used by the
simulator and tests); durable ones live in ``streamraft_consensus.storage``.
"""

from __future__ import annotations

from typing import Protocol

from streamraft_consensus.core.types import ConfState, Entry, HardState, Snapshot


class Compacted(Exception):
    """The requested index precedes the first index still in the log (it is in the snapshot)."""


class Unavailable(Exception):
    """The requested index is past the last index in the log."""


class LogStorage(Protocol):
    def initial_state(self) -> tuple[HardState, ConfState]: ...

    def entries(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Entry]:
        """Entries in [lo, hi); at least one entry even if it alone exceeds ``max_bytes``."""
        ...

    def term(self, index: int) -> int:
        """Term of the entry at ``index``; the snapshot's term for ``first_index() - 1``."""
        ...

    def first_index(self) -> int: ...

    def last_index(self) -> int: ...

    def snapshot(self) -> Snapshot: ...
