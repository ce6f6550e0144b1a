"""Idempotent-producer state as the broker runs it, behind the two calls the produce path makes:
`init_producer_id(...)` and `before_write_hook(topic, partition)` (passed to PartitionLog.append).

The hook checks the request's batches against the partition's state. A rejected batch raises
`ProducerStateError` (a ValueError with `.error_code`, like InvalidRecordError); a duplicate raises
`DuplicateBatchError` (error code 0) carrying the original `base_offset`/`last_offset`, which the produce
handler returns instead of appending. An accepted request is remembered as pending and folded into the
state at the next use of that partition once the log end shows the write happened (PartitionLog.append
assigns offsets from its log end, which the hook reads) — so a write that failed after the hook never makes
a retry look like a duplicate.

Per-partition state is rebuilt on first use from the newest snapshot in the partition's directory plus the
batch headers after it. A snapshot is taken every `snapshot_every` idempotent appends, whenever the log has
grown `snapshot_every_offsets` past the last snapshot (so recovery after a crash stays short even on
partitions without idempotent producers), and on close.

Assumes every append to a partition's log passes through the hook (the produce path): the state is then
current up to the log end whenever no append is pending."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kio.schema.errors import ErrorCode

from streamraft_broker.producer.ids import ProducerIdAllocator
from streamraft_broker.producer.recovery import recover
from streamraft_broker.producer.snapshot import take_snapshot
from streamraft_broker.producer.state import Duplicate, ProducerStateManager, Rejected
from streamraft_broker.producer.types import NO_PRODUCER_EPOCH, NO_PRODUCER_ID, HeaderLike

log = logging.getLogger(__name__)

SNAPSHOT_EVERY = 10_000
SNAPSHOT_EVERY_OFFSETS = 1_000_000
# Kafka's producer.id.expiration.ms: producers idle this long (by their batches' timestamps) are forgotten
# when a snapshot is taken.
PRODUCER_ID_EXPIRATION_MS = 86_400_000


class ProducerStateError(ValueError):
    def __init__(self, error_code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.error_code = int(error_code)


class DuplicateBatchError(ValueError):
    """Not a failure: the batch is already in the log at these offsets."""

    error_code = 0

    def __init__(self, base_offset: int, last_offset: int, max_timestamp: int) -> None:
        super().__init__(f"duplicate of the batch at offsets {base_offset}..{last_offset}")
        self.base_offset = base_offset
        self.last_offset = last_offset
        self.max_timestamp = max_timestamp


@dataclass(frozen=True, slots=True)
class _Appended:
    base_offset: int
    log_append_time: int = -1


@dataclass(slots=True)
class _Pending:
    headers: Sequence[HeaderLike]
    base_offset: int
    end_offset: int


class _PartitionProducers:
    def __init__(self, directory: Path | None, log: Any, state: ProducerStateManager) -> None:
        self.directory = directory
        self.log = log
        self.state = state
        self.pending: _Pending | None = None
        self.appends_since_snapshot = 0
        self.last_snapshot_offset = state.map_end_offset

    def settle(self) -> None:
        pending, self.pending = self.pending, None
        if pending is None:
            return
        if int(self.log.log_end_offset) >= pending.end_offset:
            self.state.update(pending.headers, _Appended(pending.base_offset))
            self.appends_since_snapshot += 1
        else:
            log.warning(
                "producer state: append at offset %d did not happen; not recorded", pending.base_offset
            )

    def catch_up(self) -> None:
        """Settle, then mark the state current to the log end (appends without producer ids change
        nothing), so snapshots and recovery skip them."""
        self.settle()
        if self.state.complete and int(self.log.log_start_offset) > 0:
            self.state.complete = False  # retention or DeleteRecords may have taken a producer's batches
        self.state.map_end_offset = max(self.state.map_end_offset, int(self.log.log_end_offset))


class ProducerService:
    def __init__(
        self,
        data_dir: Path,
        partition_log: Callable[[str, int], Any | None],
        *,
        snapshot_every: int = SNAPSHOT_EVERY,
        snapshot_every_offsets: int = SNAPSHOT_EVERY_OFFSETS,
        producer_id_expiration_ms: int = PRODUCER_ID_EXPIRATION_MS,
        clock: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        """`partition_log(topic, index)` returns the partition's PartitionLog (None if unknown)."""
        assert snapshot_every > 0 and snapshot_every_offsets > 0
        self.ids = ProducerIdAllocator(data_dir / "producer-ids.json")
        self._partition_log = partition_log
        self._partitions: dict[tuple[str, int], _PartitionProducers] = {}
        self._snapshot_every = snapshot_every
        self._snapshot_every_offsets = snapshot_every_offsets
        self._expiration_ms = producer_id_expiration_ms
        self._clock = clock

    def init_producer_id(
        self,
        producer_id: int = NO_PRODUCER_ID,
        producer_epoch: int = NO_PRODUCER_EPOCH,
        transactional_id: str | None = None,
    ) -> tuple[int, int]:
        result = self.ids.init_producer_id(transactional_id, producer_id, producer_epoch)
        if result.error_code != ErrorCode.none:
            raise ProducerStateError(result.error_code, f"InitProducerId refused for {transactional_id!r}")
        return result.producer_id, result.producer_epoch

    def _partition(self, topic: str, index: int) -> _PartitionProducers | None:
        key = (topic, index)
        found = self._partitions.get(key)
        plog = self._partition_log(topic, index)
        if plog is None:
            self._partitions.pop(key, None)
            return None
        if found is not None and found.log is plog:
            return found
        directory = getattr(plog, "directory", None)
        if directory is not None and hasattr(plog, "iter_batch_headers"):
            state = recover(Path(directory), plog)
        else:
            state = ProducerStateManager()
        found = self._partitions[key] = _PartitionProducers(directory, plog, state)
        return found

    def state(self, topic: str, index: int) -> ProducerStateManager | None:
        part = self._partition(topic, index)
        if part is None:
            return None
        part.catch_up()
        return part.state

    def before_write_hook(self, topic: str, index: int) -> Callable[[list[Any]], None] | None:
        part = self._partition(topic, index)
        if part is None:
            return None

        def hook(headers: list[Any]) -> None:
            part.catch_up()
            if (
                part.appends_since_snapshot >= self._snapshot_every
                or part.state.map_end_offset - part.last_snapshot_offset >= self._snapshot_every_offsets
            ):
                self._snapshot(part)
            verdict = part.state.check(headers)
            if isinstance(verdict, Rejected):
                raise ProducerStateError(verdict.error_code, f"{topic}-{index}: {verdict.message}")
            if isinstance(verdict, Duplicate):
                raise DuplicateBatchError(verdict.base_offset, verdict.last_offset, verdict.max_timestamp)
            if not any(h.producer_id != NO_PRODUCER_ID for h in headers):
                return
            base = int(part.log.log_end_offset)
            end = base + sum(h.last_offset_delta + 1 for h in headers)
            part.pending = _Pending(list(headers), base, end)

        return hook

    def _snapshot(self, part: _PartitionProducers) -> None:
        part.catch_up()
        part.appends_since_snapshot = 0
        part.last_snapshot_offset = part.state.map_end_offset
        expired = part.state.remove_expired(self._clock(), self._expiration_ms)
        if expired:
            log.info("producer state %s: expired %d idle producer ids", part.directory, len(expired))
        if part.directory is not None and Path(part.directory).is_dir():
            take_snapshot(Path(part.directory), part.state)

    def on_appended(self, topic: str, index: int, header: HeaderLike) -> None:
        """A batch reached the partition's log without the hook (a Raft replica's append: the leader
        checked it before proposing). Loaded state follows it; unloaded state reads it from the log."""
        part = self._partitions.get((topic, index))
        if part is None or part.log is not self._partition_log(topic, index):
            return
        part.state.replay(header)
        if header.producer_id != NO_PRODUCER_ID:
            part.appends_since_snapshot += 1
        if (
            part.appends_since_snapshot >= self._snapshot_every
            or part.state.map_end_offset - part.last_snapshot_offset >= self._snapshot_every_offsets
        ):
            self._snapshot(part)

    def forget_partition(self, topic: str, index: int) -> None:
        """Drop one partition's in-memory state, e.g. after its log was truncated; the next use rebuilds it
        from the snapshots (those past the new log end are discarded) and the log."""
        self._partitions.pop((topic, index), None)

    def forget(self, topic: str) -> None:
        """Drop state of a deleted topic (its directory, snapshots included, is gone)."""
        for key in [k for k in self._partitions if k[0] == topic]:
            del self._partitions[key]

    def close(self) -> None:
        for part in self._partitions.values():
            try:
                self._snapshot(part)
            except OSError as exc:
                log.warning("producer state snapshot failed for %s: %s", part.directory, exc)
