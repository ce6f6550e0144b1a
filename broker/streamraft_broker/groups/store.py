"""`__consumer_offsets` persistence: the coordinator's records go into one compacted PartitionLog as record
batches (records.build_batch), and a restart rebuilds committed offsets and group metadata by scanning it —
last value per key wins, a null value (tombstone) deletes the key."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

from streamraft_broker.groups.codec import (
    CodecError,
    GroupKey,
    OffsetKey,
    StoredGroup,
    decode_group_value,
    decode_key,
    decode_offset_value,
)
from streamraft_broker.groups.coordinator import GroupStoreError
from streamraft_broker.groups.model import CommittedOffset
from streamraft_broker.records import (
    InvalidRecordError,
    SimpleRecord,
    build_batch,
    decode_records,
    iter_batches,
)

log = logging.getLogger(__name__)

TOPIC = "__consumer_offsets"
# Compacted and never deleted by time: the offsets are the state, not a stream with a retention window.
TOPIC_CONFIGS = {"cleanup.policy": "compact", "retention.ms": "-1", "segment.bytes": str(100 * 1024 * 1024)}
READ_CHUNK_BYTES = 1024 * 1024


class OffsetsLog(Protocol):
    """The part of PartitionLog this store uses."""

    @property
    def log_start_offset(self) -> int: ...
    @property
    def log_end_offset(self) -> int: ...
    @property
    def segment_count(self) -> int: ...
    def append(self, records: bytes) -> object: ...
    def read_bytes(self, offset: int, max_bytes: int) -> bytes: ...
    def flush(self) -> None: ...
    def compact(self) -> object: ...


@dataclass(slots=True)
class LoadedState:
    offsets: dict[str, dict[tuple[str, int], CommittedOffset]] = field(default_factory=dict)
    groups: dict[str, StoredGroup] = field(default_factory=dict)
    records_read: int = 0
    records_skipped: int = 0


Records = Sequence[tuple[bytes, bytes | None]]
# Records of one write are split into batches of about this size, well under the log's max.message.bytes.
BATCH_BYTES = 256 * 1024
_RECORD_OVERHEAD = 32


def batch_chunks(records: list[SimpleRecord]) -> Iterator[list[SimpleRecord]]:
    chunk: list[SimpleRecord] = []
    size = 0
    for record in records:
        length = len(record.key or b"") + len(record.value or b"") + _RECORD_OVERHEAD
        if chunk and size + length > BATCH_BYTES:
            yield chunk
            chunk, size = [], 0
        chunk.append(record)
        size += length
    if chunk:
        yield chunk


class OffsetsStore:
    """Writes go through one writer thread that owns the log after start-up: requests queued while a
    write is in progress are appended together and share one fsync (group commit), and the event loop
    never waits on the disk. Writes are applied in the order they were queued."""

    def __init__(self, log: OffsetsLog, *, clock: Callable[[], int], fsync: bool = True) -> None:
        self._log = log
        self._clock = clock
        # A commit acknowledged to a client must survive a crash, whatever flush policy the log has.
        self._fsync = fsync
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="offsets-writer")
        self._queue: list[tuple[Records, asyncio.Future[None] | None]] = []
        self._drainer: asyncio.Task[None] | None = None
        self._closed = False
        self.writes = 0  # disk writes (append + fsync) done, for tests and metrics
        self.records_written = 0
        self.compactions = 0
        self._segments_at_compaction = 1

    def _write_now(self, pending: Sequence[Records]) -> None:
        """Append every queued record, in batches of at most BATCH_BYTES, and fsync once; runs on the
        writer thread."""
        records = [SimpleRecord(key, value) for recs in pending for key, value in recs]
        if not records:
            return
        try:
            for chunk in batch_chunks(records):
                self._log.append(build_batch(chunk, timestamp_ms=self._clock()))
            if self._fsync:
                self._log.flush()
        except (OSError, RuntimeError, ValueError) as exc:  # LogClosedError at shutdown, InvalidRecordError
            raise GroupStoreError(f"{TOPIC}: write of {len(records)} records failed: {exc}") from exc
        self.writes += 1
        self.records_written += len(records)
        self._maybe_compact()

    def _maybe_compact(self) -> None:
        """Compact once per segment roll: the broker's cleaner only walks registry topics, and this log
        is not one. Runs on the writer thread, which owns the log."""
        segments = self._log.segment_count
        if segments <= 1 or segments == self._segments_at_compaction:
            return
        self._segments_at_compaction = segments
        try:
            stats = self._log.compact()
        except (OSError, ValueError) as exc:
            log.error("%s: compaction failed (will retry after the next roll): %s", TOPIC, exc)
            return
        self.compactions += 1
        log.info("%s: compacted: %s", TOPIC, stats)

    async def write(self, records: Records) -> None:
        """Durably persist `records`; raises GroupStoreError if they could not be."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._enqueue(records, fut)
        await fut

    def write_nowait(self, records: Records) -> None:
        """Queue `records` behind earlier writes without waiting (failures are logged)."""
        self._enqueue(records, None)

    def _enqueue(self, records: Records, fut: asyncio.Future[None] | None) -> None:
        if self._closed:
            error = GroupStoreError(f"{TOPIC}: store is closed")
            if fut is None:
                log.error("%s", error)
                return
            fut.set_exception(error)
            return
        self._queue.append((records, fut))
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.get_running_loop().create_task(self._drain(), name="offsets-writer")

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self._queue:
            pending, self._queue = self._queue, []
            error: GroupStoreError | None = None
            try:
                await loop.run_in_executor(self._executor, self._write_now, [recs for recs, _ in pending])
            except GroupStoreError as exc:
                error = exc
                log.error("%s", exc)
            except Exception as exc:
                # Whatever went wrong, no committer may be left waiting forever.
                error = GroupStoreError(f"{TOPIC}: write failed unexpectedly: {exc!r}")
                log.exception("%s", error)
            for _, fut in pending:
                if fut is None or fut.done():
                    continue
                if error is None:
                    fut.set_result(None)
                else:
                    fut.set_exception(error)

    def close(self) -> None:
        """Finish the write in progress and any still queued, then stop the writer thread. Call on the
        loop's thread; queued writers whose coroutine has not resumed yet are answered with the outcome."""
        self._closed = True
        self._executor.shutdown(wait=True)
        pending, self._queue = self._queue, []
        if not pending:
            return
        error: GroupStoreError | None = None
        try:
            self._write_now([recs for recs, _ in pending])  # the writer thread is gone: safe here
        except GroupStoreError as exc:
            error = exc
            log.error("%s", exc)
        for _, fut in pending:
            if fut is not None and not fut.done():
                if error is None:
                    fut.set_result(None)
                else:
                    fut.set_exception(error)

    def load(self) -> LoadedState:
        state = LoadedState()
        offset = self._log.log_start_offset
        end = self._log.log_end_offset
        while offset < end:
            data = self._log.read_bytes(offset, READ_CHUNK_BYTES)
            if not data:
                break
            offset = fold_chunk(state, data, offset)
        return state


def fold_chunk(state: LoadedState, data: bytes, offset: int) -> int:
    """Fold the record batches of `data` (read from the log at `offset`) into `state`; returns the offset
    to read next. Raises AssertionError if the chunk moves nothing forward (a reader would spin)."""
    next_offset = offset
    for pos, header in iter_batches(data):
        next_offset = header.next_offset
        if header.is_control or header.next_offset <= offset:
            continue
        try:
            records = decode_records(data[pos : pos + header.size])
        except InvalidRecordError as exc:
            # The log validated this batch on append and on recovery; keep loading the rest.
            log.error("%s: skipping bad batch at offset %d: %s", TOPIC, header.base_offset, exc)
            continue
        for record in records:
            apply_record(state, record)
    if next_offset <= offset:
        raise AssertionError(f"{TOPIC}: no progress reading at offset {offset}")
    return next_offset


def apply_record(state: LoadedState, record: SimpleRecord) -> None:
    """Fold one `__consumer_offsets` record into `state`: last value per key wins, null deletes."""
    state.records_read += 1
    if record.key is None:
        state.records_skipped += 1
        return
    try:
        key = decode_key(record.key)
        if isinstance(key, OffsetKey):
            group_offsets = state.offsets.setdefault(key.group_id, {})
            if record.value is None:
                group_offsets.pop((key.topic, key.partition), None)
            else:
                group_offsets[(key.topic, key.partition)] = decode_offset_value(record.value)
        else:
            assert isinstance(key, GroupKey)
            if record.value is None:
                state.groups.pop(key.group_id, None)
                state.offsets.pop(key.group_id, None)
            else:
                state.groups[key.group_id] = decode_group_value(record.value)
    except CodecError as exc:
        state.records_skipped += 1
        log.warning("%s: skipping record with unreadable key/value: %s", TOPIC, exc)
