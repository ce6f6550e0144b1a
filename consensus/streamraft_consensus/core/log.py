"""The Raft log: durable entries (read through ``LogStorage``) followed by unstable ones in memory.

Unstable entries and an unstable snapshot are what the next Ready hands to the caller to persist;
``stable_to``/``stable_snap_to`` drop them once the caller reports they are durable. Appends extend a
list in place (amortised O(1)); a conflicting suffix is truncated with one slice deletion.
"""

from __future__ import annotations

from collections.abc import Sequence

from streamraft_consensus.core.memory_storage import limit_size
from streamraft_consensus.core.storage import Compacted, LogStorage, Unavailable
from streamraft_consensus.core.types import Entry, Snapshot


class RaftLog:
    __slots__ = (
        "applied",
        "committed",
        "storage",
        "truncated_at",
        "unstable",
        "unstable_offset",
        "unstable_snapshot",
    )

    def __init__(self, storage: LogStorage) -> None:
        self.storage = storage
        last = storage.last_index()
        self.unstable: list[Entry] = []
        # Index of unstable[0] (or where it would be).
        self.unstable_offset = last + 1
        self.unstable_snapshot: Snapshot | None = None
        # Where the last maybe_append() truncated a conflicting suffix (0: it did not).
        self.truncated_at = 0
        first = storage.first_index()
        self.committed = first - 1
        self.applied = first - 1

    # --- indexes and terms ----------------------------------------------------------------------------
    def first_index(self) -> int:
        if self.unstable_snapshot is not None:
            return self.unstable_snapshot.meta.index + 1
        return self.storage.first_index()

    def last_index(self) -> int:
        if self.unstable:
            return self.unstable_offset + len(self.unstable) - 1
        if self.unstable_snapshot is not None:
            return self.unstable_snapshot.meta.index
        return self.storage.last_index()

    def term(self, index: int) -> int | None:
        """Term at ``index``, or None if it is compacted away or past the end."""
        uo = self.unstable_offset
        if index >= uo:
            i = index - uo
            return self.unstable[i].term if i < len(self.unstable) else None
        snap = self.unstable_snapshot
        if snap is not None:
            # After restore() the unstable entries start right after the snapshot.
            return snap.meta.term if index == snap.meta.index else None
        try:
            return self.storage.term(index)
        except (Compacted, Unavailable):
            return None

    def last_term(self) -> int:
        t = self.term(self.last_index())
        assert t is not None, "the last index always has a term"
        return t

    def match_term(self, index: int, term: int) -> bool:
        return self.term(index) == term

    def is_up_to_date(self, last_index: int, term: int) -> bool:
        lt = self.last_term()
        return term > lt or (term == lt and last_index >= self.last_index())

    def find_conflict(self, ents: Sequence[Entry]) -> int:
        for e in ents:
            if self.term(e.index) != e.term:
                return e.index
        return 0

    def find_conflict_by_term(self, index: int, term: int) -> tuple[int, int]:
        """The largest index <= ``index`` whose term is <= ``term`` (or unknown), with its term."""
        index = min(index, self.last_index())
        while index > 0:
            t = self.term(index)
            if t is None:
                return index, 0
            if t <= term:
                return index, t
            index -= 1
        return 0, 0

    # --- mutation -------------------------------------------------------------------------------------
    def maybe_append(self, index: int, log_term: int, committed: int, ents: Sequence[Entry]) -> int | None:
        """Follower side of AppendEntries; the last index now known to match the leader, or None."""
        if not self.match_term(index, log_term):
            return None
        last_new = index + len(ents)
        ci = self.find_conflict(ents)
        self.truncated_at = ci if ci and ci <= self.last_index() else 0
        if ci:
            assert ci > self.committed, f"entry {ci} conflicts with committed entry (commit {self.committed})"
            self.append(ents[ci - index - 1 :])
        self.commit_to(min(committed, last_new))
        return last_new

    def append(self, ents: Sequence[Entry]) -> int:
        if not ents:
            return self.last_index()
        after = ents[0].index
        assert after - 1 >= self.committed, f"append at {after} would overwrite commit {self.committed}"
        uo = self.unstable_offset
        if after == uo + len(self.unstable):
            self.unstable.extend(ents)
        elif after <= uo:
            # The stored suffix from ``after`` is replaced; storage truncates it when this is persisted.
            self.unstable_offset = after
            self.unstable = list(ents)
        else:
            del self.unstable[after - uo :]
            self.unstable.extend(ents)
        return self.last_index()

    def commit_to(self, to_commit: int) -> None:
        if to_commit > self.committed:
            assert to_commit <= self.last_index(), f"commit {to_commit} past last index {self.last_index()}"
            self.committed = to_commit

    def maybe_commit(self, max_index: int, term: int) -> bool:
        """Commit ``max_index`` if it is from ``term`` (a leader commits only current-term entries)."""
        if max_index > self.committed and self.term(max_index) == term:
            self.commit_to(max_index)
            return True
        return False

    def applied_to(self, index: int) -> None:
        if index <= self.applied:
            return
        assert index <= self.committed, f"applied {index} past commit {self.committed}"
        self.applied = index

    def stable_to(self, index: int, term: int) -> None:
        """Entries up to ``index`` (at ``term``) are durable; a later overwrite makes this a no-op."""
        uo = self.unstable_offset
        if index < uo or index >= uo + len(self.unstable):
            return
        if self.unstable[index - uo].term != term:
            return
        del self.unstable[: index - uo + 1]
        self.unstable_offset = index + 1

    def stable_snap_to(self, index: int) -> None:
        if self.unstable_snapshot is not None and self.unstable_snapshot.meta.index == index:
            self.unstable_snapshot = None

    def restore(self, snap: Snapshot) -> None:
        self.committed = snap.meta.index
        self.unstable_offset = snap.meta.index + 1
        self.unstable = []
        self.unstable_snapshot = snap

    # --- reading --------------------------------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        if self.unstable_snapshot is not None:
            return self.unstable_snapshot
        return self.storage.snapshot()

    def has_pending_snapshot(self) -> bool:
        return self.unstable_snapshot is not None

    def slice(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Entry]:
        """Entries in [lo, hi), at least one if any; raises Compacted if ``lo`` is compacted away."""
        if lo >= hi:
            return []
        if lo < self.first_index():
            raise Compacted(f"index {lo} is compacted (first index {self.first_index()})")
        assert hi <= self.last_index() + 1, f"slice [{lo}, {hi}) past last index {self.last_index()}"
        uo = self.unstable_offset
        if hi <= uo:
            return self.storage.entries(lo, hi, max_bytes)
        if lo >= uo:
            ents = self.unstable[lo - uo : hi - uo]
            return limit_size(ents, max_bytes) if max_bytes is not None else ents
        stored = self.storage.entries(lo, uo, max_bytes)
        if len(stored) < uo - lo:
            return stored
        ents = [*stored, *self.unstable[: hi - uo]]
        return limit_size(ents, max_bytes) if max_bytes is not None else ents

    def entries_from(self, lo: int, max_bytes: int | None = None) -> list[Entry]:
        return self.slice(lo, self.last_index() + 1, max_bytes)

    def has_next_committed(self) -> bool:
        if self.unstable_snapshot is not None:
            return False
        return self.committed > max(self.applied, self.first_index() - 1)

    def next_committed_entries(self, max_bytes: int | None) -> list[Entry]:
        if self.unstable_snapshot is not None:
            return []
        lo = max(self.applied + 1, self.first_index())
        return self.slice(lo, self.committed + 1, max_bytes)
