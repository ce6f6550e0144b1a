"""Per partition: the transactions still open (producer id -> first offset) and those aborted (producer id,
first offset, marker offset), read from the log's batch headers, and with them the last stable offset.

Built on first use by scanning the partition's batch headers from the log start (only control batches are
read in full, to tell commit from abort), then kept current incrementally up to the log end at each query,
so it never needs hooks into the append paths and survives restarts by construction."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

from streamraft_broker.transactions.markers import ABORT, marker_type

SCAN_BATCHES_PER_CALL = 20_000


class TxnHeader(Protocol):
    @property
    def base_offset(self) -> int: ...
    @property
    def last_offset_delta(self) -> int: ...
    @property
    def producer_id(self) -> int: ...
    @property
    def is_control(self) -> bool: ...
    @property
    def is_transactional(self) -> bool: ...


class IndexedLog(Protocol):
    @property
    def log_start_offset(self) -> int: ...
    @property
    def log_end_offset(self) -> int: ...
    def iter_batch_headers(self, from_offset: int) -> Iterator[TxnHeader]: ...
    def read_bytes(self, offset: int, max_bytes: int, *, max_offset: int | None = None) -> bytes: ...


@dataclass(frozen=True, slots=True)
class AbortedTxn:
    producer_id: int
    first_offset: int
    last_offset: int  # the abort marker's offset


@dataclass(slots=True)
class PartitionTxnIndex:
    log: IndexedLog
    open: dict[int, int] = field(default_factory=dict)
    aborted: list[AbortedTxn] = field(default_factory=list)
    scanned_to: int = 0

    def catch_up(self, max_batches: int = SCAN_BATCHES_PER_CALL) -> None:
        """Index up to `max_batches` more batches: a long log is indexed over several requests, so no
        single request holds the event loop for the whole scan (the answers stay conservative meanwhile:
        the last stable offset never passes what has been scanned)."""
        end = int(self.log.log_end_offset)
        start = int(self.log.log_start_offset)
        self.scanned_to = max(self.scanned_to, start)
        if self.scanned_to < end:
            for scanned, header in enumerate(self.log.iter_batch_headers(self.scanned_to)):
                if scanned >= max_batches:
                    break
                last = header.base_offset + header.last_offset_delta
                if last < self.scanned_to:
                    continue
                self._apply(header)
                self.scanned_to = last + 1
        # Memory stays bounded by retention: aborted transactions wholly before the log start are dropped.
        if self.aborted and self.aborted[0].last_offset < start:
            self.aborted = [a for a in self.aborted if a.last_offset >= start]

    def _apply(self, header: TxnHeader) -> None:
        if not header.is_transactional or header.producer_id < 0:
            return
        pid = header.producer_id
        if not header.is_control:
            self.open.setdefault(pid, header.base_offset)
            return
        first = self.open.pop(pid, None)
        if first is None:
            return  # a marker closing nothing here (a retried end, or a partition with no data)
        kind = marker_type(self.log.read_bytes(header.base_offset, 1, max_offset=None))
        if kind == ABORT:
            self.aborted.append(AbortedTxn(pid, first, header.base_offset))

    def last_stable_offset(self, high_watermark: int) -> int:
        self.catch_up()
        return min([high_watermark, self.scanned_to, *self.open.values()])

    def aborted_in(self, fetch_offset: int, upper: int) -> list[AbortedTxn]:
        """Aborted transactions a read_committed consumer needs for the fetched range [fetch_offset, upper):
        those with data below `upper` whose abort marker is at or after `fetch_offset`."""
        self.catch_up()
        return [a for a in self.aborted if a.last_offset >= fetch_offset and a.first_offset < upper]
