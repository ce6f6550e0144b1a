"""`__consumer_offsets` persistence: the coordinator's records go into one compacted PartitionLog as record
batches (records.build_batch), and a restart rebuilds committed offsets and group metadata by scanning it —
last value per key wins, a null value (tombstone) deletes the key."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
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
    def append(self, records: bytes) -> object: ...
    def read_bytes(self, offset: int, max_bytes: int) -> bytes: ...
    def flush(self) -> None: ...


@dataclass(slots=True)
class LoadedState:
    offsets: dict[str, dict[tuple[str, int], CommittedOffset]] = field(default_factory=dict)
    groups: dict[str, StoredGroup] = field(default_factory=dict)
    records_read: int = 0
    records_skipped: int = 0


class OffsetsStore:
    def __init__(self, log: OffsetsLog, *, clock: Callable[[], int], fsync: bool = True) -> None:
        self._log = log
        self._clock = clock
        # A commit acknowledged to a client must survive a crash, whatever flush policy the log has.
        self._fsync = fsync

    def write(self, records: Sequence[tuple[bytes, bytes | None]]) -> None:
        if not records:
            return
        batch = build_batch([SimpleRecord(key, value) for key, value in records], timestamp_ms=self._clock())
        try:
            self._log.append(batch)
            if self._fsync:
                self._log.flush()
        except (OSError, RuntimeError) as exc:  # RuntimeError: LogClosedError once shutting down
            raise GroupStoreError(f"{TOPIC}: write of {len(records)} records failed: {exc}") from exc

    def load(self) -> LoadedState:
        state = LoadedState()
        offset = self._log.log_start_offset
        end = self._log.log_end_offset
        while offset < end:
            data = self._log.read_bytes(offset, READ_CHUNK_BYTES)
            if not data:
                break
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
                    self._apply(state, record)
            if next_offset <= offset:
                raise AssertionError(f"{TOPIC}: no progress reading at offset {offset}")
            offset = next_offset
        return state

    @staticmethod
    def _apply(state: LoadedState, record: SimpleRecord) -> None:
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
