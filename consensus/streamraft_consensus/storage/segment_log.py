"""Durable Raft log for one group: append-only segment files, plus atomic hard-state and snapshot files.

Directory layout::

    <dir>/<first index, 20 digits>.seg   log records (see ``codec``), contiguous indexes
    <dir>/state                          hard state + conf state (atomic rename, CRC)
    <dir>/snap-<index, 20 digits>.snap   latest snapshot (atomic rename, CRC)

Appends are buffered in the OS; ``sync()`` fsyncs every touched file once, so a batch of many entries
costs one fsync (group commit). Callers acknowledge persistence only after ``sync()`` returns.

Recovery on open: a bad record at the very end of the last segment is a torn write from a crash and is
truncated (logged with file and byte offset). A bad record that has a valid record after it, or any bad
record in an older segment, is corruption of acknowledged data and raises ``CorruptLogError``.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import crc32c

from streamraft_consensus.core.storage import Compacted, Unavailable
from streamraft_consensus.core.types import ConfState, Entry, EntryType, HardState, Snapshot, SnapshotMeta
from streamraft_consensus.storage import codec
from streamraft_consensus.storage.errors import CorruptLogError
from streamraft_consensus.storage.files import atomic_write, fsync_dir, read_checked, write_all
from streamraft_consensus.storage.state_file import StateFile

log = logging.getLogger("streamraft.consensus.storage")

DEFAULT_SEGMENT_BYTES = 64 << 20
_SNAP_MAGIC = b"SRSN"
_SEG_SUFFIX = ".seg"
_VALID_TYPES = frozenset(int(t) for t in EntryType)


class _Segment:
    __slots__ = ("fd", "first_index", "offsets", "path", "size", "terms")

    def __init__(self, path: Path, first_index: int, fd: int) -> None:
        self.path = path
        self.first_index = first_index
        self.fd = fd
        self.offsets: list[int] = []
        self.terms: list[int] = []
        self.size = 0

    @property
    def last_index(self) -> int:
        return self.first_index + len(self.offsets) - 1

    def end_of(self, k: int) -> int:
        return self.offsets[k + 1] if k + 1 < len(self.offsets) else self.size


def _seg_name(first_index: int) -> str:
    return f"{first_index:020d}{_SEG_SUFFIX}"


def _find_valid_record_after(buf: bytes, start: int, min_index: int) -> int | None:
    """Offset of the first record at or after ``start`` that verifies and has an index >= ``min_index``.

    Used to tell a torn tail (nothing valid follows) from mid-file corruption (valid data follows)."""
    end = len(buf) - codec.RECORD_OVERHEAD
    max_index = min_index + len(buf)  # each record is > 1 byte, so no valid index can be larger
    for p in range(start, end + 1):
        length, crc = codec.RECORD_PREFIX.unpack_from(buf, p)
        if length < codec.RECORD_BODY_HEADER.size or p + 8 + length > len(buf):
            continue
        _term, index, etype = codec.RECORD_BODY_HEADER.unpack_from(buf, p + 8)
        if etype not in _VALID_TYPES or not (min_index <= index <= max_index):
            continue
        if crc32c.crc32c(buf[p + 8 : p + 8 + length]) == crc:
            return p
    return None


class SegmentLog:
    """Implements ``core.storage.LogStorage`` and ``storage.protocol.LogWriter``."""

    def __init__(self, directory: Path | str, segment_bytes: int = DEFAULT_SEGMENT_BYTES) -> None:
        if segment_bytes < 1024:
            raise ValueError(f"segment_bytes={segment_bytes} is below the 1024-byte minimum")
        self.dir = Path(directory)
        self.segment_bytes = segment_bytes
        self.dir.mkdir(parents=True, exist_ok=True)
        self._state = StateFile(self.dir / "state")
        self._snap_meta = SnapshotMeta()
        self._snap_path: Path | None = None
        self._segments: list[_Segment] = []
        self._firsts: list[int] = []  # first_index of each segment, for bisect
        self._dirty_fds: set[int] = set()
        self._dir_dirty = False
        self._closed = False
        self._load_snapshot()
        # (index, term) of the entry just before the first one we serve.
        self._prev = (self._snap_meta.index, self._snap_meta.term)
        self._load_segments()

    # ---------------------------------------------------------------- recovery

    def _load_snapshot(self) -> None:
        snaps = sorted(self.dir.glob("snap-*.snap"))
        for stale in self.dir.glob("*.tmp"):
            stale.unlink()
        if not snaps:
            return
        self._snap_path = snaps[-1]
        self._snap_meta, _ = codec.decode_snapshot(read_checked(self._snap_path, _SNAP_MAGIC))
        for old in snaps[:-1]:
            old.unlink()

    def _load_segments(self) -> None:
        paths = sorted(self.dir.glob("*" + _SEG_SUFFIX))
        for n, path in enumerate(paths):
            is_last = n == len(paths) - 1
            try:
                first = int(path.name[: -len(_SEG_SUFFIX)])
            except ValueError:
                raise CorruptLogError(path, 0, "segment file name is not a 20-digit index") from None
            if self._segments and first != self._segments[-1].last_index + 1:
                raise CorruptLogError(
                    path, 0, f"segment starts at index {first}, expected {self._segments[-1].last_index + 1}"
                )
            seg = _Segment(path, first, os.open(path, os.O_RDWR))
            self._scan(seg, is_last)
            if not seg.offsets and not is_last:
                raise CorruptLogError(path, 0, "empty segment that is not the last one")
            self._segments.append(seg)
            self._firsts.append(first)
        snap_index = self._snap_meta.index
        if snap_index and (not self._segments or self.last_index_physical() < snap_index):
            # The snapshot is ahead of the whole log (one was received from the leader): nothing in the
            # segments is usable.
            self._drop_all_segments()
        elif snap_index and self._segments and self._segments[0].first_index > snap_index + 1:
            raise CorruptLogError(self._segments[0].path, 0, f"gap after snapshot index {snap_index}")
        elif not snap_index and self._segments and self._segments[0].first_index > 1:
            raise CorruptLogError(self._segments[0].path, 0, "log does not start at index 1 and no snapshot")

    def _scan(self, seg: _Segment, is_last: bool) -> None:
        buf = os.pread(seg.fd, os.fstat(seg.fd).st_size, 0)
        offset = 0
        expected = seg.first_index
        while offset < len(buf):
            result = codec.decode_record(buf, offset)
            if isinstance(result, str):
                follower = _find_valid_record_after(buf, offset + 1, expected)
                if not is_last or follower is not None:
                    raise CorruptLogError(seg.path, offset, result)
                log.warning(
                    "event=torn_tail_truncated file=%s offset=%d dropped_bytes=%d reason=%r",
                    seg.path,
                    offset,
                    len(buf) - offset,
                    result,
                )
                os.ftruncate(seg.fd, offset)
                os.fsync(seg.fd)
                break
            entry, end = result
            if entry.index != expected:
                raise CorruptLogError(seg.path, offset, f"index {entry.index}, expected {expected}")
            seg.offsets.append(offset)
            seg.terms.append(entry.term)
            expected += 1
            offset = end
        seg.size = offset

    def _drop_all_segments(self) -> None:
        for seg in self._segments:
            os.close(seg.fd)
            seg.path.unlink()
            self._dirty_fds.discard(seg.fd)
        self._segments.clear()
        self._firsts.clear()
        fsync_dir(self.dir)

    # ---------------------------------------------------------------- LogStorage (reads)

    def initial_state(self) -> tuple[HardState, ConfState]:
        return self._state.hard_state, self._state.conf_state

    def first_index(self) -> int:
        return self._prev[0] + 1

    def last_index_physical(self) -> int:
        return self._segments[-1].last_index if self._segments else self._prev[0]

    def last_index(self) -> int:
        return max(self.last_index_physical(), self._prev[0])

    def _locate(self, index: int) -> tuple[_Segment, int]:
        n = bisect.bisect_right(self._firsts, index) - 1
        seg = self._segments[n]
        k = index - seg.first_index
        assert 0 <= k < len(seg.offsets), (index, seg.first_index, len(seg.offsets))
        return seg, k

    def term(self, index: int) -> int:
        if index == self._prev[0]:
            return self._prev[1]
        if index < self._prev[0]:
            raise Compacted(f"index {index} is compacted (first index {self.first_index()})")
        if index > self.last_index():
            raise Unavailable(f"index {index} is past last index {self.last_index()}")
        seg, k = self._locate(index)
        return seg.terms[k]

    def entries(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Entry]:
        if lo <= self._prev[0]:
            raise Compacted(f"index {lo} is compacted (first index {self.first_index()})")
        if hi > self.last_index() + 1:
            raise Unavailable(f"entries [{lo}, {hi}) run past last index {self.last_index()}")
        out: list[Entry] = []
        total = 0
        index = lo
        while index < hi:
            seg, k = self._locate(index)
            k_end = min(len(seg.offsets), k + (hi - index))
            start = seg.offsets[k]
            buf = os.pread(seg.fd, seg.end_of(k_end - 1) - start, start)
            pos = 0
            for _ in range(k, k_end):
                result = codec.decode_record(buf, pos)
                if isinstance(result, str):
                    raise CorruptLogError(seg.path, start + pos, result)
                entry, pos = result
                total += len(entry.data) + 24
                if out and max_bytes is not None and total > max_bytes:
                    return out
                out.append(entry)
            index += k_end - k
        return out

    def snapshot(self) -> Snapshot:
        if self._snap_path is None:
            return Snapshot()
        meta, data = codec.decode_snapshot(read_checked(self._snap_path, _SNAP_MAGIC))
        return Snapshot(meta, data)

    # ---------------------------------------------------------------- LogWriter

    def append(self, entries: Sequence[Entry]) -> None:
        if not entries:
            return
        for a, b in itertools.pairwise(entries):
            if b.index != a.index + 1:
                raise ValueError(f"entries are not contiguous: {a.index} then {b.index}")
        if entries[0].index <= self._prev[0]:
            # Already covered by the snapshot: keep only the part after it.
            entries = [e for e in entries if e.index > self._prev[0]]
            if not entries:
                return
        first = entries[0].index
        last = self.last_index()
        if first > last + 1:
            raise ValueError(f"append at index {first} leaves a gap after last index {last}")
        if first <= last:
            self._truncate_suffix(first)
        batch = bytearray()
        seg = self._active_segment(first)
        for entry in entries:
            if seg.size + len(batch) >= self.segment_bytes and seg.offsets:
                self._flush_batch(seg, batch)
                batch = bytearray()
                seg = self._roll(entry.index)
            seg.offsets.append(seg.size + len(batch))
            seg.terms.append(entry.term)
            batch += codec.encode_entry(entry)
        self._flush_batch(seg, batch)

    def _flush_batch(self, seg: _Segment, batch: bytearray) -> None:
        if batch:
            os.lseek(seg.fd, seg.size, os.SEEK_SET)
            write_all(seg.fd, batch)
            seg.size += len(batch)
            self._dirty_fds.add(seg.fd)

    def _active_segment(self, next_index: int) -> _Segment:
        if not self._segments:
            return self._roll(next_index)
        return self._segments[-1]

    def _roll(self, first_index: int) -> _Segment:
        path = self.dir / _seg_name(first_index)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        seg = _Segment(path, first_index, fd)
        self._segments.append(seg)
        self._firsts.append(first_index)
        self._dir_dirty = True
        return seg

    def _truncate_suffix(self, index: int) -> None:
        """Delete entries >= index, durably, before anything new is written over them: a torn new
        write over old records could otherwise look like mid-file corruption after a crash."""
        removed = False
        while self._segments and self._segments[-1].first_index > index:
            seg = self._segments.pop()
            self._firsts.pop()
            self._dirty_fds.discard(seg.fd)
            os.close(seg.fd)
            seg.path.unlink()
            removed = True
        seg, k = self._locate(index)
        cut = seg.offsets[k]
        del seg.offsets[k:]
        del seg.terms[k:]
        seg.size = cut
        os.ftruncate(seg.fd, cut)
        os.fsync(seg.fd)
        if removed:
            fsync_dir(self.dir)
        log.info("event=log_suffix_truncated dir=%s from_index=%d", self.dir, index)

    def set_hard_state(self, hs: HardState) -> None:
        self._state.set_hard_state(hs)

    def set_conf_state(self, cs: ConfState) -> None:
        self._state.set_conf_state(cs)

    def needs_sync(self) -> bool:
        return bool(self._dirty_fds) or self._dir_dirty or self._state.dirty

    def sync(self) -> None:
        for fd in list(self._dirty_fds):
            os.fsync(fd)
        self._dirty_fds.clear()
        if self._dir_dirty:
            self._dir_dirty = False
            fsync_dir(self.dir)
        if self._state.dirty:
            self._state.write()

    def _write_snapshot(self, meta: SnapshotMeta, data: bytes) -> None:
        path = self.dir / f"snap-{meta.index:020d}.snap"
        atomic_write(path, _SNAP_MAGIC, codec.encode_snapshot(meta, data))
        old = self._snap_path
        self._snap_path = path
        self._snap_meta = meta
        if old is not None and old != path:
            old.unlink()
            fsync_dir(self.dir)

    def apply_snapshot(self, snapshot: Snapshot) -> None:
        meta = snapshot.meta
        if meta.index <= self._snap_meta.index:
            raise ValueError(
                f"snapshot at {meta.index} is not newer than the current one at {self._snap_meta.index}"
            )
        self._write_snapshot(meta, snapshot.data)
        self._drop_all_segments()
        self._prev = (meta.index, meta.term)
        self._state.install(meta.index, meta.conf_state)

    def create_snapshot(self, index: int, conf_state: ConfState, data: bytes) -> Snapshot:
        if index <= self._snap_meta.index:
            raise ValueError(f"snapshot index {index} is not above the current one {self._snap_meta.index}")
        if index > self.last_index():
            raise Unavailable(f"snapshot index {index} is past last index {self.last_index()}")
        meta = SnapshotMeta(index, self.term(index), conf_state)
        self._write_snapshot(meta, data)
        # On restart the snapshot index becomes the applied index, which must not exceed the commit.
        self._state.write_if_commit_dirty()
        return Snapshot(meta, data)

    def compact(self, index: int) -> None:
        if index > self._snap_meta.index:
            raise ValueError(f"compact({index}) is past the durable snapshot at {self._snap_meta.index}")
        if index <= self._prev[0]:
            return
        self._prev = (index, self.term(index))
        removed = False
        while len(self._segments) > 1 and self._segments[1].first_index <= index + 1:
            seg = self._segments.pop(0)
            self._firsts.pop(0)
            self._dirty_fds.discard(seg.fd)
            os.close(seg.fd)
            seg.path.unlink()
            removed = True
        if removed:
            fsync_dir(self.dir)

    def close(self) -> None:
        if self._closed:
            return
        try:
            self.sync()
            self._state.write_if_commit_dirty()
        finally:
            # Released even when the final sync fails (a full disk): the group is re-opened from disk.
            self._closed = True
            for seg in self._segments:
                os.close(seg.fd)
