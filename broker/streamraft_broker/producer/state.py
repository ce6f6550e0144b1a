"""Per-partition idempotent-producer state: which producer ids wrote here, at what epoch, and the metadata of
their last five batches, so a retried batch is answered with its original offsets instead of being appended
twice.

Call `check(headers)` before the append (inside PartitionLog.append's `before_write`, so the decision and
the write happen under the same lock), then `update(headers, append_info)` after it. `replay(header)` feeds
batches read back from the log during recovery.

Kafka semantics followed (ProducerStateManager / ProducerAppendInfo, 2.5+ behaviour):
- a batch whose producer epoch and sequence range match one of the producer's cached batches is a duplicate;
- an epoch lower than the stored one is INVALID_PRODUCER_EPOCH (what produce returns since KIP-588);
- a higher epoch must start at sequence 0, else OUT_OF_ORDER_SEQUENCE_NUMBER;
- same epoch: the first sequence must follow the last one (wrapping at 2^31-1), else
  OUT_OF_ORDER_SEQUENCE_NUMBER;
- a producer id with no state here whose state may have been removed (by retention, DeleteRecords or
  expiry) is accepted at any sequence (KIP-360: brokers 2.5+ no longer answer UNKNOWN_PRODUCER_ID for this,
  since the client cannot tell expired state from a real gap). `strict_unknown_producer=True` gives the
  pre-2.5 answer UNKNOWN_PRODUCER_ID for a non-zero first sequence instead.
- while the state is `complete` (nothing was ever removed: the log still starts at offset 0 and no producer
  expired), an unknown producer id has written nothing here, so a first batch with a non-zero sequence
  means its earlier batches are missing: OUT_OF_ORDER_SEQUENCE_NUMBER. Accepting it would lose them, as
  librdkafka takes a later batch's success as proof the earlier ones, whose answers were errors or lost,
  were written (it acknowledges them without offsets). This happens when a broker refuses a producer's
  first request (not leader yet) and accepts the pipelined next one (leader by then). Librdkafka answers
  this error on a non-head batch by bumping its epoch and resending from the first unacknowledged batch.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from kio.schema.errors import ErrorCode

from streamraft_broker.producer.types import (
    BATCHES_KEPT_PER_PRODUCER,
    NO_PRODUCER_EPOCH,
    NO_PRODUCER_ID,
    AppendInfoLike,
    HeaderLike,
    in_sequence,
    increment_sequence,
)


@dataclass(frozen=True, slots=True)
class BatchMetadata:
    first_sequence: int
    last_sequence: int
    base_offset: int
    last_offset: int
    max_timestamp: int


@dataclass(slots=True)
class ProducerEntry:
    producer_id: int
    epoch: int
    batches: deque[BatchMetadata] = field(default_factory=lambda: deque(maxlen=BATCHES_KEPT_PER_PRODUCER))
    last_timestamp: int = -1

    @property
    def last_sequence(self) -> int:
        return self.batches[-1].last_sequence if self.batches else -1

    def find(self, epoch: int, first_sequence: int, last_sequence: int) -> BatchMetadata | None:
        if epoch != self.epoch:
            return None
        for batch in self.batches:
            if batch.first_sequence == first_sequence and batch.last_sequence == last_sequence:
                return batch
        return None

    def copy(self) -> ProducerEntry:
        return ProducerEntry(
            self.producer_id,
            self.epoch,
            deque(self.batches, maxlen=BATCHES_KEPT_PER_PRODUCER),
            self.last_timestamp,
        )


@dataclass(frozen=True, slots=True)
class Ok:
    pass


@dataclass(frozen=True, slots=True)
class Duplicate:
    """The batch was already appended: answer the produce request with these, append nothing."""

    base_offset: int
    last_offset: int
    max_timestamp: int


@dataclass(frozen=True, slots=True)
class Rejected:
    error_code: ErrorCode
    message: str


CheckResult = Ok | Duplicate | Rejected
OK = Ok()


def _last_sequence(header: HeaderLike) -> int:
    return increment_sequence(header.base_sequence, header.last_offset_delta)


class ProducerStateManager:
    def __init__(self, *, strict_unknown_producer: bool = False, complete: bool = True) -> None:
        self._entries: dict[int, ProducerEntry] = {}
        self._strict_unknown = strict_unknown_producer
        self.complete = complete
        """Every producer that ever wrote to the partition has its entry here (see the module docstring);
        cleared for good once retention, DeleteRecords or expiry may have removed one."""
        # The log offset up to which (exclusive) this state reflects the log; snapshots are taken at it.
        self.map_end_offset = 0

    def __len__(self) -> int:
        return len(self._entries)

    def entry(self, producer_id: int) -> ProducerEntry | None:
        return self._entries.get(producer_id)

    def entries(self) -> Iterable[ProducerEntry]:
        return self._entries.values()

    def check(self, headers: Sequence[HeaderLike]) -> CheckResult:
        """Decide what to do with the batches of one produce request for this partition, before appending.

        Batches of one request are checked in order against the state as the earlier ones would leave it;
        a duplicate is recognised only for a request holding that single batch (what producers send)."""
        scratch: dict[int, ProducerEntry] = {}
        for header in headers:
            pid = header.producer_id
            if pid == NO_PRODUCER_ID or header.is_control:
                continue
            if header.base_sequence < 0 or header.producer_epoch < 0:
                return Rejected(
                    ErrorCode.invalid_record,
                    f"producer {pid}: idempotent batch needs epoch >= 0 and base sequence >= 0, got "
                    f"epoch {header.producer_epoch} sequence {header.base_sequence}",
                )
            current = scratch.get(pid) or self._entries.get(pid)
            last_seq = _last_sequence(header)
            if current is not None and len(headers) == 1:
                dup = current.find(header.producer_epoch, header.base_sequence, last_seq)
                if dup is not None:
                    return Duplicate(dup.base_offset, dup.last_offset, dup.max_timestamp)
            verdict = self._validate(current, header)
            if verdict is not None:
                return verdict
            updated = current.copy() if current is not None else ProducerEntry(pid, header.producer_epoch)
            if updated.epoch != header.producer_epoch:
                updated.epoch = header.producer_epoch
                updated.batches.clear()
            # Offsets are not known yet; only sequences matter for the rest of this request.
            updated.batches.append(
                BatchMetadata(header.base_sequence, last_seq, -1, -1, header.max_timestamp)
            )
            scratch[pid] = updated
        return OK

    def _validate(self, current: ProducerEntry | None, header: HeaderLike) -> Rejected | None:
        pid, epoch, first_seq = header.producer_id, header.producer_epoch, header.base_sequence
        if current is None or current.epoch == NO_PRODUCER_EPOCH:
            if first_seq != 0 and self._strict_unknown:
                return Rejected(
                    ErrorCode.unknown_producer_id,
                    f"producer {pid}: no state on this partition and first sequence {first_seq} is not 0",
                )
            if first_seq != 0 and self.complete:
                return Rejected(
                    ErrorCode.out_of_order_sequence_number,
                    f"producer {pid} has written nothing to this partition, so its first batch must have "
                    f"sequence 0, got {first_seq}: its earlier batches are missing",
                )
            return None
        if epoch < current.epoch:
            return Rejected(
                ErrorCode.invalid_producer_epoch,
                f"producer {pid}: epoch {epoch} is older than the current epoch {current.epoch}",
            )
        if epoch > current.epoch:
            if first_seq != 0:
                return Rejected(
                    ErrorCode.out_of_order_sequence_number,
                    f"producer {pid}: new epoch {epoch} must start at sequence 0, got {first_seq}",
                )
            return None
        if not current.batches:
            return None
        if not in_sequence(current.last_sequence, first_seq):
            return Rejected(
                ErrorCode.out_of_order_sequence_number,
                f"producer {pid} epoch {epoch}: expected sequence "
                f"{increment_sequence(current.last_sequence, 1)}, got {first_seq}",
            )
        return None

    def update(self, headers: Sequence[HeaderLike], append_info: AppendInfoLike) -> None:
        """Record the batches just appended; their offsets follow from the append's base offset."""
        offset = append_info.base_offset
        for header in headers:
            last = offset + header.last_offset_delta
            self._record(header, offset, last)
            offset = last + 1
        self.map_end_offset = max(self.map_end_offset, offset)

    def replay(self, header: HeaderLike) -> None:
        """Apply a batch read back from the log (its header carries its real base offset)."""
        last = header.base_offset + header.last_offset_delta
        self._record(header, header.base_offset, last)
        self.map_end_offset = max(self.map_end_offset, last + 1)

    def _record(self, header: HeaderLike, base_offset: int, last_offset: int) -> None:
        pid = header.producer_id
        if pid != NO_PRODUCER_ID and header.is_control:
            # A transaction marker written at a bumped epoch (the coordinator fencing a producer) makes that
            # epoch the partition's: a zombie's later batches at the old epoch are then refused here too.
            fenced = self._entries.get(pid)
            if fenced is not None and header.producer_epoch > fenced.epoch:
                fenced.epoch = header.producer_epoch
                fenced.batches.clear()
            return
        if pid == NO_PRODUCER_ID or header.base_sequence < 0:
            return
        entry = self._entries.get(pid)
        if entry is None:
            entry = self._entries[pid] = ProducerEntry(pid, header.producer_epoch)
        if header.producer_epoch != entry.epoch:
            entry.epoch = header.producer_epoch
            entry.batches.clear()
        entry.batches.append(
            BatchMetadata(
                header.base_sequence, _last_sequence(header), base_offset, last_offset, header.max_timestamp
            )
        )
        entry.last_timestamp = max(entry.last_timestamp, header.max_timestamp)

    def restore(self, entries: Iterable[ProducerEntry], map_end_offset: int) -> None:
        self._entries = {e.producer_id: e for e in entries}
        self.map_end_offset = map_end_offset

    def remove_expired(self, now_ms: int, expiration_ms: int) -> list[int]:
        """Forget producers idle longer than producer.id.expiration.ms (Kafka default: one day)."""
        expired = [pid for pid, e in self._entries.items() if now_ms - e.last_timestamp > expiration_ms]
        for pid in expired:
            del self._entries[pid]
        if expired:
            self.complete = False
        return expired

    def truncate_to(self, offset: int) -> None:
        """Drop batch metadata at or above `offset` (log truncation); producers left with no batch
        are forgotten, as their remaining history is unknown."""
        for pid in list(self._entries):
            entry = self._entries[pid]
            kept = [b for b in entry.batches if b.last_offset < offset]
            if not kept:
                del self._entries[pid]
            else:
                entry.batches = deque(kept, maxlen=BATCHES_KEPT_PER_PRODUCER)
        self.map_end_offset = min(self.map_end_offset, offset)
