"""An in-memory ``LogStorage`` with etcd-style write methods, for the simulator and tests.

``_ents[0]`` is a dummy entry holding the index and term of the last compacted entry (the snapshot
point), so ``term(first_index() - 1)`` always answers without a special case.
"""

from __future__ import annotations

from collections.abc import Sequence

from streamraft_consensus.core.storage import Compacted, Unavailable
from streamraft_consensus.core.types import ConfState, Entry, HardState, Snapshot, SnapshotMeta


class SnapshotOutOfDate(Exception):
    """A snapshot older than (or as old as) the current one was offered."""


class MemoryStorage:
    __slots__ = ("_ents", "_hard_state", "_snapshot")

    def __init__(self, conf_state: ConfState | None = None) -> None:
        """``conf_state`` bootstraps a fresh group: the initial membership, as if from a snapshot at 0."""
        self._hard_state = HardState()
        self._snapshot = Snapshot(SnapshotMeta(0, 0, conf_state or ConfState()))
        self._ents: list[Entry] = [Entry(0, 0)]

    @classmethod
    def bootstrap(cls, conf_state: ConfState) -> MemoryStorage:
        """A founding member of a new group: the membership is a snapshot at index 1, term 1 (like etcd's
        bootstrap entries), so a node added later receives it as an InstallSnapshot, never from the log."""
        st = cls()
        st._snapshot = Snapshot(SnapshotMeta(1, 1, conf_state))
        st._ents = [Entry(1, 1)]
        st._hard_state = HardState(term=1, commit=1)
        return st

    def clone(self) -> MemoryStorage:
        st = MemoryStorage()
        st._hard_state = self._hard_state
        st._snapshot = self._snapshot
        st._ents = list(self._ents)
        return st

    # --- read side (core.storage.LogStorage) ---------------------------------------------------------
    def initial_state(self) -> tuple[HardState, ConfState]:
        return self._hard_state, self._snapshot.meta.conf_state

    def entries(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Entry]:
        offset = self._ents[0].index
        if lo <= offset:
            raise Compacted(f"index {lo} is compacted (first index {offset + 1})")
        if hi > self.last_index() + 1:
            raise Unavailable(f"entries [{lo}, {hi}) past last index {self.last_index()}")
        ents = self._ents[lo - offset : hi - offset]
        if max_bytes is not None and len(ents) > 1:
            return limit_size(ents, max_bytes)
        return ents

    def term(self, index: int) -> int:
        offset = self._ents[0].index
        if index < offset:
            raise Compacted(f"index {index} is compacted (first index {offset + 1})")
        if index - offset >= len(self._ents):
            raise Unavailable(f"index {index} past last index {self.last_index()}")
        return self._ents[index - offset].term

    def first_index(self) -> int:
        return self._ents[0].index + 1

    def last_index(self) -> int:
        return self._ents[0].index + len(self._ents) - 1

    def snapshot(self) -> Snapshot:
        return self._snapshot

    # --- write side -----------------------------------------------------------------------------------
    def set_hard_state(self, hs: HardState) -> None:
        self._hard_state = hs

    def apply_snapshot(self, snap: Snapshot) -> None:
        """Replace the whole log with ``snap`` (a snapshot received from the leader)."""
        if snap.meta.index <= self._snapshot.meta.index:
            raise SnapshotOutOfDate(f"snapshot at {snap.meta.index} <= current {self._snapshot.meta.index}")
        self._snapshot = snap
        self._ents = [Entry(snap.meta.term, snap.meta.index)]

    def create_snapshot(self, index: int, conf_state: ConfState | None, data: bytes) -> Snapshot:
        """Record a snapshot of the applied state at ``index``; ``compact`` may then drop the entries."""
        if index <= self._snapshot.meta.index:
            raise SnapshotOutOfDate(f"snapshot at {index} <= current {self._snapshot.meta.index}")
        if index > self.last_index():
            raise Unavailable(f"snapshot index {index} past last index {self.last_index()}")
        cs = conf_state if conf_state is not None else self._snapshot.meta.conf_state
        self._snapshot = Snapshot(SnapshotMeta(index, self.term(index), cs), data)
        return self._snapshot

    def compact(self, index: int) -> None:
        """Drop entries up to and including ``index``."""
        offset = self._ents[0].index
        if index <= offset:
            raise Compacted(f"index {index} already compacted (first index {offset + 1})")
        if index > self.last_index():
            raise Unavailable(f"compact {index} past last index {self.last_index()}")
        i = index - offset
        self._ents = [Entry(self._ents[i].term, index), *self._ents[i + 1 :]]

    def append(self, entries: Sequence[Entry]) -> None:
        """Append contiguous entries, first deleting any existing suffix they overwrite."""
        if not entries:
            return
        first = self.first_index()
        if entries[-1].index < first:
            return
        if entries[0].index < first:
            entries = entries[first - entries[0].index :]
        offset = entries[0].index - self._ents[0].index
        if offset > len(self._ents):
            raise ValueError(f"missing log entries: last {self.last_index()}, appending {entries[0].index}")
        del self._ents[offset:]
        self._ents.extend(entries)


def limit_size(ents: list[Entry], max_bytes: int) -> list[Entry]:
    """The longest prefix of ``ents`` within ``max_bytes``, but always at least one entry."""
    if not ents:
        return ents
    size = ents[0].size()
    n = 1
    while n < len(ents):
        size += ents[n].size()
        if size > max_bytes:
            break
        n += 1
    return ents[:n] if n < len(ents) else ents
