"""The broker's log cleaner: a background task on the event loop that compacts every partition whose topic's
cleanup.policy includes compact (log/cleaner.py holds the semantics and the per-partition work).

Each pass walks the partitions, plans each one (dirty ratio, compaction lags, due tombstones) and cleans
those that are due, yielding to the loop every megabyte of segment data, then sleeps
``log_cleaner_backoff_ms``.

Replicated partitions whose Raft log is their Kafka log (replication/partition_storage.py) are cleaned on
every replica, independently, under three rules that keep the Raft log intact:
- only segments wholly below the partition's high watermark on this replica (committed and applied) are
  cleaned, so nothing Raft may still truncate or re-send as uncommitted is touched;
- every batch survives as a batch (an emptied one becomes an empty batch with the same base offset, last
  offset delta and leader epoch), so Raft entry i is still the batch at the same offset with the same term:
  Raft's reads of its own entries, recovery's merge of the journal and the log, and Log Matching all hold;
- each segment swap runs under the group's storage lock (runtime.with_storage), never beside a sync.
A follower that catches up receives the leader's (compacted) batches as its entries. Replicas may then hold
different but equally valid compactions of the same committed history: the same offsets, and for every key
its newest record (and everything not yet superseded) on each of them, as with Kafka's own cleaner, which
also runs on each replica independently. Partitions of the "separate" Raft-log mode are not cleaned.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge

from streamraft_broker.log import PartitionLog
from streamraft_broker.log.cleaner import (
    DEFAULT_MAP_BYTES,
    CleanerState,
    CleanPlan,
    PassStats,
    clean_steps,
    plan_pass,
    segment_infos,
)
from streamraft_broker.log.segment import Segment
from streamraft_broker.replication.partition_storage import PartitionRaftStorage
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


SWAPPED_READER_DELAY_MS = 60_000
"""A replaced segment's descriptor stays open this long for FileSlices already handed out (Kafka's default
file.delete.delay.ms)."""

ReplicatedSwap = Callable[[str, int, PartitionLog, Segment, Path], Awaitable[Segment | None]]
"""Swaps a cleaned segment into a replicated partition's log under its Raft group's storage lock."""


@dataclass(frozen=True, slots=True)
class _Target:
    topic: str
    index: int
    log: PartitionLog
    limit: int | None
    """Replicated: the high watermark here (clean only below it)."""


class LogCleaner:
    def __init__(
        self,
        registry: TopicRegistry,
        *,
        backoff_ms: int,
        map_bytes: int = DEFAULT_MAP_BYTES,
        metrics_registry: CollectorRegistry | None,
        now_ms: Callable[[], int] | None = None,
        replicated_swap: ReplicatedSwap | None = None,
    ) -> None:
        self._registry = registry
        self._replicated_swap = replicated_swap
        self._map_bytes = map_bytes
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

    def _targets(self) -> list[_Target]:
        out: list[_Target] = []
        replicated = self._replicated_swap is not None
        for topic in list(self._registry.topics.values()):
            for p in topic.partitions:
                plog = p.log
                if p.is_memory or not isinstance(plog, PartitionLog) or plog.closed:
                    continue
                if not plog.config.compaction_enabled:
                    continue
                if not replicated:
                    out.append(_Target(topic.name, p.index, plog, None))
                elif (
                    isinstance(p.raft_storage, PartitionRaftStorage)
                    and p.raft_storage.log is plog
                    and p.raft_hw is not None
                ):
                    out.append(_Target(topic.name, p.index, plog, p.raft_hw))
        return out

    def _state(self, plog: PartitionLog) -> CleanerState:
        held = self._states.get(id(plog))
        if held is None or held[0] is not plog:
            held = (plog, CleanerState.load(plog.directory))
            self._states[id(plog)] = held
        return held[1]

    async def _clean(
        self, target: _Target, plan: CleanPlan, state: CleanerState, now: int, stats: PassStats
    ) -> None:
        replicated = target.limit is not None
        steps = clean_steps(
            target.log, plan, state, now, stats, keep_every_batch=replicated, max_map_bytes=self._map_bytes
        )
        answer: Segment | None = None
        while True:
            try:
                step = steps.send(answer)
            except StopIteration:
                return
            answer = None
            if step is None:
                await asyncio.sleep(0)
            elif self._replicated_swap is not None and replicated:
                answer = await self._replicated_swap(
                    target.topic, target.index, target.log, step.segment, step.cleaned
                )
            else:
                answer = target.log.replace_cleaned(step.segment, step.cleaned)

    async def run_pass(self) -> None:
        started = time.monotonic()
        targets = self._targets()
        live = {id(t.log) for t in targets}
        self._states = {k: v for k, v in self._states.items() if k in live}
        max_ratio = 0.0
        for target in targets:
            topic, index, plog = target.topic, target.index, target.log
            if plog.closed:
                continue
            plog.release_swapped(SWAPPED_READER_DELAY_MS)
            state = self._state(plog)
            now = self._now_ms()
            ratio, plan = plan_pass(segment_infos(plog), state, now, plog.config, target.limit)
            max_ratio = max(max_ratio, ratio)
            if plan is None:
                continue
            stats = PassStats()
            try:
                await self._clean(target, plan, state, now, stats)
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
