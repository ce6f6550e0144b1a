"""The broker's log cleaner: a background task on the event loop that compacts every partition whose topic's
cleanup.policy includes compact (log/cleaner.py holds the semantics and the per-partition work).

Each pass walks the partitions, plans each one (dirty ratio, compaction lags, due tombstones) and cleans
those that are due, yielding to the loop every megabyte of segment data, then sleeps
``log_cleaner_backoff_ms``.

Replicated partitions (a partition whose Raft log is its Kafka log) are NOT cleaned: a follower that falls
behind the leader's snapshot installs only a position (its log restarts empty there), so compacted segments
below it would never reach it, and rewriting segments under Raft's reads of its own entries would break
them. Cleaning them needs a snapshot that carries the compacted segments; until then a replicated broker
logs that and leaves them alone (single-node brokers and the in-process __consumer_offsets store compact).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge

from streamraft_broker.log import PartitionLog
from streamraft_broker.log.cleaner import CleanerState, PassStats, clean_steps, plan_pass, segment_infos
from streamraft_broker.topics.registry import TopicRegistry

log = logging.getLogger(__name__)


class CleanerMetrics:
    def __init__(self, registry: CollectorRegistry | None) -> None:
        r = registry
        self.passes = Counter("streamraft_log_cleaner_passes", "Log cleaner passes run", registry=r)
        self.partitions_cleaned = Counter(
            "streamraft_log_cleaner_partitions_cleaned", "Partition cleanings completed", registry=r
        )
        self.bytes_cleaned = Counter(
            "streamraft_log_cleaner_bytes_cleaned",
            "Segment bytes read and rewritten by the cleaner",
            registry=r,
        )
        self.bytes_removed = Counter(
            "streamraft_log_cleaner_bytes_removed", "Bytes the cleaner removed from segments", registry=r
        )
        self.records_removed = Counter(
            "streamraft_log_cleaner_records_removed",
            "Records (superseded or expired tombstones) removed",
            registry=r,
        )
        self.last_pass_seconds = Gauge(
            "streamraft_log_cleaner_last_pass_seconds", "Duration of the last cleaner pass", registry=r
        )
        self.last_pass_time = Gauge(
            "streamraft_log_cleaner_last_pass_timestamp_seconds", "Unix time the last pass ended", registry=r
        )
        self.max_dirty_ratio = Gauge(
            "streamraft_log_cleaner_max_dirty_ratio",
            "Largest dirty ratio among compacted partitions at the last pass",
            registry=r,
        )


class LogCleaner:
    def __init__(
        self,
        registry: TopicRegistry,
        *,
        backoff_ms: int,
        metrics_registry: CollectorRegistry | None,
        now_ms: Callable[[], int] | None = None,
    ) -> None:
        self._registry = registry
        self._backoff = backoff_ms / 1000
        self._now_ms = now_ms or (lambda: time.time_ns() // 1_000_000)
        self.metrics = CleanerMetrics(metrics_registry)
        self._states: dict[int, tuple[PartitionLog, CleanerState]] = {}

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._backoff)
            try:
                await self.run_pass()
            except Exception:
                log.exception("log cleaner pass failed")

    def _compacted_logs(self) -> list[tuple[str, int, PartitionLog]]:
        out: list[tuple[str, int, PartitionLog]] = []
        for topic in list(self._registry.topics.values()):
            for p in topic.partitions:
                if p.is_memory or p.raft_storage is not None:
                    continue  # see the module docstring for replicated partitions
                plog = p.log
                if isinstance(plog, PartitionLog) and not plog.closed and plog.config.compaction_enabled:
                    out.append((topic.name, p.index, plog))
        return out

    def _state(self, plog: PartitionLog) -> CleanerState:
        held = self._states.get(id(plog))
        if held is None or held[0] is not plog:
            held = (plog, CleanerState.load(plog.directory))
            self._states[id(plog)] = held
        return held[1]

    async def run_pass(self) -> None:
        started = time.monotonic()
        logs = self._compacted_logs()
        live = {id(plog) for _t, _p, plog in logs}
        self._states = {k: v for k, v in self._states.items() if k in live}
        max_ratio = 0.0
        for topic, index, plog in logs:
            if plog.closed:
                continue
            state = self._state(plog)
            now = self._now_ms()
            ratio, plan = plan_pass(segment_infos(plog), state, now, plog.config)
            max_ratio = max(max_ratio, ratio)
            if plan is None:
                continue
            stats = PassStats()
            try:
                for _ in clean_steps(plog, plan, state, now, stats):
                    await asyncio.sleep(0)
            except (OSError, ValueError) as exc:
                # The partition's files changed under the pass (deleted topic, retention) or the disk failed:
                # the next pass starts over from the checkpoint.
                log.warning(
                    "event=log_cleaner_partition_failed topic=%s partition=%d error=%s", topic, index, exc
                )
                continue
            self.metrics.bytes_cleaned.inc(stats.bytes_read)
            self.metrics.bytes_removed.inc(stats.bytes_removed)
            self.metrics.records_removed.inc(stats.records_removed)
            if stats.completed:
                self.metrics.partitions_cleaned.inc()
            log.info(
                "event=log_cleaned topic=%s partition=%d reason=%s dirty_ratio=%.3f segments=%d rewritten=%d "
                "records_removed=%d tombstones_removed=%d bytes_removed=%d completed=%s",
                topic,
                index,
                plan.reason,
                ratio,
                len(plan.bases),
                stats.segments_rewritten,
                stats.records_removed,
                stats.tombstones_removed,
                stats.bytes_removed,
                stats.completed,
            )
        self.metrics.passes.inc()
        self.metrics.max_dirty_ratio.set(max_ratio)
        self.metrics.last_pass_seconds.set(time.monotonic() - started)
        self.metrics.last_pass_time.set(time.time())
