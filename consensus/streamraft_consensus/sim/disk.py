"""A disk model for the simulator: writes land in a page cache and only survive a crash once fsynced.

``live`` is what the running node reads (every write, synced or not); ``durable`` is what a restart
recovers. On a crash, a random prefix of the unsynced writes may still have reached the platter, and
the last of those may be torn. Each record carries a checksum flag standing in for the CRC a real log
keeps: recovery detects the torn record and truncates it, so it is as if it was never written.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from streamraft_consensus.core.memory_storage import MemoryStorage
from streamraft_consensus.core.types import Entry, HardState, Snapshot


@dataclass(slots=True)
class _Record:
    kind: str  # "entries" | "hard_state" | "snapshot" | "create_snapshot"
    entries: tuple[Entry, ...] = ()
    hard_state: HardState | None = None
    snapshot: Snapshot | None = None
    torn: bool = False


def _apply(st: MemoryStorage, rec: _Record) -> None:
    if rec.kind == "entries":
        st.append(rec.entries)
    elif rec.kind == "hard_state":
        assert rec.hard_state is not None
        st.set_hard_state(rec.hard_state)
    elif rec.kind == "snapshot":
        assert rec.snapshot is not None
        st.apply_snapshot(rec.snapshot)
    else:
        assert rec.snapshot is not None
        meta = rec.snapshot.meta
        if meta.index > st.snapshot().meta.index:
            st.create_snapshot(meta.index, meta.conf_state, rec.snapshot.data)


class Disk:
    __slots__ = ("durable", "live", "pending", "synced_hard_state", "torn_detected")

    def __init__(self, initial: MemoryStorage) -> None:
        self.durable = initial
        self.live = initial.clone()
        self.pending: list[_Record] = []
        self.synced_hard_state = initial.initial_state()[0]
        self.torn_detected = 0

    def _write(self, rec: _Record) -> None:
        _apply(self.live, rec)
        self.pending.append(rec)

    def write_entries(self, entries: tuple[Entry, ...]) -> None:
        self._write(_Record("entries", entries=entries))

    def write_hard_state(self, hs: HardState) -> None:
        self._write(_Record("hard_state", hard_state=hs))

    def write_snapshot(self, snap: Snapshot) -> None:
        self._write(_Record("snapshot", snapshot=snap))

    def create_snapshot(self, snap: Snapshot, compact_to: int) -> None:
        """Persist a local snapshot, fsync, then compact both images up to ``compact_to``."""
        self._write(_Record("create_snapshot", snapshot=snap))
        self.fsync()
        for st in (self.live, self.durable):
            if compact_to >= st.first_index():
                st.compact(compact_to)

    def fsync(self) -> None:
        for rec in self.pending:
            _apply(self.durable, rec)
            if rec.hard_state is not None:
                self.synced_hard_state = rec.hard_state
        self.pending.clear()

    def crash(self, rng: random.Random, keep_all: bool = False) -> None:
        """Lose the page cache: a prefix of unsynced writes survives, its last record possibly torn."""
        if self.pending:
            n = len(self.pending) if keep_all else rng.randrange(len(self.pending) + 1)
            survivors = self.pending[:n]
            if survivors and not keep_all and rng.random() < 0.5:
                survivors[-1].torn = True
            for rec in survivors:
                if rec.torn:
                    # Recovery: the checksum of the tail record fails; truncate it and everything after.
                    self.torn_detected += 1
                    break
                _apply(self.durable, rec)
        self.pending = []
        self.live = self.durable.clone()

    def corrupt_unsynced_tail_and_crash(self, rng: random.Random) -> bool:
        """Corruption on demand: the newest unsynced record reaches the disk damaged, then the node
        crashes; recovery must detect and truncate it."""
        if not self.pending:
            return False
        self.pending[-1].torn = True
        self.crash(rng, keep_all=True)
        return True
