"""The transaction coordinator as a single-node broker runs it: markers appended to the partitions through
the idempotent-producer hook (so the partition's producer state sees the marker's epoch and fences older
producers), committed transactional offsets handed to the group coordinator, the timeout task, and the
per-partition transaction indexes behind the last stable offset."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from streamraft_broker.groups.model import OffsetCommitEntry
from streamraft_broker.log import wall_clock_ms
from streamraft_broker.transactions.coordinator import Offsets, TransactionCoordinator
from streamraft_broker.transactions.markers import marker_batch
from streamraft_broker.transactions.partition_index import IndexedLog, PartitionTxnIndex
from streamraft_broker.transactions.state import TRANSACTIONAL_ID_EXPIRATION_MS

log = logging.getLogger(__name__)

STATE_FILE = "transactions.json"
TIMEOUT_CHECK_S = 1.0  # Kafka's transaction.abort.timed.out.transaction.cleanup.interval.ms is 10 s
# Single node: one coordinator that never changes hands, so its epoch stays 0.
COORDINATOR_EPOCH = 0


class TransactionService:
    def __init__(
        self,
        data_dir: Path,
        registry: Any,
        producers: Any,
        groups: Any,
        *,
        max_timeout_ms: int,
        id_expiration_ms: int = TRANSACTIONAL_ID_EXPIRATION_MS,
        clock: Callable[[], int] = wall_clock_ms,
    ) -> None:
        self._registry = registry
        self._producers = producers
        self._groups = groups
        self._clock = clock
        self._indexes: dict[tuple[str, int], PartitionTxnIndex] = {}
        self._task: asyncio.Task[None] | None = None
        self._recovered = False
        allocate: Callable[[], int] = producers.ids.allocate
        self.coordinator = TransactionCoordinator(
            data_dir / STATE_FILE,
            allocate_producer_id=allocate,
            write_marker=self._write_marker,
            commit_offsets=self._commit_offsets,
            clock=clock,
            max_timeout_ms=max_timeout_ms,
            id_expiration_ms=id_expiration_ms,
        )

    def _write_marker(self, topic: str, index: int, producer_id: int, epoch: int, commit: bool) -> None:
        partition = self._registry.partition(topic, index)
        if partition is None:
            raise LookupError(f"{topic}-{index}")
        hook = self._producers.before_write_hook(topic, index) if self._producers is not None else None
        batch = marker_batch(
            producer_id, epoch, commit, coordinator_epoch=COORDINATOR_EPOCH, now_ms=self._clock()
        )
        partition.append(batch, before_write=hook)

    async def _commit_offsets(self, group: str, offsets: Offsets) -> None:
        entries = [
            OffsetCommitEntry(topic=t, partition=p, offset=o, metadata=md, leader_epoch=e)
            for (t, p), (o, e, md) in sorted(offsets.items())
        ]
        await self._groups.coordinator.commit_transactional_offsets(group, entries)

    async def ensure_started(self) -> TransactionCoordinator:
        """The coordinator, once transactions a crash left half-ended are completed, with the timeout task
        running on the current loop."""
        if not self._recovered:
            self._recovered = True
            await self.coordinator.recover()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._abort_timed_out(), name="txn-timeouts")
        return self.coordinator

    async def _abort_timed_out(self) -> None:
        while True:
            await asyncio.sleep(TIMEOUT_CHECK_S)
            try:
                await self.coordinator.recover()  # ends whose markers failed to write earlier
                await self.coordinator.abort_expired()
                await self.coordinator.remove_expired_ids()
            except (OSError, ValueError) as exc:
                log.warning("aborting timed-out transactions failed: %s", exc)

    def index(self, topic: str, index: int) -> PartitionTxnIndex | None:
        """The partition's transaction index; None for unknown or in-memory partitions (which keep no
        batch headers to index: they answer LSO = high watermark)."""
        partition = self._registry.partition(topic, index)
        if partition is None or partition.is_memory or not hasattr(partition.log, "iter_batch_headers"):
            self._indexes.pop((topic, index), None)
            return None
        found = self._indexes.get((topic, index))
        if found is None or found.log is not partition.log:
            found = self._indexes[(topic, index)] = PartitionTxnIndex(cast("IndexedLog", partition.log))
        return found

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
