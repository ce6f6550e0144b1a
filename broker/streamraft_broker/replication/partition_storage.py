"""Raft storage for one partition whose Raft log IS the partition's Kafka log: each produced batch is
written once per replica, into the partition's segments, and fetched from there.

Offset mapping (what clients see):

- A data entry is exactly one Kafka record batch. Its Raft index is its place in the log; its Kafka offsets
  are assigned as the entry reaches this replica's log: base offset = the log end offset before it (the
  header's baseOffset is rewritten; it is outside the CRC). Every replica holds the same entries in the same
  order (Raft's Log Matching), so every replica assigns the same offsets. partitionLeaderEpoch = the entry's
  Raft term, so OffsetForLeaderEpoch answers from Raft terms.
- Raft's own entries (the empty entry a new leader appends, configuration changes) take no Kafka offset and
  are not in the partition log: they live in a small journal beside it (``entries``), each with the Kafka
  offset at which it sits. Clients see neither a gap nor a bogus record.

Files (``meta_dir``): ``state`` (hard state + conf state), ``snapshot`` (index, term, conf state and the Kafka
offset where the log resumes), ``entries`` (the journal). The partition log keeps its own directory.

Crash recovery merges the two logs. Writes since the last fsync may be lost from either file, so:
- a journal entry whose Kafka offset lies past the surviving partition log lost the data before it: it and
  everything after it go;
- a batch whose term is newer than the last Raft entry before it lost the new leader's empty entry (always
  the first entry of its term): the batch and everything after it go;
- a configuration change is the only journal entry that can sit inside a term, so it is fsynced as it is
  written (rare: one per membership step), before any later batch can reach the disk.
Nothing at or below the durable commit index is ever dropped this way: that is reported as corruption.

Snapshots: the partition's state machine is its log, so a snapshot is only a position (Raft index and term,
Kafka offset). Retention moves the log start (``retain``): the snapshot is written first, then segments go.
A follower behind the leader's log start installs that snapshot: its log restarts empty at that offset,
which is what a new Kafka replica does (it copies from the leader's log start).
"""

from __future__ import annotations

import bisect
import dataclasses
import logging
import os
import struct
from array import array
from collections.abc import Callable, Sequence
from pathlib import Path

from streamraft_consensus.core.storage import Compacted, Unavailable
from streamraft_consensus.core.types import ConfState, Entry, EntryType, HardState, Snapshot, SnapshotMeta
from streamraft_consensus.storage import codec
from streamraft_consensus.storage.files import atomic_write, read_checked, write_all
from streamraft_consensus.storage.state_file import StateFile

from streamraft_broker.log.fileio import atomic_write as replace_file
from streamraft_broker.log.partition import PartitionLog
from streamraft_broker.records.batch import BatchHeader, parse_header

log = logging.getLogger(__name__)

_SNAP_MAGIC = b"SRPS"
_OFFSET = struct.Struct(">q")
_PREFIX = struct.Struct(">qii")  # baseOffset, batchLength, partitionLeaderEpoch
_MAGIC_V2 = 2
CACHE_MAX_BYTES = 16 << 20
"""Batches appended and not yet applied are kept in memory (up to this much per partition): applying them,
and sending them to followers right after, then reads no file. Past it, entries are read back from the log."""


class RaftPartitionLogError(Exception):
    """The partition log and its Raft files disagree in a way a crash cannot explain (entries at or below
    the durable commit index are missing, or a batch is not where the Raft log says): start-up stops and
    the message names the directories, because repairing it would lose acknowledged writes."""


class PartitionRaftStorage:
    """Implements ``core.storage.LogStorage`` and ``storage.protocol.LogWriter`` over a PartitionLog."""

    def __init__(
        self,
        plog: PartitionLog,
        meta_dir: Path,
        *,
        on_append: Callable[[BatchHeader], None] | None = None,
        on_truncate: Callable[[int], None] | None = None,
    ) -> None:
        self.log = plog
        self.dir = Path(meta_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.on_append = on_append
        """Called with each batch's header (real offsets) as it reaches this replica's log."""
        self.on_truncate = on_truncate
        """Called with the Kafka offset the log was cut back to (conflict truncation or a snapshot)."""
        self._state = StateFile(self.dir / "state")
        self._snap_meta = SnapshotMeta()
        self._snap_offset = 0
        self._first = 1
        self._starts = array("q")
        """Kafka offset at which each entry sits (a batch's base offset); non-decreasing."""
        self._terms = array("q")
        self._side: dict[int, Entry] = {}
        """Raft-only entries (empty, configuration changes) by index."""
        self._cache: dict[int, Entry] = {}
        self._cache_bytes = 0
        self._log_dirty = False
        self._journal_dirty = False
        self._dir_dirty = False
        self._closed = False
        self._load_snapshot()
        self._journal_path = self.dir / "entries"
        self._recover()
        self._journal_fd = os.open(self._journal_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    # ------------------------------------------------------------------ recovery

    def _load_snapshot(self) -> None:
        for stale in self.dir.glob("*.tmp"):
            stale.unlink()
        path = self.dir / "snapshot"
        if not path.exists():
            return
        meta, data = codec.decode_snapshot(read_checked(path, _SNAP_MAGIC))
        if len(data) != _OFFSET.size:
            raise RaftPartitionLogError(
                f"{path}: snapshot data is {len(data)} bytes, expected {_OFFSET.size}"
            )
        self._snap_meta = meta
        (self._snap_offset,) = _OFFSET.unpack(data)
        self._first = meta.index + 1

    def _read_journal(self) -> list[tuple[Entry, int]]:
        """(entry, kafka offset) records of the journal; a torn tail is cut off (logged)."""
        if not self._journal_path.exists():
            return []
        buf = self._journal_path.read_bytes()
        out: list[tuple[Entry, int]] = []
        pos = 0
        while pos < len(buf):
            got = codec.decode_record(buf, pos)
            if isinstance(got, str):
                log.warning(
                    "event=raft_journal_torn_tail file=%s position=%d size=%d reason=%s",
                    self._journal_path,
                    pos,
                    len(buf),
                    got,
                )
                break
            record, pos = got
            (offset,) = _OFFSET.unpack_from(record.data, 0)
            out.append((Entry(record.term, record.index, record.type, record.data[_OFFSET.size :]), offset))
        return out

    def _recover(self) -> None:
        plog = self.log
        if plog.log_start_offset > self._snap_offset:
            raise RaftPartitionLogError(
                f"{plog.directory}: log starts at offset {plog.log_start_offset}, after the Raft snapshot's "
                f"offset {self._snap_offset} in {self.dir}: the entries between are missing"
            )
        if plog.log_start_offset < self._snap_offset:
            # Retention wrote the snapshot and died before moving the log start: finish it.
            plog.delete_records_before(self._snap_offset)
        journal = [(e, o) for e, o in self._read_journal() if e.index >= self._first]
        journal.sort(key=lambda item: item[0].index)
        index = self._first
        offset = self._snap_offset
        term = self._snap_meta.term
        placed_side: list[tuple[Entry, int]] = []
        j = 0
        stop_reason = ""
        for header in plog.iter_batch_headers(self._snap_offset):
            while j < len(journal) and journal[j][0].index == index:
                entry, at = journal[j]
                if at != offset or entry.term < term:
                    stop_reason = f"journal entry {index} at offset {at} does not follow the log at {offset}"
                    break
                self._place_side(entry, at, placed_side)
                term = entry.term
                index += 1
                j += 1
            if stop_reason:
                break
            if header.base_offset != offset:
                stop_reason = f"batch at offset {header.base_offset} where offset {offset} was expected"
                break
            if header.partition_leader_epoch != term:
                stop_reason = (
                    f"batch at offset {offset} has term {header.partition_leader_epoch} but the entry before "
                    f"it has term {term} (the new leader's first entry was lost)"
                )
                break
            self._starts.append(offset)
            self._terms.append(term)
            offset = header.next_offset
            index += 1
        if not stop_reason:
            while j < len(journal) and journal[j][0].index == index and journal[j][1] == offset:
                entry, at = journal[j]
                if entry.term < term:
                    break
                self._place_side(entry, at, placed_side)
                term = entry.term
                index += 1
                j += 1
        last = index - 1
        commit = self._state.hard_state.commit
        if last < commit:
            raise RaftPartitionLogError(
                f"{plog.directory} with {self.dir}: the log is consistent only up to index {last} "
                f"(offset {offset}), below the durable commit index {commit}: {stop_reason}"
            )
        if offset < plog.log_end_offset:
            log.warning(
                "event=raft_log_tail_truncated directory=%s from_offset=%d log_end_offset=%d last_index=%d "
                "reason=%r",
                plog.directory,
                offset,
                plog.log_end_offset,
                last,
                stop_reason or "unsynced tail",
            )
            plog.truncate_to(offset)
        if len(placed_side) != len(journal) or not self._journal_path.exists():
            self._rewrite_journal(placed_side)

    def _place_side(self, entry: Entry, at: int, placed: list[tuple[Entry, int]]) -> None:
        self._starts.append(at)
        self._terms.append(entry.term)
        self._side[entry.index] = entry
        placed.append((entry, at))

    def _rewrite_journal(self, records: Sequence[tuple[Entry, int]]) -> None:
        payload = b"".join(_encode_side(e, at) for e, at in records)
        replace_file(self._journal_path, payload)

    def _reopen_journal(self, records: Sequence[tuple[Entry, int]]) -> None:
        os.close(self._journal_fd)
        self._rewrite_journal(records)
        self._journal_fd = os.open(self._journal_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._journal_dirty = False

    def _side_records(self, lo: int, hi: int) -> list[tuple[Entry, int]]:
        return [(self._side[i], self._starts[i - self._first]) for i in sorted(self._side) if lo <= i < hi]

    # ------------------------------------------------------------------ LogStorage (reads)

    def initial_state(self) -> tuple[HardState, ConfState]:
        return self._state.hard_state, self._state.conf_state

    def first_index(self) -> int:
        return self._first

    def last_index(self) -> int:
        return self._first + len(self._terms) - 1

    def term(self, index: int) -> int:
        if index == self._first - 1:
            return self._snap_meta.term
        if index < self._first - 1:
            raise Compacted(f"index {index} is compacted (first index {self._first})")
        k = index - self._first
        if k >= len(self._terms):
            raise Unavailable(f"index {index} is past the last index {self.last_index()}")
        return self._terms[k]

    def entries(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Entry]:
        if lo < self._first:
            raise Compacted(f"index {lo} is compacted (first index {self._first})")
        if hi > self.last_index() + 1:
            raise Unavailable(f"index {hi - 1} is past the last index {self.last_index()}")
        out: list[Entry] = []
        size = 0
        i = lo
        while i < hi:
            if out and max_bytes is not None and size >= max_bytes:
                break
            side = self._side.get(i) or self._cache.get(i)
            if side is not None:
                if out and max_bytes is not None and size + side.size() > max_bytes:
                    break
                out.append(side)
                size += side.size()
                i += 1
                continue
            j = i
            while j < hi and j not in self._side and j not in self._cache:
                j += 1
            budget = max_bytes - size if max_bytes is not None else 1 << 62
            got = self._read_batches(i, j, max(budget, 1))
            for e in got:
                if out and max_bytes is not None and size + e.size() > max_bytes:
                    return out
                out.append(e)
                size += e.size()
            if len(got) < j - i:
                break
            i = j
        return out

    def _read_batches(self, lo: int, hi: int, budget: int) -> list[Entry]:
        """Data entries [lo, hi) (no journal entry among them), at least one, up to ``budget`` bytes."""
        first = self._first
        start = self._starts[lo - first]
        end = self._start_of(hi)
        data = self.log.read_bytes(start, budget, max_offset=end, min_one_message=True)
        out: list[Entry] = []
        pos = 0
        view = memoryview(data)
        i = lo
        while pos < len(data) and i < hi:
            base, length, _epoch = _PREFIX.unpack_from(view, pos)
            expected = self._starts[i - first]
            if base != expected:
                raise RaftPartitionLogError(
                    f"{self.log.directory}: Raft entry {i} should start at offset {expected}, found a batch "
                    f"at offset {base}"
                )
            size = length + 12
            out.append(Entry(self._terms[i - first], i, EntryType.NORMAL, bytes(view[pos : pos + size])))
            pos += size
            i += 1
        if not out:
            raise RaftPartitionLogError(
                f"{self.log.directory}: no batch at offset {start} for Raft entry {lo}"
            )
        return out

    def _start_of(self, index: int) -> int:
        """Kafka offset at which entry ``index`` sits; the log end for the index after the last."""
        k = index - self._first
        if k < len(self._starts):
            return self._starts[k]
        return self.log.log_end_offset

    def snapshot(self) -> Snapshot:
        return Snapshot(self._snap_meta, _OFFSET.pack(self._snap_offset))

    # ------------------------------------------------------------------ what the broker asks

    def data_range(self, index: int) -> tuple[int, int] | None:
        """(base offset, next offset) of the batch at Raft ``index``; None for a Raft-only entry."""
        if index in self._side:
            return None
        k = index - self._first
        if not 0 <= k < len(self._starts):
            raise Unavailable(f"index {index} is not in the log [{self._first}, {self.last_index()}]")
        return self._starts[k], self._start_of(index + 1)

    def offset_after(self, index: int) -> int:
        """The Kafka offset just past entry ``index`` (the high watermark once it is committed)."""
        if index < self._first:
            return self._snap_offset
        return self._start_of(index + 1)

    def release(self, through: int) -> None:
        """Entries up to ``through`` are applied: drop them from the in-memory cache."""
        for index in [i for i in self._cache if i <= through]:
            self._cache_bytes -= len(self._cache.pop(index).data)

    def _drop_cache_from(self, index: int) -> None:
        for i in [i for i in self._cache if i >= index]:
            self._cache_bytes -= len(self._cache.pop(i).data)

    @property
    def snapshot_offset(self) -> int:
        return self._snap_offset

    # ------------------------------------------------------------------ LogWriter

    def append(self, entries: Sequence[Entry]) -> None:
        if not entries:
            return
        first = entries[0].index
        last = self.last_index()
        if first <= last:
            self._truncate_suffix(first)
        elif first != last + 1:
            raise ValueError(f"append at index {first} leaves a gap after the last index {last}")
        for e in entries:
            if e.type == EntryType.NORMAL and e.data:
                self._append_batch(e)
            else:
                self._append_side(e)

    def _append_batch(self, e: Entry) -> None:
        buf = bytearray(e.data)
        header = parse_header(buf, 0)
        if header.magic != _MAGIC_V2 or header.size != len(buf):
            raise ValueError(
                f"Raft entry {e.index} is not one record batch: magic {header.magic}, batch size "
                f"{header.size}, entry size {len(buf)}"
            )
        base = self.log.log_end_offset
        _PREFIX.pack_into(buf, 0, base, header.batch_length, e.term)
        stored = dataclasses.replace(header, base_offset=base, partition_leader_epoch=e.term)
        self.log.append_raft(buf, stored)
        self._starts.append(base)
        self._terms.append(e.term)
        self._log_dirty = True
        if self._cache_bytes + len(buf) <= CACHE_MAX_BYTES:
            # As stored (offsets and epoch set), so a cached entry reads exactly like one from the file.
            self._cache[e.index] = Entry(e.term, e.index, EntryType.NORMAL, bytes(buf))
            self._cache_bytes += len(buf)
        if self.on_append is not None:
            self.on_append(stored)

    def _append_side(self, e: Entry) -> None:
        at = self.log.log_end_offset
        first_of_term = e.term > (self._terms[-1] if self._terms else self._snap_meta.term)
        write_all(self._journal_fd, _encode_side(e, at))
        self._starts.append(at)
        self._terms.append(e.term)
        self._side[e.index] = e
        if first_of_term:
            self._journal_dirty = True
        else:
            # Inside a term nothing else tells recovery this entry existed: durable before any later batch.
            os.fsync(self._journal_fd)

    def _truncate_suffix(self, index: int) -> None:
        commit = self._state.hard_state.commit
        if index <= commit:
            raise ValueError(f"refusing to truncate committed entries: from {index}, commit {commit}")
        if index < self._first:
            raise Compacted(f"cannot truncate from {index}: first index is {self._first}")
        k = index - self._first
        offset = self._starts[k]
        dropped_side = [i for i in self._side if i >= index]
        del self._starts[k:]
        del self._terms[k:]
        for i in dropped_side:
            del self._side[i]
        self._drop_cache_from(index)
        if offset < self.log.log_end_offset:
            self.log.truncate_to(offset)
            self._log_dirty = True
        if dropped_side:
            self._reopen_journal(self._side_records(self._first, index))
        if self.on_truncate is not None:
            self.on_truncate(offset)

    def set_hard_state(self, hs: HardState) -> None:
        self._state.set_hard_state(hs)

    def set_conf_state(self, cs: ConfState) -> None:
        self._state.set_conf_state(cs)

    def needs_sync(self) -> bool:
        return self._log_dirty or self._journal_dirty or self._state.dirty

    def sync(self) -> None:
        if self._log_dirty:
            self._log_dirty = False
            self.log.sync_active()
        if self._journal_dirty:
            self._journal_dirty = False
            os.fsync(self._journal_fd)
        if self._state.dirty:
            self._state.write()

    def _write_snapshot(self, meta: SnapshotMeta, offset: int) -> None:
        atomic_write(self.dir / "snapshot", _SNAP_MAGIC, codec.encode_snapshot(meta, _OFFSET.pack(offset)))
        self._snap_meta = meta
        self._snap_offset = offset

    def apply_snapshot(self, snapshot: Snapshot) -> None:
        meta = snapshot.meta
        if meta.index <= self._snap_meta.index:
            raise ValueError(
                f"snapshot at {meta.index} is not newer than the current one at {self._snap_meta.index}"
            )
        if len(snapshot.data) != _OFFSET.size:
            raise ValueError(
                f"partition snapshot data is {len(snapshot.data)} bytes, expected {_OFFSET.size}"
            )
        (offset,) = _OFFSET.unpack(snapshot.data)
        self._write_snapshot(meta, offset)
        self.log.reset_to(offset)
        self._first = meta.index + 1
        del self._starts[:]
        del self._terms[:]
        self._side.clear()
        self._drop_cache_from(0)
        self._reopen_journal([])
        self._log_dirty = False
        self._state.install(meta.index, meta.conf_state)
        if self.on_truncate is not None:
            self.on_truncate(offset)

    def create_snapshot(self, index: int, conf_state: ConfState, data: bytes) -> Snapshot:
        """The state at ``index`` is the log up to it: ``data`` is ignored, the snapshot holds its offset."""
        if index <= self._snap_meta.index:
            raise ValueError(f"snapshot index {index} is not above the current one {self._snap_meta.index}")
        if index > self.last_index():
            raise Unavailable(f"snapshot index {index} is past last index {self.last_index()}")
        meta = SnapshotMeta(index, self.term(index), conf_state)
        self._write_snapshot(meta, self.offset_after(index))
        self._state.write_if_commit_dirty()
        return self.snapshot()

    def compact(self, index: int) -> None:
        """Drop entries up to ``index`` (covered by the durable snapshot): the log start moves past them."""
        if index > self._snap_meta.index:
            raise ValueError(f"compact({index}) is past the durable snapshot at {self._snap_meta.index}")
        if index < self._first:
            return
        k = index - self._first + 1
        new_start = self._snap_offset
        dropped_side = [i for i in self._side if i <= index]
        del self._starts[:k]
        del self._terms[:k]
        for i in dropped_side:
            del self._side[i]
        self.release(index)
        self._first = index + 1
        if new_start > self.log.log_start_offset:
            self.log.delete_records_before(new_start)
        if dropped_side:
            self._reopen_journal(self._side_records(self._first, self.last_index() + 1))

    def retain(self, applied: int, conf_state: ConfState, conf_index: int = 0) -> int:
        """Apply the topic's retention to a Raft log: pick the new log start (whole segments, as Kafka
        does), never past what is applied, write the snapshot there, then drop the entries before it.
        ``conf_state`` is the configuration as of ``applied`` and every index from ``conf_index`` on (after a
        restart the runtime only knows it from the log's end); the snapshot carries the configuration as of
        its own index, so none may happen between (retention then waits). Returns how many entries went."""
        limit = self.offset_after(applied) if applied >= self._first else self._snap_offset
        new_start = self.log.retention_start(limit)
        if new_start is None:
            return 0
        return self._start_at(new_start, applied, conf_state, conf_index)

    def retain_before(self, offset: int, applied: int, conf_state: ConfState, conf_index: int = 0) -> int:
        """DeleteRecords: drop the entries wholly before Kafka ``offset`` (and not past ``applied``) as
        ``retain`` does; the log then starts at the batch holding ``offset`` (the partition hides the rest
        of it). Returns how many entries went."""
        limit = self.offset_after(applied) if applied >= self._first else self._snap_offset
        target = min(offset, limit)
        k = bisect.bisect_right(self._starts, target) - 1
        if k < 0:
            return 0
        return self._start_at(self._starts[k], applied, conf_state, conf_index)

    def _start_at(self, new_start: int, applied: int, conf_state: ConfState, conf_index: int) -> int:
        """Snapshot at the last entry before Kafka offset ``new_start`` and compact up to it."""
        if new_start <= self._snap_offset:
            return 0
        k = bisect.bisect_left(self._starts, new_start)
        index = self._first + k - 1
        if index < self._first or index > applied or index < conf_index:
            return 0
        if any(index < i <= applied for i in self.conf_change_indexes()):
            return 0
        meta = SnapshotMeta(index, self.term(index), conf_state)
        self._write_snapshot(meta, new_start)
        self._state.write_if_commit_dirty()
        before = self._first
        self.compact(index)
        log.info(
            "event=raft_log_retained directory=%s log_start_offset=%d first_index=%d",
            self.log.directory,
            new_start,
            self._first,
        )
        return self._first - before

    def conf_change_indexes(self) -> list[int]:
        return sorted(i for i, e in self._side.items() if e.type == EntryType.CONF_CHANGE)

    def close(self) -> None:
        if self._closed:
            return
        if self.log.closed:
            self._log_dirty = False  # closed (and flushed) by its owner already
        try:
            self.sync()
            self._state.write_if_commit_dirty()
        finally:
            # Released even when the final sync fails (a full disk): the group is re-opened from disk.
            self._closed = True
            os.close(self._journal_fd)


def _encode_side(e: Entry, at: int) -> bytes:
    return codec.encode_entry(Entry(e.term, e.index, e.type, _OFFSET.pack(at) + e.data))
