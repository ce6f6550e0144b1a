"""PartitionLog: the segmented, append-only log of one partition.

Not thread-safe: the broker calls it from one event loop (or under its own lock).

Produce path: every batch of a request's records field is validated at the header level (size, magic, CRC,
counts, max.message.bytes), the caller may veto via ``before_write``, then the bytes are copied once into a
bytearray whose headers get their offsets/epoch (and LogAppendTime) rewritten, and written with one pwrite.
Records are never decoded. Fetch returns FileSlices of whole batches for sendfile.

Durability: fsync per FlushPolicy. A recovery-point checkpoint (offset, segment, byte position) is written
on roll, on flush(), on close() and after ``recovery_checkpoint_bytes`` of appends, so a restart CRC-checks
only the unflushed tail (see recovery.py).

Compaction (cleanup.policy=compact): compact() rewrites closed segments keeping the newest record per key,
with offsets preserved (compaction.py describes the .cleaned/.swap protocol and what is not done yet).
"""

from __future__ import annotations

import bisect
import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from streamraft_broker.records.batch import (
    BatchHeader,
    TimestampType,
    assign_for_append,
    validate_batch,
    validate_produce_batch,
)
from streamraft_broker.records.builder import decode_records
from streamraft_broker.records.errors import InvalidRecordError, KafkaErrorCode

from .checkpoint import RecoveryPoint, write_log_start, write_recovery_point
from .compaction import CompactionStats, latest_offsets, swap_in, write_cleaned
from .config import FlushMode, LogConfig
from .epochs import LeaderEpochCache
from .recovery import recover
from .segment import FileSlice, Segment

logger = logging.getLogger(__name__)

OFFSET_OUT_OF_RANGE = 1
# Offsets inside a segment are stored relative to its base as int32-range values, as in Kafka.
MAX_RELATIVE_OFFSET = (1 << 31) - 1


class OffsetOutOfRangeError(ValueError):
    """Fetch/delete at an offset outside [log_start_offset, log_end_offset] (Kafka OFFSET_OUT_OF_RANGE)."""

    error_code = OFFSET_OUT_OF_RANGE


class LogClosedError(RuntimeError):
    pass


KAFKA_STORAGE_ERROR = 56


class LogStorageError(OSError):
    """Writing or syncing the log failed (disk full, I/O error); Kafka answers KAFKA_STORAGE_ERROR. Nothing
    of the failed append is readable, and the log stays usable once the disk recovers."""

    error_code = KAFKA_STORAGE_ERROR


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class AppendInfo:
    base_offset: int
    last_offset: int
    max_timestamp: int
    log_append_time: int  # -1 with CreateTime
    log_start_offset: int
    batch_count: int
    records_count: int
    bytes: int


class PartitionLog:
    def __init__(
        self,
        directory: Path,
        config: LogConfig,
        now_ms: Callable[[], int],
        segments: list[Segment],
        log_start_offset: int,
    ) -> None:
        assert segments, "a log always has an active segment"
        self.directory = directory
        self._config = config
        self._now_ms = now_ms
        self._segments = segments
        self._bases = [s.base_offset for s in segments]
        self.log_start_offset = log_start_offset
        self._size = sum(s.size for s in segments)
        self._bytes_since_checkpoint = 0
        self._last_flush_ms = now_ms()
        # Deleted segments whose files may still be referenced by FileSlices handed out for sendfile; their
        # readers are closed one retention pass later (or at close()).
        self._graveyard: list[Segment] = []
        # Segments the log cleaner replaced, with when: their readers close after a delay (release_swapped)
        # rather than at the next retention pass, so frequent cleaning does not pile up descriptors.
        self._swapped: list[tuple[int, Segment]] = []
        self._closed = False
        self._epochs = LeaderEpochCache(directory, [])
        self.recovery_scanned_bytes = 0
        self.recovery_truncations = 0

    # ---- lifecycle -----------------------------------------------------------------------------------
    @classmethod
    def open(
        cls, directory: Path, config: LogConfig, *, now_ms: Callable[[], int] = wall_clock_ms
    ) -> PartitionLog:
        """Open (creating if needed) and recover the partition directory."""
        directory = Path(directory)
        recovered = recover(directory, now_ms=now_ms(), index_interval_bytes=config.index_interval_bytes)
        log = cls(directory, config, now_ms, recovered.segments, recovered.log_start_offset)
        log.recovery_scanned_bytes = recovered.scanned_bytes
        log.recovery_truncations = recovered.truncations
        log._load_epochs(recovered.tail_offset)
        if recovered.checkpointed_log_start != log.log_start_offset:
            write_log_start(directory, log.log_start_offset)
        active = log._active
        if recovered.checkpointed_point != RecoveryPoint(log.log_end_offset, active.base_offset, active.size):
            log._checkpoint()
        return log

    def _load_epochs(self, tail_offset: int) -> None:
        """Load the leader-epoch cache, then add epochs from batches recovery found past the checkpoint."""
        cache = LeaderEpochCache.load(self.directory)
        if cache is None:
            cache = LeaderEpochCache(self.directory, [])
            if self.log_end_offset > self.log_start_offset:
                logger.warning("event=epoch_cache_rebuild directory=%s", self.directory)
            tail_offset = self.log_start_offset
        self._epochs = cache
        cache.truncate_from_end(self.log_end_offset)
        changed = False
        for header in self.iter_batch_headers(tail_offset):
            changed |= cache.assign(header.partition_leader_epoch, header.base_offset, persist=False)
        if changed or not cache.path.exists():
            cache.persist()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._checkpoint()
        finally:
            # Descriptors are released even when the final fsync fails (the next open recovers the tail).
            for segment in self._segments:
                segment.close()
                segment.close_reader()
            for segment in self._graveyard:
                segment.close_reader()
            self._graveyard.clear()

    def abandon(self) -> None:
        """Release the descriptors without writing anything (no checkpoint, no fsync): after a failed write
        or fsync the in-memory view is not trusted; the directory is opened again and recovered instead."""
        if self._closed:
            return
        self._closed = True
        for segment in [*self._segments, *self._graveyard]:
            with contextlib.suppress(OSError):
                segment.close()
            with contextlib.suppress(OSError):
                segment.close_reader()
        self._graveyard.clear()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def config(self) -> LogConfig:
        return self._config

    def update_config(self, config: LogConfig) -> None:
        """Apply changed topic configs (AlterConfigs); takes effect from the next append/roll/retention."""
        self._config = config
        for segment in self._segments:
            segment.index_interval_bytes = config.index_interval_bytes

    # ---- state ---------------------------------------------------------------------------------------
    @property
    def _active(self) -> Segment:
        return self._segments[-1]

    @property
    def log_end_offset(self) -> int:
        """The next offset to be assigned."""
        next_offset = self._active.next_offset
        assert next_offset is not None
        return next_offset

    @property
    def size_bytes(self) -> int:
        return self._size

    @property
    def segment_count(self) -> int:
        return len(self._segments)

    @property
    def segment_base_offsets(self) -> list[int]:
        return list(self._bases)

    def _check_open(self) -> None:
        if self._closed:
            raise LogClosedError(f"partition log {self.directory} is closed")

    # ---- append --------------------------------------------------------------------------------------
    def append(
        self,
        records: bytes | bytearray | memoryview,
        *,
        leader_epoch: int = 0,
        before_write: Callable[[list[BatchHeader]], None] | None = None,
    ) -> AppendInfo:
        """Validate and append a produce request's records (one or more v2 batches), assigning offsets."""
        self._check_open()
        view = records if isinstance(records, memoryview) else memoryview(records)
        if view.format != "B" or view.ndim != 1:
            view = view.cast("B")
        total = len(view)
        if total == 0:
            raise InvalidRecordError(
                KafkaErrorCode.CORRUPT_MESSAGE, "the records field holds no record batch"
            )
        positions: list[int] = []
        headers: list[BatchHeader] = []
        offsets_needed = 0
        pos = 0
        max_bytes = self._config.max_message_bytes
        while pos < total:
            header = validate_produce_batch(view, pos, max_batch_bytes=max_bytes)
            positions.append(pos)
            headers.append(header)
            offsets_needed += header.last_offset_delta + 1
            pos += header.size
        if before_write is not None:
            before_write(headers)
        now = self._now_ms()
        self._maybe_roll(total, offsets_needed, now)
        buf = bytearray(view)
        out = memoryview(buf)
        append_time = now if self._config.log_append_time else None
        base_offset = next_offset = self.log_end_offset
        final: list[tuple[int, BatchHeader]] = []
        max_timestamp = -1
        records_count = 0
        for pos, header in zip(positions, headers, strict=True):
            written = assign_for_append(
                out, pos, header, next_offset, leader_epoch=leader_epoch, log_append_time=append_time
            )
            final.append((pos, written))
            next_offset = written.next_offset
            max_timestamp = max(max_timestamp, written.max_timestamp)
            records_count += written.records_count
        try:
            self._active.append(out, final)
        except OSError as exc:
            raise LogStorageError(exc.errno, f"append to {self._active.path} failed: {exc.strerror}") from exc
        finally:
            out.release()
        self._epochs.assign(leader_epoch, base_offset)
        self._size += total
        self._bytes_since_checkpoint += total
        self._after_append(now)
        return AppendInfo(
            base_offset=base_offset,
            last_offset=next_offset - 1,
            max_timestamp=max_timestamp,
            log_append_time=-1 if append_time is None else append_time,
            log_start_offset=self.log_start_offset,
            batch_count=len(final),
            records_count=records_count,
            bytes=total,
        )

    def append_replicated(self, records: bytes | bytearray | memoryview) -> AppendInfo:
        """Append batches that already carry their offsets and leader epochs (a Raft follower copying the
        leader's log, or batches the broker built itself), stored byte for byte after a full validation
        (CRC included). Offsets must start at or after log_end_offset and increase."""
        self._check_open()
        view = records if isinstance(records, memoryview) else memoryview(records)
        if view.format != "B" or view.ndim != 1:
            view = view.cast("B")
        total = len(view)
        if total == 0:
            raise InvalidRecordError(KafkaErrorCode.CORRUPT_MESSAGE, "no record batch to append")
        batches: list[tuple[int, BatchHeader]] = []
        expected = self.log_end_offset
        pos = 0
        while pos < total:
            header = validate_batch(view, pos)
            if header.base_offset < expected:
                raise InvalidRecordError(
                    KafkaErrorCode.INVALID_RECORD,
                    f"batch at position {pos} has base offset {header.base_offset}, "
                    f"below the next offset {expected}",
                )
            batches.append((pos, header))
            expected = header.next_offset
            pos += header.size
        now = self._now_ms()
        self._maybe_roll(total, expected - self.log_end_offset, now)
        try:
            self._active.append(view, batches)
        except OSError as exc:
            raise LogStorageError(exc.errno, f"append to {self._active.path} failed: {exc.strerror}") from exc
        for _, header in batches:
            self._epochs.assign(header.partition_leader_epoch, header.base_offset)
        self._size += total
        self._bytes_since_checkpoint += total
        self._after_append(now)
        return AppendInfo(
            base_offset=batches[0][1].base_offset,
            last_offset=expected - 1,
            max_timestamp=max(h.max_timestamp for _, h in batches),
            log_append_time=-1,
            log_start_offset=self.log_start_offset,
            batch_count=len(batches),
            records_count=sum(h.records_count for _, h in batches),
            bytes=total,
        )

    def append_raft(self, data: bytes | bytearray | memoryview, header: BatchHeader) -> None:
        """Append one batch whose header the caller has already parsed and whose base offset it has set to
        ``log_end_offset`` (the Raft storage over this log: it assigns offsets as entries reach the log)."""
        self._check_open()
        if header.base_offset != self.log_end_offset:
            raise ValueError(
                f"batch base offset {header.base_offset} is not the log end offset {self.log_end_offset}"
            )
        now = self._now_ms()
        self._maybe_roll(header.size, header.last_offset_delta + 1, now)
        try:
            self._active.append(data, [(0, header)])
        except OSError as exc:
            raise LogStorageError(exc.errno, f"append to {self._active.path} failed: {exc.strerror}") from exc
        self._epochs.assign(header.partition_leader_epoch, header.base_offset)
        self._size += header.size
        self._bytes_since_checkpoint += header.size
        self._after_append(now)

    def sync_active(self) -> None:
        """fsync the active segment's data (not its indexes, which recovery rebuilds from the data)."""
        self._active.flush_log()

    def _after_append(self, now: int) -> None:
        flush = self._config.flush
        if flush.mode is FlushMode.EVERY_BATCH or (
            flush.mode is FlushMode.INTERVAL and now - self._last_flush_ms >= flush.interval_ms
        ):
            try:
                self._active.flush_log()
            except OSError as exc:
                # The batch is written but not durable: the caller must not acknowledge it as such.
                raise LogStorageError(
                    exc.errno, f"fsync of {self._active.path} failed: {exc.strerror}"
                ) from exc
            self._last_flush_ms = now
        if self._bytes_since_checkpoint >= self._config.recovery_checkpoint_bytes:
            try:
                self._checkpoint()
            except OSError as exc:
                # Only bounds recovery time; retried after the next append.
                logger.warning("event=checkpoint_failed directory=%s error=%s", self.directory, exc)

    def _maybe_roll(self, incoming_bytes: int, incoming_offsets: int, now: int) -> None:
        active = self._active
        if active.size == 0:
            return
        if (
            active.size + incoming_bytes > self._config.segment_bytes
            or now - active.created_ms >= self._config.segment_ms
            or self.log_end_offset + incoming_offsets - active.base_offset > MAX_RELATIVE_OFFSET
        ):
            self.roll(now)

    def roll(self, now: int | None = None) -> None:
        """Close the active segment (fsynced, final time-index entry); start a new one at the end offset."""
        self._check_open()
        if self._active.size == 0:
            return
        self._active.roll_close()
        segment = Segment(
            self.directory,
            self.log_end_offset,
            created_ms=self._now_ms() if now is None else now,
            index_interval_bytes=self._config.index_interval_bytes,
        )
        self._segments.append(segment)
        self._bases.append(segment.base_offset)
        self._write_recovery_point()

    # ---- durability ----------------------------------------------------------------------------------
    def flush(self) -> None:
        """fsync the active segment and its indexes and advance the recovery-point checkpoint."""
        self._check_open()
        self._checkpoint()

    def _checkpoint(self) -> None:
        self._active.flush()
        self._last_flush_ms = self._now_ms()
        self._write_recovery_point()

    def _write_recovery_point(self) -> None:
        active = self._active
        write_recovery_point(
            self.directory, RecoveryPoint(self.log_end_offset, active.base_offset, active.size)
        )
        self._bytes_since_checkpoint = 0

    # ---- read ----------------------------------------------------------------------------------------
    def _segment_index(self, offset: int) -> int:
        return max(bisect.bisect_right(self._bases, offset) - 1, 0)

    def read(
        self, offset: int, max_bytes: int, *, max_offset: int | None = None, min_one_message: bool = True
    ) -> list[FileSlice]:
        """Whole batches starting with the one containing ``offset``, up to ``max_bytes`` (the first batch
        even if larger when ``min_one_message``), only batches entirely below ``max_offset`` (the high
        watermark) if given. Raises OffsetOutOfRangeError outside [log_start_offset, log_end_offset]."""
        self._check_open()
        end = self.log_end_offset
        if offset < self.log_start_offset or offset > end:
            raise OffsetOutOfRangeError(
                f"offset {offset} is outside the log range [{self.log_start_offset}, {end}]"
            )
        limit = end if max_offset is None else min(max_offset, end)
        slices: list[FileSlice] = []
        remaining = max_bytes
        i = self._segment_index(offset)
        while offset < limit and i < len(self._segments):
            segment = self._segments[i]
            found = segment.find_batch(offset)
            if found is None:
                i += 1
                continue
            start, first = found
            if first.next_offset > limit:
                break
            taken = 0
            if first.size > remaining:
                if slices or not min_one_message:
                    break
                taken = first.size
                offset = first.next_offset
            else:
                taken, offset = self._extend(segment, start, first, remaining, limit)
            slices.append(segment.slice(start, taken))
            remaining -= taken
            if start + taken < segment.size or remaining <= 0:
                break
            i += 1
        return slices

    def _extend(
        self, segment: Segment, start: int, first: BatchHeader, budget: int, limit: int
    ) -> tuple[int, int]:
        """Bytes of whole batches from ``start`` fitting in ``budget`` and below ``limit``; returns (bytes,
        next offset). Uses the offset index to skip most of the header walk."""
        pos = start + first.size
        next_offset = first.next_offset
        entry = segment.offset_index.lookup_position(start + budget)
        if entry is not None and entry[1] > pos and entry[0] <= limit:
            pos, next_offset = entry[1], entry[0]
        for at, header in segment.iter_headers(pos):
            if at + header.size - start > budget or header.next_offset > limit:
                break
            pos = at + header.size
            next_offset = header.next_offset
        return pos - start, next_offset

    def read_bytes(
        self, offset: int, max_bytes: int, *, max_offset: int | None = None, min_one_message: bool = True
    ) -> bytes:
        """read() copied into memory (for TLS, tests and internal consumers)."""
        return b"".join(
            s.read()
            for s in self.read(offset, max_bytes, max_offset=max_offset, min_one_message=min_one_message)
        )

    def iter_batch_headers(self, from_offset: int) -> Iterator[BatchHeader]:
        """Headers of every batch whose last offset is >= ``from_offset``, in order."""
        self._check_open()
        from_offset = max(from_offset, self.log_start_offset)
        for i in range(self._segment_index(from_offset), len(self._segments)):
            segment = self._segments[i]
            found = segment.find_batch(from_offset)
            if found is None:
                continue
            for _pos, header in segment.iter_headers(found[0]):
                yield header

    def offset_for_timestamp(self, ts: int) -> tuple[int, int] | None:
        """(offset, timestamp) of the first record at or after log start with timestamp >= ``ts``, found via
        the first batch whose max timestamp is >= ``ts``; None if there is none (ListOffsets)."""
        self._check_open()
        start = self.log_start_offset
        for segment in self._segments[self._segment_index(start) :]:
            if segment.max_timestamp < ts:
                continue
            indexed = segment.time_index.lookup(ts)
            from_offset = max(segment.base_offset if indexed is None else indexed, start)
            found = segment.find_batch(from_offset)
            if found is None:
                continue
            for pos, header in segment.iter_headers(found[0]):
                if header.max_timestamp >= ts and header.next_offset > start:
                    hit = self._first_record_at(segment, pos, header, ts)
                    if hit is not None:
                        return hit
        return None

    def max_timestamp(self) -> tuple[int, int] | None:
        """(offset, timestamp) of the first record carrying the largest timestamp in the log (ListOffsets
        MAX_TIMESTAMP); found from the per-segment maxima, so no full scan."""
        self._check_open()
        start = self.log_start_offset
        candidates = [s.max_timestamp for s in self._segments[self._segment_index(start) :]]
        if not candidates or max(candidates) < 0:
            return None
        return self.offset_for_timestamp(max(candidates))

    # ---- leader epochs (Raft terms) -------------------------------------------------------------------
    @property
    def latest_epoch(self) -> int | None:
        return self._epochs.latest_epoch

    def epoch_entries(self) -> list[tuple[int, int]]:
        """(epoch, start offset) for every epoch in the log, oldest first."""
        return self._epochs.entries()

    def end_offset_for_epoch(self, epoch: int) -> tuple[int, int]:
        """OffsetForLeaderEpoch: (largest epoch <= ``epoch``, its end offset); (-1, -1) when unknown."""
        self._check_open()
        return self._epochs.end_offset_for(epoch, self.log_end_offset)

    def batch_header_at(self, offset: int) -> BatchHeader | None:
        """Header of the batch holding ``offset`` (None outside [log start, log end))."""
        self._check_open()
        if not self.log_start_offset <= offset < self.log_end_offset:
            return None
        for header in self.iter_batch_headers(offset):
            return header if header.base_offset <= offset else None
        return None

    def last_batch_header(self) -> BatchHeader | None:
        """Header of the last batch in the log (for the term of the last Raft entry)."""
        self._check_open()
        end = self.log_end_offset
        return self.batch_header_at(end - 1) if end > self.log_start_offset else None

    def _first_record_at(
        self, segment: Segment, pos: int, header: BatchHeader, ts: int
    ) -> tuple[int, int] | None:
        """The first record at or after log start with timestamp >= ``ts`` in this batch; None when there is
        none (compaction can drop the record that set the batch's max timestamp)."""
        start = self.log_start_offset
        if header.timestamp_type is TimestampType.LOG_APPEND_TIME:
            return max(header.base_offset, start), header.max_timestamp
        try:
            records = decode_records(segment.slice(pos, header.size).read())
        except InvalidRecordError as exc:
            logger.warning(
                "event=timestamp_lookup_undecodable file=%s position=%d error=%s", segment.path, pos, exc
            )
            return max(header.base_offset, start), header.max_timestamp
        for record in records:
            offset = header.base_offset + record.offset_delta
            timestamp = header.base_timestamp + record.timestamp_delta
            if offset >= start and timestamp >= ts:
                return offset, timestamp
        return None

    # ---- truncation and retention --------------------------------------------------------------------
    def truncate_to(self, offset: int) -> None:
        """Remove every batch that holds an offset >= ``offset`` (a batch containing ``offset`` goes whole).
        The new end offset is the end of the last surviving batch (that batch's base without compaction
        gaps), or the first segment's base when none survives. Below the log start, the log restarts empty
        at ``offset``. For Raft conflict truncation."""
        self._check_open()
        if offset >= self.log_end_offset:
            return
        if offset < self.log_start_offset:
            self._truncate_fully(offset)
            return
        i = self._segment_index(offset)
        segment = self._segments[i]
        # Lower the checkpoint first: a crash mid-truncation then rescans from this segment's start.
        write_recovery_point(self.directory, RecoveryPoint(segment.base_offset, segment.base_offset, 0))
        for doomed in self._segments[i + 1 :]:
            self._retire(doomed)
        del self._segments[i + 1 :]
        del self._bases[i + 1 :]
        found = segment.find_batch(offset)
        if found is not None:
            self._size -= segment.size - found[0]
            segment.truncate(found[0])
        while self._active.size == 0 and len(self._segments) > 1:
            # An emptied segment's base may lie above ``offset`` (and compaction can leave empty segments
            # before it): the last segment still holding batches becomes the active one.
            self._retire(self._active)
            self._segments.pop()
            self._bases.pop()
        self._active.activate_indexes()
        self._epochs.truncate_from_end(self.log_end_offset)
        if self.log_end_offset < self.log_start_offset:
            # The batch holding the log start went: the readable range is empty and starts at the new end.
            self.log_start_offset = self.log_end_offset
            write_log_start(self.directory, self.log_start_offset)
        self._checkpoint()

    def reset_to(self, new_start: int) -> None:
        """Empty the log; it restarts at ``new_start`` (a Raft snapshot installed from the leader)."""
        self._check_open()
        self._truncate_fully(new_start)

    def _truncate_fully(self, new_start: int) -> None:
        write_recovery_point(self.directory, RecoveryPoint(self._bases[0], self._bases[0], 0))
        for segment in self._segments:
            self._retire(segment)
        self._segments = [
            Segment(
                self.directory,
                new_start,
                created_ms=self._now_ms(),
                index_interval_bytes=self._config.index_interval_bytes,
            )
        ]
        self._bases = [new_start]
        self._size = 0
        self._epochs.clear()
        self.log_start_offset = new_start
        write_log_start(self.directory, new_start)
        self._checkpoint()

    def _retire(self, segment: Segment) -> None:
        self._size -= segment.size
        segment.delete_files()
        self._graveyard.append(segment)

    def apply_retention(self) -> int:
        """Delete whole closed segments past retention.ms (by their max timestamp) or beyond retention.bytes
        (oldest first); never the active segment. Returns how many were deleted. As in Kafka, retention
        only applies when cleanup.policy includes delete; compacted logs keep everything compact() leaves."""
        count = self.retention_count()
        if count:
            self._delete_oldest(count, self._segments[count].base_offset)
        return count

    def retention_start(self, limit: int) -> int | None:
        """The log start retention would move to, keeping every offset >= ``limit`` (a Raft log keeps
        what is not yet committed and applied); None when nothing would go."""
        count = self.retention_count()
        while count and self._segments[count].base_offset > limit:
            count -= 1
        if not count:
            return None
        return self._segments[count].base_offset

    def retention_count(self) -> int:
        """How many of the oldest segments are past retention (retiring segments deleted earlier)."""
        self._check_open()
        for segment in self._graveyard:
            segment.close_reader()
        self._graveyard.clear()
        if not self._config.retention_enabled:
            return 0
        now = self._now_ms()
        count = 0
        size = self._size
        retention_ms = self._config.retention_ms
        retention_bytes = self._config.retention_bytes
        while count < len(self._segments) - 1:
            segment = self._segments[count]
            expired = retention_ms is not None and now - self._segment_time(segment) > retention_ms
            oversize = retention_bytes is not None and size - segment.size >= retention_bytes
            if not (expired or oversize):
                break
            size -= segment.size
            count += 1
        return count

    @staticmethod
    def _segment_time(segment: Segment) -> int:
        if segment.max_timestamp >= 0:
            return segment.max_timestamp
        return os.stat(segment.path).st_mtime_ns // 1_000_000

    def _delete_oldest(self, count: int, new_start: int) -> None:
        # Persist the new start first: a crash before the unlinks leaves files recovery deletes anyway.
        new_start = max(new_start, self.log_start_offset)
        if new_start != self.log_start_offset:
            self.log_start_offset = new_start
            write_log_start(self.directory, new_start)
        for segment in self._segments[:count]:
            logger.info("event=segment_deleted file=%s log_start_offset=%d", segment.path, new_start)
            self._retire(segment)
        del self._segments[:count]
        del self._bases[:count]

    def compact(self) -> CompactionStats:
        """Compact the closed segments at once (see compaction.py); the active segment is left alone. Used by
        the single-node __consumer_offsets store; topics are cleaned by the log cleaner (cleaner.py), which
        adds the dirty ratio, compaction lags and tombstone retention (it does not check the policy)."""
        self._check_open()
        closed = self._segments[:-1]
        if not closed:
            return CompactionStats()
        latest = latest_offsets(closed)
        horizon = self._now_ms() - self._config.delete_retention_ms
        rewritten = removed = before = after = 0
        for i, segment in enumerate(closed):
            result = write_cleaned(segment, latest, tombstone_horizon_ms=horizon)
            if result is None:
                continue
            cleaned, count, _ = result
            fresh = swap_in(segment, cleaned, index_interval_bytes=self._config.index_interval_bytes)
            self._graveyard.append(segment)
            self._segments[i] = fresh
            self._size += fresh.size - segment.size
            rewritten += 1
            removed += count
            before += segment.size
            after += fresh.size
        return CompactionStats(rewritten, before, after, removed)

    def closed_segments(self) -> list[Segment]:
        """The segments before the active one, oldest first (for the log cleaner)."""
        self._check_open()
        return self._segments[:-1]

    def all_segments(self) -> list[Segment]:
        self._check_open()
        return list(self._segments)

    def holds(self, segment: Segment) -> bool:
        """Whether ``segment`` is still one of this log's segments (retention may have removed it)."""
        return not self._closed and any(s is segment for s in self._segments)

    def replace_cleaned(self, segment: Segment, cleaned: Path) -> Segment | None:
        """Swap the log cleaner's fsynced ``cleaned`` copy in for the closed ``segment`` (compaction.py's
        swap protocol); None when ``segment`` is no longer a closed segment of this log."""
        if self._closed:
            return None
        i = next((k for k, s in enumerate(self._segments) if s is segment), None)
        if i is None or i == len(self._segments) - 1:
            return None
        fresh = swap_in(segment, cleaned, index_interval_bytes=self._config.index_interval_bytes)
        self._graveyard.append(segment)
        self._swapped.append((self._now_ms(), segment))
        self._segments[i] = fresh
        self._size += fresh.size - segment.size
        return fresh

    def release_swapped(self, delay_ms: int) -> int:
        """Close the readers of segments the cleaner replaced at least ``delay_ms`` ago (FileSlices of them
        handed out for sendfile are long sent by then); returns how many."""
        cutoff = self._now_ms() - delay_ms
        done = [seg for at, seg in self._swapped if at <= cutoff]
        if not done:
            return 0
        self._swapped = [(at, seg) for at, seg in self._swapped if at > cutoff]
        for seg in done:
            seg.close_reader()
        self._graveyard = [g for g in self._graveyard if not any(g is seg for seg in done)]
        return len(done)

    def delete_records_before(self, offset: int) -> None:
        """Move the log start to ``offset`` (DeleteRecords) and delete the segments wholly before it."""
        self._check_open()
        end = self.log_end_offset
        if offset < 0 or offset > end:
            raise OffsetOutOfRangeError(f"cannot delete records before {offset}: log end offset is {end}")
        if offset <= self.log_start_offset:
            return
        self.log_start_offset = offset
        write_log_start(self.directory, offset)
        count = 0
        while count < len(self._segments) - 1 and self._bases[count + 1] <= offset:
            count += 1
        if count:
            self._delete_oldest(count, offset)
