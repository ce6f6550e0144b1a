"""Consumer-group coordination in replicated mode, Kafka's way.

- ``__consumer_offsets`` is a replicated internal topic: the controller's leader creates it through the
  controller log once the cluster has formed (partitions from STREAMRAFT_OFFSETS_TOPIC_PARTITIONS, default
  10; RF = min(3, brokers); compacted). Each of its partitions is a Raft group like any other partition.
- A group lives in partition ``abs(javaHashCode(group)) % N`` (Kafka's function), and its coordinator is
  that partition's Raft leader. A broker that becomes leader (seen by polling leadership, every 100 ms)
  waits until it has applied its whole Raft log, loads the partition's groups and offsets by reading the
  partition log in bounded chunks (progress logged), then serves; until then requests for its groups get
  COORDINATOR_LOAD_IN_PROGRESS. When it loses leadership (or its term changes) it unloads: parked
  JoinGroup/SyncGroup calls and pending writes fail, and requests get NOT_COORDINATOR, so clients
  re-find the coordinator.
- Writes (offset commits, group metadata) are record batches produced to the partition through
  ``ReplicationService.produce``: an OffsetCommit is answered once its batch is committed by Raft and
  applied. Group membership is reloaded from the stored metadata, so members of a stable group keep their
  generation across a failover as long as they heartbeat within their session timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kio.schema.errors import ErrorCode

from streamraft_broker.controller.commands import CreateTopic, assignment, encode
from streamraft_broker.controller.state import CONTROLLER_GROUP, place_replicas
from streamraft_broker.groups.codec import OffsetKey, encode_offset_key
from streamraft_broker.groups.config import GroupConfig
from streamraft_broker.groups.coordinator import GroupCoordinator, GroupStoreError, Record
from streamraft_broker.groups.store import TOPIC, TOPIC_CONFIGS, LoadedState, batch_chunks, fold_chunk
from streamraft_broker.log import wall_clock_ms
from streamraft_broker.records import SimpleRecord, build_batch

if TYPE_CHECKING:
    from streamraft_broker.replication.members import Member
    from streamraft_broker.replication.service import ReplicationService

log = logging.getLogger(__name__)

PARTITIONS_ENV = "STREAMRAFT_OFFSETS_TOPIC_PARTITIONS"
DEFAULT_PARTITIONS = 10
MAX_PARTITIONS = 1000
MAX_REPLICATION = 3
WATCH_INTERVAL_S = 0.1
LOAD_CHUNK_BYTES = 1024 * 1024
LOAD_PROGRESS_EVERY_S = 2.0
CATCH_UP_DEADLINE_S = 60.0
"""A new leader that has not applied its whole log by then gives the partition up (and retries later)."""


def java_string_hash(text: str) -> int:
    """Java's String.hashCode (over UTF-16 code units, 32-bit wrap-around), signed."""
    h = 0
    data = text.encode("utf-16-be")
    for i in range(0, len(data), 2):
        h = (31 * h + ((data[i] << 8) | data[i + 1])) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def partition_for(group_id: str, partitions: int) -> int:
    """Kafka's ``Utils.abs(groupId.hashCode) % partitions`` (Utils.abs masks the sign bit)."""
    assert partitions > 0, partitions
    return (java_string_hash(group_id) & 0x7FFFFFFF) % partitions


def configured_partitions(env: dict[str, str] | os._Environ[str] = os.environ) -> int:
    text = env.get(PARTITIONS_ENV, str(DEFAULT_PARTITIONS))
    if not text.strip().isdigit() or not 1 <= int(text) <= MAX_PARTITIONS:
        raise ValueError(f"{PARTITIONS_ENV}={text!r}: must be an integer in 1..{MAX_PARTITIONS}")
    return int(text)


class ReplicatedStore:
    """GroupStore of one offsets partition: records go, in the order handed over, as record batches
    through the partition's Raft group. Writes queued while one is in flight are proposed together."""

    def __init__(self, replication: ReplicationService, partition: int) -> None:
        self._replication = replication
        self._partition = partition
        self._queue: list[tuple[Sequence[Record], asyncio.Future[None] | None]] = []
        self._drainer: asyncio.Task[None] | None = None
        self._closed = False

    async def write(self, records: Sequence[Record]) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._enqueue(records, fut)
        await fut

    def write_nowait(self, records: Sequence[Record]) -> None:
        self._enqueue(records, None)

    def _enqueue(self, records: Sequence[Record], fut: asyncio.Future[None] | None) -> None:
        if self._closed:
            error = GroupStoreError(f"{TOPIC}-{self._partition}: no longer coordinated here")
            if fut is None:
                log.info("%s", error)
            else:
                fut.set_exception(error)
            return
        self._queue.append((records, fut))
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        while self._queue and not self._closed:
            pending, self._queue = self._queue, []
            error: GroupStoreError | None = None
            try:
                await self._propose([r for recs, _ in pending for r in recs])
            except GroupStoreError as exc:
                error = exc
                log.warning("%s", exc)
            except Exception as exc:
                # Whatever went wrong, no committer may be left waiting forever.
                error = GroupStoreError(f"{TOPIC}-{self._partition}: write failed unexpectedly: {exc!r}")
                log.exception("%s", error)
            for _, fut in pending:
                if fut is not None and not fut.done():
                    if error is None:
                        fut.set_result(None)
                    else:
                        fut.set_exception(error)

    async def _propose(self, records: list[Record]) -> None:
        for chunk in batch_chunks([SimpleRecord(k, v) for k, v in records]):
            batch = build_batch(chunk, timestamp_ms=wall_clock_ms())
            code, *_ = await self._replication.produce(TOPIC, self._partition, batch)
            if code != 0:
                raise GroupStoreError(f"{TOPIC}-{self._partition}: write not committed (error {code})")

    def close(self) -> None:
        """Fail every queued write; a proposal in flight still gets its Raft outcome."""
        self._closed = True
        pending, self._queue = self._queue, []
        for _, fut in pending:
            if fut is not None and not fut.done():
                fut.set_exception(GroupStoreError(f"{TOPIC}-{self._partition}: no longer coordinated here"))


@dataclass
class _Slot:
    """A partition this broker leads: its coordinator once loaded (None while loading)."""

    partition: int
    term: int
    store: ReplicatedStore
    coordinator: GroupCoordinator | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


def drop_deleted_topics(state: LoadedState, deleted: Collection[str]) -> list[OffsetKey]:
    """Removes from ``state`` the offsets of topics the controller log deleted; returns their keys.

    Only an explicit deletion counts: a broker restarted with the whole cluster may load an offsets
    partition before its own controller state has replayed the creation of the topics those offsets
    name, and treating "not known yet" as deleted wrote tombstones over committed offsets. A deletion
    applied after the load reaches the loaded coordinator through the registry's change listener."""
    gone: list[OffsetKey] = []
    for group_id, offsets in state.offsets.items():
        for topic, index in [k for k in offsets if k[0] in deleted]:
            del offsets[(topic, index)]
            gone.append(OffsetKey(group_id, topic, index))
    return gone


class GroupOffsets:
    def __init__(self, replication: ReplicationService, config: GroupConfig | None = None) -> None:
        self.replication = replication
        self.config = config
        self.partitions_wanted = configured_partitions()
        self._slots: dict[int, _Slot] = {}
        self._task: asyncio.Task[None] | None = None
        self.loads = 0
        """Completed loads (for tests and logs)."""
        replication.registry.on_change(self._on_topic_change)

    def _on_topic_change(self, name: str, topic: object | None) -> None:
        if topic is not None:
            return
        # As Kafka does: a deleted topic's committed offsets go (tombstones written by each coordinator).
        for coordinator in self.coordinators():
            coordinator.delete_topic_offsets(name)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._watch(), name="group-offsets-watch")

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        for p in list(self._slots):
            self._unload(p, "broker stopping")

    # ------------------------------------------------------------------ leadership watch

    async def _watch(self) -> None:
        while True:
            try:
                await self._ensure_topic()
                self._follow_leadership()
            except Exception:
                log.exception("group offsets: watch pass failed")
            await asyncio.sleep(WATCH_INTERVAL_S)

    async def _ensure_topic(self) -> None:
        rep = self.replication
        if TOPIC in rep.state.topics or not rep.runtime.is_leader(CONTROLLER_GROUP):
            return
        brokers = sorted(rep.members)
        rf = min(MAX_REPLICATION, len(brokers))
        replicas = place_replicas(brokers, self.partitions_wanted, rf, len(rep.state.topics))
        log.info("creating %s: %d partitions, replication %d", TOPIC, self.partitions_wanted, rf)
        # A concurrent create by an earlier controller loses in apply order: the first one stands.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(
                rep.runtime.propose(
                    CONTROLLER_GROUP,
                    encode(CreateTopic(TOPIC, uuid.uuid4(), assignment(replicas), dict(TOPIC_CONFIGS))),
                ),
                5.0,
            )

    def _follow_leadership(self) -> None:
        meta = self.replication.state.topics.get(TOPIC)
        if meta is None:
            return
        runtime = self.replication.runtime
        hosted = set(runtime.groups())
        for p in range(len(meta.replicas)):
            gid = meta.group(p)
            leading = gid in hosted and runtime.is_leader(gid)
            term = runtime.term(gid) if gid in hosted else -1
            slot = self._slots.get(p)
            if slot is not None and (not leading or slot.term != term):
                self._unload(p, "leadership lost" if not leading else f"term {slot.term} -> {term}")
                slot = None
            if leading and slot is None:
                slot = _Slot(p, term, ReplicatedStore(self.replication, p))
                self._slots[p] = slot
                slot.tasks.append(asyncio.get_running_loop().create_task(self._load(slot)))

    def _unload(self, partition: int, why: str) -> None:
        slot = self._slots.pop(partition, None)
        if slot is None:
            return
        for task in slot.tasks:
            task.cancel()
        slot.store.close()
        if slot.coordinator is not None:
            slot.coordinator.unload(ErrorCode.not_coordinator)
        log.info("event=groups_unloaded partition=%s-%d reason=%s", TOPIC, partition, why)

    async def _load(self, slot: _Slot) -> None:
        rep = self.replication
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CATCH_UP_DEADLINE_S
        # Only once every entry of the log is applied is the partition log the whole truth.
        while not rep.caught_up(TOPIC, slot.partition):
            if loop.time() > deadline:
                log.error(
                    "%s-%d: not caught up in %.0f s; unloading", TOPIC, slot.partition, CATCH_UP_DEADLINE_S
                )
                self._unload(slot.partition, "catch-up timed out")
                return
            await asyncio.sleep(0.02)
        partition = rep.registry.partition(TOPIC, slot.partition)
        assert partition is not None, slot.partition
        state = LoadedState()
        started = time.monotonic()
        last_report = started
        offset, end = partition.log_start_offset, partition.high_watermark
        while offset < end:
            data = partition.log.read_bytes(offset, LOAD_CHUNK_BYTES)
            if not data:
                break
            offset = fold_chunk(state, bytes(data), offset)
            if time.monotonic() - last_report >= LOAD_PROGRESS_EVERY_S:
                last_report = time.monotonic()
                log.info("loading %s-%d: offset %d of %d", TOPIC, slot.partition, offset, end)
            await asyncio.sleep(0)  # large partitions must not stall the loop (heartbeats, Raft)
        registry = rep.registry

        def partition_exists(topic: str, index: int) -> bool:
            return registry.partition(topic, index) is not None

        coordinator = GroupCoordinator(
            clock=wall_clock_ms, config=self.config, store=slot.store, partition_exists=partition_exists
        )
        gone = drop_deleted_topics(state, rep.state.deleted_topics)
        coordinator.restore(state)
        if gone:
            # A topic deleted while this partition had no loaded coordinator: its offsets go now.
            slot.store.write_nowait([(encode_offset_key(key), None) for key in gone])
        slot.coordinator = coordinator
        slot.tasks.append(loop.create_task(coordinator.run(), name=f"group-deadlines-{slot.partition}"))
        self.loads += 1
        log.info(
            "event=groups_loaded partition=%s-%d groups=%d offsets_groups=%d records=%d seconds=%.3f",
            TOPIC,
            slot.partition,
            len(state.groups),
            len(state.offsets),
            state.records_read,
            time.monotonic() - started,
        )

    # ------------------------------------------------------------------ what handlers ask

    def partition_count(self) -> int:
        meta = self.replication.state.topics.get(TOPIC)
        return len(meta.replicas) if meta is not None else 0

    def coordinator_for(self, group_id: str) -> GroupCoordinator | ErrorCode:
        n = self.partition_count()
        if n == 0:
            return ErrorCode.coordinator_not_available
        slot = self._slots.get(partition_for(group_id, n))
        if slot is None:
            return ErrorCode.not_coordinator
        if slot.coordinator is None:
            return ErrorCode.coordinator_load_in_progress
        return slot.coordinator

    def coordinator_node(self, group_id: str) -> Member | ErrorCode:
        """The broker FindCoordinator names: the Raft leader of the group's offsets partition."""
        n = self.partition_count()
        if n == 0:
            return ErrorCode.coordinator_not_available
        code, leader, _epoch, _replicas = self.replication.partition_view(TOPIC, partition_for(group_id, n))
        member = self.replication.members.get(leader) if code == 0 else None
        return member if member is not None else ErrorCode.coordinator_not_available

    def loading(self) -> bool:
        """True while a partition led here is still loading (ListGroups then answers LOAD_IN_PROGRESS)."""
        return any(s.coordinator is None for s in list(self._slots.values()))

    def coordinators(self) -> list[GroupCoordinator]:
        """The loaded coordinators of this broker (ListGroups answers for these, as in Kafka)."""
        return [s.coordinator for s in self._slots.values() if s.coordinator is not None]
