"""One log segment: the .log file of whole record batches plus its offset and time indexes.

Files are named by the segment's base offset, 20-digit zero-padded (00000000000000000000.log/.index/
.timeindex), like Kafka. Single-threaded: the owning PartitionLog serialises all calls.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from streamraft_broker.records.batch import (
    BATCH_HEADER_SIZE,
    LOG_OVERHEAD,
    MAGIC_OFFSET,
    BatchHeader,
    parse_header,
    validate_batch,
)
from streamraft_broker.records.errors import InvalidRecordError

from .fileio import pread_exact, pwrite_all
from .offset_index import OffsetIndex
from .time_index import TimeIndex

LOG_SUFFIX = ".log"
INDEX_SUFFIX = ".index"
TIME_INDEX_SUFFIX = ".timeindex"
# Scans read the file in chunks this big so header walks and CRC checks cost few syscalls.
SCAN_CHUNK = 4 * 1024 * 1024

logger = logging.getLogger(__name__)


def segment_name(base_offset: int) -> str:
    return f"{base_offset:020d}"


@dataclass(frozen=True, slots=True)
class FileSlice:
    """A byte range of a segment file holding whole batches, for loop.sendfile(transport, s.file,
    s.position, s.size). The file object is shared: use it with explicit offsets only (sendfile, os.pread
    via read()), never seek+read from concurrent tasks. It stays open until the log deletes the segment and
    a later retention pass or close() runs, so send it promptly."""

    path: Path
    file: io.FileIO
    position: int
    size: int

    def fileno(self) -> int:
        return self.file.fileno()

    def read(self) -> bytes:
        data = pread_exact(self.file.fileno(), self.size, self.position)
        if len(data) != self.size:
            raise OSError(f"{self.path}: short read of {len(data)}/{self.size} bytes at {self.position}")
        return data


class TornBatchError(Exception):
    """Where a scan found bytes that are not a valid next batch."""

    def __init__(self, position: int, reason: str) -> None:
        super().__init__(f"position {position}: {reason}")
        self.position = position
        self.reason = reason


class Segment:
    def __init__(
        self, directory: Path, base_offset: int, *, created_ms: int, index_interval_bytes: int
    ) -> None:
        assert base_offset >= 0, base_offset
        self.directory = directory
        self.base_offset = base_offset
        stem = segment_name(base_offset)
        self.path = directory / (stem + LOG_SUFFIX)
        # One descriptor serves appends (pwrite) and reads (pread/sendfile with explicit offsets).
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        self.reader = io.FileIO(self._fd, "r+", closefd=True)
        self.size = os.fstat(self._fd).st_size
        self.offset_index = OffsetIndex(directory / (stem + INDEX_SUFFIX), base_offset)
        self.time_index = TimeIndex(directory / (stem + TIME_INDEX_SUFFIX), base_offset)
        # Filled in by recovery / appends: the offset after the last batch (None until known), the largest
        # batch max timestamp, and how many bytes were appended since the last offset-index entry.
        self.next_offset: int | None = base_offset if self.size == 0 else None
        self.max_timestamp = -1
        self.offset_of_max_timestamp = base_offset
        self.bytes_since_index = 0
        self.created_ms = created_ms
        self.closed = False
        self.index_interval_bytes = index_interval_bytes
        self.last_batch_size = 0

    # ---- reading -------------------------------------------------------------------------------------
    def read_header(self, position: int) -> BatchHeader | None:
        """Header of the batch at ``position`` (sizes checked, no CRC); None at end of data."""
        if position >= self.size:
            return None
        raw = pread_exact(self._fd, BATCH_HEADER_SIZE, position)
        header = parse_header(raw, 0)
        if header.magic != 2 or header.size < BATCH_HEADER_SIZE or position + header.size > self.size:
            raise TornBatchError(position, f"bad batch header {header}")
        return header

    def iter_headers(self, start: int, end: int | None = None) -> Iterator[tuple[int, BatchHeader]]:
        """Walk batch headers from ``start`` (a batch boundary) with one pread per batch."""
        pos = start
        stop = self.size if end is None else min(end, self.size)
        while pos < stop:
            header = self.read_header(pos)
            assert header is not None
            yield pos, header
            pos += header.size

    def scan(self, start: int, *, verify: bool) -> Iterator[tuple[int, BatchHeader]]:
        """Chunked walk from ``start`` to the end of file; with ``verify`` every batch's CRC and sanity is
        checked. Raises TornBatchError at the first position that does not hold a complete valid batch."""
        pos = start
        while pos < self.size:
            # Never less than a header, so every pass makes progress whatever the chunk setting.
            chunk = pread_exact(self._fd, min(max(SCAN_CHUNK, BATCH_HEADER_SIZE), self.size - pos), pos)
            view = memoryview(chunk)
            at = 0
            while at < len(view):
                if len(view) - at < BATCH_HEADER_SIZE:
                    if pos + at + BATCH_HEADER_SIZE > self.size:
                        raise TornBatchError(pos + at, "file ends inside a batch header")
                    break
                size = int.from_bytes(view[at + 8 : at + 12], "big", signed=True) + LOG_OVERHEAD
                if view[at + MAGIC_OFFSET] != 2 or size < BATCH_HEADER_SIZE:
                    raise TornBatchError(pos + at, f"invalid magic {view[at + MAGIC_OFFSET]} or size {size}")
                if pos + at + size > self.size:
                    raise TornBatchError(pos + at, f"batch of {size} bytes runs past the end of file")
                if at + size > len(view):
                    if at == 0:  # one batch larger than the chunk: read it whole
                        view = memoryview(pread_exact(self._fd, size, pos))
                    else:
                        break
                try:
                    header = validate_batch(view, at) if verify else parse_header(view, at)
                except InvalidRecordError as exc:
                    raise TornBatchError(pos + at, str(exc)) from None
                yield pos + at, header
                at += size
            pos += at

    def find_batch(self, offset: int) -> tuple[int, BatchHeader] | None:
        """Position and header of the first batch whose last offset is >= ``offset`` (None if none)."""
        _, start = self.offset_index.lookup(offset)
        try:
            header = self.read_header(start) if start else None
        except TornBatchError:
            header = None
        if start and (header is None or header.base_offset > offset):
            # The index pointed at something that is not a batch below the target: rebuild it once.
            logger.warning(
                "event=index_mismatch file=%s position=%d offset=%d", self.offset_index.path, start, offset
            )
            self.rebuild_indexes()
            _, start = self.offset_index.lookup(offset)
        for pos, header in self.iter_headers(start):
            if header.last_offset >= offset:
                return pos, header
        return None

    def slice(self, position: int, size: int) -> FileSlice:
        return FileSlice(self.path, self.reader, position, size)

    # ---- writing -------------------------------------------------------------------------------------
    def append(self, data: bytes | bytearray | memoryview, batches: list[tuple[int, BatchHeader]]) -> None:
        """Write ``data`` (whole batches; ``batches`` gives their positions inside ``data`` and their final
        headers) at the end of the segment and index it."""
        base_pos = self.size
        try:
            pwrite_all(self._fd, data, base_pos)
        except OSError:
            # e.g. ENOSPC part-way: cut the partial bytes so the file still ends on a batch boundary.
            try:
                os.ftruncate(self._fd, base_pos)
            except OSError:
                logger.exception("event=partial_write_not_truncated file=%s position=%d", self.path, base_pos)
            raise
        self.size += len(data)
        self._index_batches(base_pos, batches)

    def _index_batches(self, base_pos: int, batches: list[tuple[int, BatchHeader]]) -> None:
        entries: list[tuple[int, int]] = []
        time_entries: list[tuple[int, int]] = []
        for rel_pos, header in batches:
            if header.max_timestamp > self.max_timestamp:
                self.max_timestamp = header.max_timestamp
                self.offset_of_max_timestamp = header.last_offset
            if self.bytes_since_index >= self.index_interval_bytes:
                entries.append((header.base_offset, base_pos + rel_pos))
                # Same cadence as the offset index: the time entry carries the max so far, which includes
                # this batch, so scans for a timestamp can start at this entry's batch.
                time_entries.append((self.max_timestamp, header.base_offset))
                self.bytes_since_index = 0
            self.bytes_since_index += header.size
            self.next_offset = header.next_offset
        # The batches are in the log by now; index entries are only a cache of them, so a failed index write
        # leaves a sparser index (lookups walk further) rather than failing the append.
        try:
            self.offset_index.append(entries)
            for timestamp, offset in time_entries:
                self.time_index.maybe_append(timestamp, offset)
        except OSError as exc:
            logger.warning("event=index_write_failed segment=%s error=%s", self.path, exc)

    def roll_close(self) -> None:
        """On roll: make the time index's last entry the segment's max so its max timestamp survives
        restarts, then fsync everything."""
        if self.max_timestamp >= 0:
            self.time_index.maybe_append(self.max_timestamp, self.offset_of_max_timestamp)
        self.flush()
        self.release_indexes()

    def release_indexes(self) -> None:
        self.offset_index.release()
        self.time_index.release()

    def activate_indexes(self) -> None:
        self.offset_index.activate()
        self.time_index.activate()

    def truncate(self, position: int) -> None:
        """Cut the log at ``position`` (a batch boundary) and drop index entries past it."""
        assert 0 <= position <= self.size, (position, self.size)
        os.ftruncate(self._fd, position)
        self.size = position
        self.offset_index.truncate_to_position(position)
        last = self.offset_index.last_entry()
        self.next_offset = None
        self.bytes_since_index = 0
        # Recompute the tail state from the last index entry (or the start): a short header walk.
        self.max_timestamp = -1
        self.offset_of_max_timestamp = self.base_offset
        self.time_index.truncate_to_offset(self.base_offset if position == 0 else self._offset_at(position))
        self.load_tail_state(last[1] if last else 0)

    def _offset_at(self, position: int) -> int:
        """Offset just past the batches before ``position``."""
        entry = self.offset_index.lookup_position(position)
        start = entry[1] if entry else 0
        next_offset = self.base_offset
        for pos, header in self.iter_headers(start, position):
            assert pos < position
            next_offset = header.next_offset
        return next_offset

    def load_tail_state(self, walk_from: int, end: int | None = None) -> None:
        """Set next_offset, max_timestamp and bytes_since_index by walking headers from ``walk_from`` (the
        last offset-index entry or 0) to ``end``; the max timestamp before it comes from the time index."""
        last_time = self.time_index.last_entry()
        if last_time is not None:
            self.max_timestamp, self.offset_of_max_timestamp = last_time
        next_offset = self.base_offset if walk_from == 0 else None
        since = 0
        self.last_batch_size = 0
        for _pos, header in self.iter_headers(walk_from, end):
            if header.max_timestamp > self.max_timestamp:
                self.max_timestamp = header.max_timestamp
                self.offset_of_max_timestamp = header.last_offset
            since += header.size
            self.last_batch_size = header.size
            next_offset = header.next_offset
        # The batch at the index entry itself was counted after the entry was written, as in append().
        self.bytes_since_index = since
        if next_offset is None:
            raise TornBatchError(walk_from, "index entry points past the last batch")
        self.next_offset = next_offset

    def recover(self, trusted_pos: int, expected_next: int) -> tuple[int, TornBatchError | None]:
        """Trust bytes before ``trusted_pos`` (expected to end at offset ``expected_next``), CRC-check every
        batch after it, cut the file at the first bad one and index what was checked. Returns (bytes
        scanned, the error that caused a cut or None)."""
        self.offset_index.drop_partial_entry()
        self.time_index.drop_partial_entry()
        if trusted_pos > 0:
            try:
                self.offset_index.truncate_to_position(trusted_pos)
                self.time_index.truncate_to_offset(expected_next)
                last = self.offset_index.last_entry()
                self.load_tail_state(last[1] if last else 0, trusted_pos)
                if self.next_offset != expected_next:
                    raise TornBatchError(trusted_pos, f"trusted prefix ends at offset {self.next_offset}")
            except TornBatchError as exc:
                logger.warning("event=recovery_point_mismatch segment=%s problem=%s", self.path, exc)
                trusted_pos, expected_next = 0, self.base_offset
        if trusted_pos == 0:
            self.offset_index.reset()
            self.time_index.reset()
            self.max_timestamp = -1
            self.offset_of_max_timestamp = self.base_offset
            self.bytes_since_index = 0
            self.next_offset = self.base_offset
        batches: list[tuple[int, BatchHeader]] = []
        next_offset = expected_next
        end = trusted_pos
        error: TornBatchError | None = None
        try:
            for pos, header in self.scan(trusted_pos, verify=True):
                if header.base_offset < next_offset:
                    raise TornBatchError(
                        pos, f"base offset {header.base_offset} is below the expected {next_offset}"
                    )
                batches.append((pos, header))
                next_offset = header.next_offset
                end = pos + header.size
        except TornBatchError as exc:
            error = exc
            os.ftruncate(self._fd, exc.position)
            self.size = exc.position
        self._index_batches(0, batches)
        self.next_offset = next_offset
        return end - trusted_pos, error

    def rebuild_indexes(self, upto: int | None = None, *, expected: bool = False) -> None:
        """Rebuild both indexes from the batches (headers only) up to ``upto`` bytes (default: all);
        ``expected``: a routine rebuild (a compacted segment), logged at debug level, not as a problem."""
        logger.log(
            logging.DEBUG if expected else logging.WARNING, "event=index_rebuild segment=%s", self.path
        )
        self.offset_index.reset()
        self.time_index.reset()
        self.max_timestamp = -1
        self.offset_of_max_timestamp = self.base_offset
        self.bytes_since_index = 0
        self.next_offset = self.base_offset
        end = self.size if upto is None else upto
        batches = [(pos, h) for pos, h in self.iter_headers(0, end)]
        self._index_batches(0, batches)

    def flush(self) -> None:
        os.fdatasync(self._fd)
        self.offset_index.flush()
        self.time_index.flush()

    def flush_log(self) -> None:
        os.fdatasync(self._fd)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.offset_index.close()
        self.time_index.close()

    def close_reader(self) -> None:
        """Release the descriptor; separate from close() so handed-out FileSlices outlive deletion."""
        self.reader.close()

    def delete_files(self) -> None:
        self.close()
        for path in (self.path, self.offset_index.path, self.time_index.path):
            path.unlink(missing_ok=True)
