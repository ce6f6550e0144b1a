"""The coordinator as the broker runs it: `__consumer_offsets` opened as a compacted PartitionLog under the
data directory (kept out of the topic registry, so Metadata does not list it), state reloaded from it, and
the deadline task started on the running loop the first time a handler uses the coordinator.

Single-node: this broker coordinates every group, matching FindCoordinator's answer."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from pathlib import Path

from streamraft_broker.groups.config import GroupConfig
from streamraft_broker.groups.coordinator import GroupCoordinator
from streamraft_broker.groups.store import TOPIC, TOPIC_CONFIGS, OffsetsStore
from streamraft_broker.log import LogConfig, PartitionLog, wall_clock_ms

log = logging.getLogger(__name__)


def offsets_log_dir(data_dir: Path) -> Path:
    return data_dir / "internal" / f"{TOPIC}-0"


class GroupService:
    def __init__(self, coordinator: GroupCoordinator, store: OffsetsStore, offsets_log: PartitionLog) -> None:
        self.coordinator = coordinator
        self.store = store
        self.offsets_log = offsets_log
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def open(
        cls,
        data_dir: Path,
        *,
        clock: Callable[[], int] = wall_clock_ms,
        config: GroupConfig | None = None,
        partition_exists: Callable[[str, int], bool] | None = None,
        topic_configs: Mapping[str, str] | None = None,
    ) -> GroupService:
        """`topic_configs` overrides the offsets log's configs (e.g. a small segment.bytes in tests)."""
        directory = offsets_log_dir(data_dir)
        directory.mkdir(parents=True, exist_ok=True)
        log_config = LogConfig.from_topic_configs({**TOPIC_CONFIGS, **(topic_configs or {})})
        offsets_log = PartitionLog.open(directory, log_config, now_ms=clock)
        store = OffsetsStore(offsets_log, clock=clock)
        coordinator = GroupCoordinator(
            clock=clock, config=config, store=store, partition_exists=partition_exists
        )
        loaded = store.load()
        coordinator.restore(loaded)
        log.info(
            "loaded %s: %d groups with metadata, %d with offsets, %d records (%d skipped)",
            TOPIC,
            len(loaded.groups),
            len(loaded.offsets),
            loaded.records_read,
            loaded.records_skipped,
        )
        return cls(coordinator, store, offsets_log)

    def ensure_started(self) -> GroupCoordinator:
        """The coordinator, with its deadline task running on the current loop."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self.coordinator.run(), name="group-deadlines"
            )
        return self.coordinator

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self.store.close()
        self.offsets_log.close()
