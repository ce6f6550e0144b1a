"""The broker's replication service: one consensus Runtime hosting the controller group and the groups of
the partitions this broker replicates. See the package docstring for the design."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import functools
import logging
import shutil
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from streamraft_consensus.core.types import ConfState, Entry, Snapshot
from streamraft_consensus.runtime.api import LeaderChange
from streamraft_consensus.runtime.config import RuntimeConfig
from streamraft_consensus.runtime.errors import ConsensusError, StorageFailedError
from streamraft_consensus.runtime.runtime import Runtime
from streamraft_consensus.storage.files import drop_cached_pages
from streamraft_consensus.storage.protocol import RaftStorage
from streamraft_consensus.storage.segment_log import SegmentLog
from streamraft_consensus.transport.grpc_transport import TransportTls

from streamraft_broker.config import DEFAULT_CONTROLLER_SNAPSHOT_ENTRIES
from streamraft_broker.controller.commands import (
    AddPartitions,
    AlterBrokerConfigs,
    AlterConfigs,
    CreateTopic,
    DeleteRecords,
    DeleteTopic,
    assignment,
    encode,
)
from streamraft_broker.controller.state import (
    CONTROLLER_GROUP,
    BrokerReg,
    Change,
    ControllerState,
    TopicMeta,
    changes_between,
    place_replicas,
)
from streamraft_broker.log.partition import PartitionLog, wall_clock_ms
from streamraft_broker.log.segment import Segment
from streamraft_broker.producer.service import DuplicateBatchError
from streamraft_broker.producer.snapshot import list_snapshots
from streamraft_broker.producer.state import (
    BatchMetadata,
    Duplicate,
    ProducerEntry,
    ProducerStateManager,
    Rejected,
)
from streamraft_broker.producer.types import NO_PRODUCER_ID
from streamraft_broker.records.batch import (
    BatchHeader,
    TimestampType,
    assign_for_append,
    parse_header,
    validate_produce_batch,
)
from streamraft_broker.records.errors import InvalidRecordError, KafkaErrorCode
from streamraft_broker.replication.group_offsets import GroupOffsets
from streamraft_broker.replication.members import Member, cluster_id_of
from streamraft_broker.replication.membership import Membership
from streamraft_broker.replication.partition_storage import PartitionRaftStorage
from streamraft_broker.replication.reassign import Mover
from streamraft_broker.replication.rejoin import Rejoin, RejoinDriver
from streamraft_broker.topics import broker_configs, partition_metadata
from streamraft_broker.topics import registry as registry_module
from streamraft_broker.topics.paths import UnsafePath
from streamraft_broker.topics.registry import (
    INVALID_PARTITIONS,
    INVALID_REPLICATION_FACTOR,
    MAX_PARTITIONS,
    TOPIC_ALREADY_EXISTS,
    Topic,
    TopicError,
    TopicRegistry,
    validate_topic_name,
)

log = logging.getLogger(__name__)

NOT_LEADER_OR_FOLLOWER = 6
LEADER_NOT_AVAILABLE = 5
UNKNOWN_TOPIC_OR_PARTITION = 3
NOT_CONTROLLER = 41
REQUEST_TIMED_OUT = 7
UNKNOWN_SERVER_ERROR = -1
KAFKA_STORAGE_ERROR = 56
CONTROLLER_VOTERS = 3
CONTROLLER_SEGMENT_BYTES = 1 << 20
"""Segment size of the controller group's log (about 3,000 metadata commands each)."""
_RESULTS_KEPT = 100_000
_TRANSFER_DEADLINE_S = 3.0
METADATA_LEADER_WAIT_S = 0.5
"""How long a Metadata request waits for the partitions it names to have a live leader. A follower that
sees its leader's node die knows a new leader is typically one election round trip away (tens of ms);
naming the dead one instead makes librdkafka wait for its next 1 s scan before asking again."""
BALANCE_INTERVAL_S = 10.0
"""How often a leader hands a partition back to its preferred (first) replica, as Kafka's preferred
leader election does: leaders then spread over brokers the way placement spread first replicas."""

_BALANCE_STARTUP_SKEW_S = 5.0
"""Brokers started within this of each other count as one cluster start, not a restart (balancing goes on)."""

DUPLICATE_COMMIT_WAIT_S = 5.0
"""How long a retried idempotent batch found in the log but not yet committed waits for the commit."""

ProduceResult = tuple[int, int, int, int]
"""(error_code, base_offset, log_append_time, log_start_offset)"""


async def _ready(result: ProduceResult) -> ProduceResult:
    return result


def check_raft_layout(raft_dir: Path, partition_raft_log: bool) -> str | None:
    """What is wrong with starting on ``raft_dir`` with this ``--raft-log`` layout (None: nothing). A data
    directory written with one layout cannot be read with the other, and a broker starting with
    ``separate`` would first delete the partition logs the other layout keeps as its Raft logs."""
    if not raft_dir.is_dir():
        return None
    for directory in sorted(raft_dir.glob("group-*")):
        if directory.name == f"group-{CONTROLLER_GROUP}":
            continue  # the controller group keeps a consensus SegmentLog in either layout
        if partition_raft_log and any(directory.glob("*.seg")):
            return (
                f"{directory} holds a separate Raft log (written with --raft-log separate); start this "
                "broker with --raft-log separate, or on an empty data directory"
            )
        if not partition_raft_log and (directory / "entries").exists():
            return (
                f"{directory} is the Raft side of a partition log (written with --raft-log partition); "
                "start this broker with --raft-log partition, or on an empty data directory"
            )
    return None


class _Inflight:
    """An idempotent batch proposed by this leader and not yet committed: a retry of it waits for its
    result, and the next batch of the same producer is checked as if it were already in the log."""

    __slots__ = ("epoch", "first_seq", "last_seq", "max_timestamp", "pid", "result")

    def __init__(self, header: BatchHeader) -> None:
        self.pid = header.producer_id
        self.epoch = header.producer_epoch
        self.first_seq = header.base_sequence
        self.last_seq = header.last_sequence
        self.max_timestamp = header.max_timestamp
        self.result: asyncio.Future[ProduceResult] = asyncio.get_running_loop().create_future()

    async def wait(self) -> ProduceResult:
        return await asyncio.shield(self.result)


class ReplicationService:
    def __init__(
        self,
        node_id: int,
        members: dict[int, Member],
        raft_dir: Path,
        raft_listen: str,
        registry: TopicRegistry,
        *,
        rack: str | None = None,
        partition_raft_log: bool = True,
        controller_snapshot_entries: int = DEFAULT_CONTROLLER_SNAPSHOT_ENTRIES,
        allow_broker_join: bool = False,
        raft_tls: TransportTls | None = None,
        auto_leader_rebalance: bool = True,
        cluster_id: str = "",
    ) -> None:
        if node_id not in members:
            raise ValueError(f"node id {node_id} is not in --cluster-members {sorted(members)}")
        self.node_id = node_id
        self.members = members
        self.cluster_id = cluster_id or cluster_id_of(members)
        self.allow_broker_join = allow_broker_join
        self.auto_leader_rebalance = auto_leader_rebalance
        """Kafka's auto.leader.rebalance.enable: _balance_loop moves leaderships to preferred replicas."""
        """Accept registrations of ids missing from ``members`` (see membership.Membership.admit)."""
        self.registry = registry
        self.producers: Any = None
        self.listener_endpoints: dict[str, str] = {}
        """This broker's advertised HOST:PORT per named Kafka listener, registered with the controller."""
        self.state = ControllerState()
        self.controller_rejected = 0
        """Controller entries refused when applied (invalid commands, see controller.validation)."""
        self.runtime = Runtime(
            RuntimeConfig(node_id, data_dir=raft_dir),
            self,
            listen=raft_listen,
            on_leader_change=self._on_leader_change,
            on_conf_change=self._on_conf_change,
            tls=raft_tls,
        )
        self._partitions: dict[int, tuple[str, int]] = {}
        """group id -> (topic, partition) for the groups hosted here."""
        self._results: OrderedDict[tuple[int, int], ProduceResult] = OrderedDict()
        self._tasks: set[asyncio.Task[Any]] = set()
        self.observe_commit: Callable[[float], None] | None = None
        """Metrics hook: seconds from proposing a produce batch until it is committed and applied here."""
        self.raft_dir = raft_dir
        # Before Membership: it writes the incarnation file whose absence tells Rejoin the disk is blank.
        self.rejoin = Rejoin(self)
        self.rejoin_driver = RejoinDriver(self)
        self.membership = Membership(self, rack)
        self.mover = Mover(self)
        self._boot_commit = 0
        self._hosting_changes: set[int] = set()
        self._replaying = False
        self.group_offsets = GroupOffsets(self)
        self._leaders_changed = asyncio.Event()
        self.partition_raft_log = partition_raft_log
        """Partition groups keep their Raft log in the partition's own segments (one write per replica);
        otherwise in a separate consensus SegmentLog, copied into the partition log as entries apply."""
        self._storages: dict[int, PartitionRaftStorage] = {}
        self._removing: dict[str, list[asyncio.Task[None]]] = {}
        """Deleted topic name -> its partitions' removals still running."""
        self._deferred_installs: set[str] = set()
        self._inflight: dict[int, list[_Inflight]] = {}
        self.controller_snapshot_entries = controller_snapshot_entries
        self._controller_snapshot_index = 0
        """Index of the controller group's latest snapshot here (taken or restored)."""
        self._controller_snapshotting = False
        self._controller_snapshot_again = False
        """A snapshot was asked for while one was being taken (maybe of an index before the reason)."""

    @property
    def controller_voters(self) -> list[int]:
        return sorted(self.members)[:CONTROLLER_VOTERS]

    async def start(self) -> None:
        await self.runtime.start()
        for m in self.members.values():
            if m.node_id != self.node_id:
                self.runtime.add_node(m.node_id, m.raft_address)
        voters = self.controller_voters
        learners = [n for n in sorted(self.members) if n not in voters]

        # Small segments: compaction after a snapshot frees whole segments only, and metadata grows slowly.
        controller_dir = self.raft_dir / f"group-{CONTROLLER_GROUP}"

        def open_controller_log() -> RaftStorage:
            return SegmentLog(controller_dir, segment_bytes=CONTROLLER_SEGMENT_BYTES)

        def reopen_controller_log() -> RaftStorage:
            drop_cached_pages(controller_dir)
            return open_controller_log()

        # A storage error stops the controller group here like any other (the broker no longer votes or
        # leads in it) until its log is re-opened from disk; the partitions' groups carry on.
        await self.runtime.create_group(
            CONTROLLER_GROUP, voters, learners, storage=open_controller_log(), reopen=reopen_controller_log
        )
        self._spawn(self.rejoin.run())
        self._spawn(self.rejoin_driver.run())
        self._start_membership()
        self._spawn(self._balance_loop())
        self.group_offsets.start()

    async def _balance_loop(self) -> None:
        while True:
            await asyncio.sleep(BALANCE_INTERVAL_S)
            if not self.auto_leader_rebalance:
                continue
            for gid, (name, index) in list(self._partitions.items()):
                meta = self.state.topics.get(name)
                if meta is None or gid not in self.runtime.groups() or not self.runtime.is_leader(gid):
                    continue
                preferred = meta.replicas[index][0]
                # Only to a connected broker: a transfer to a dead one would stall proposals until it aborts.
                if preferred == self.node_id or not self.runtime.transport.is_connected(preferred):
                    continue
                if self._recently_restarted(preferred):
                    continue
                if preferred not in self._transfer_targets(gid):
                    continue  # rebuilding a wiped disk (or demoted for it): it cannot take over yet
                log.info("event=preferred_leader_transfer group=%d to=%d", gid, preferred)
                with contextlib.suppress(ConsensusError, ValueError, TimeoutError):
                    await asyncio.wait_for(self.runtime.transfer_leadership(gid, preferred), 1.0)

    def _recently_restarted(self, node: int) -> bool:
        """True while ``node`` has run for less than the runtime's ``successor_settled_s`` and started well
        after this broker (not a whole cluster starting together): its clients saw it fail moments ago and
        back off reconnecting to it (librdkafka: up to 10 s), so leadership handed to it now would stall
        their produce for that long. Preferred leadership returns to it once it has settled."""
        transport = self.runtime.transport
        up = transport.peer_uptime(node)
        if up is None:
            return True
        settled = self.runtime.config.successor_settled_s
        return up < settled and transport.uptime() - up > _BALANCE_STARTUP_SKEW_S

    async def stop(self) -> None:
        self.group_offsets.close()
        await self._hand_over_leaderships()
        for task in list(self._tasks):
            task.cancel()
        await self.runtime.stop()

    async def _hand_over_leaderships(self) -> tuple[int, int]:
        """Move every leadership held here to another voter so clients see a new leader at once.
        Returns (moved, of): how many of the groups led here have another leader now."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _TRANSFER_DEADLINE_S
        led = [g for g in self.runtime.groups() if self.runtime.is_leader(g)]
        for gid in led:
            others = self._transfer_targets(gid)
            if others:
                with contextlib.suppress(ConsensusError, TimeoutError):
                    await asyncio.wait_for(self.runtime.transfer_leadership(gid, others[0]), 1.0)
        # Polls leadership against a deadline: the runtime offers no per-group "leadership moved" event.
        while any(self.runtime.is_leader(g) for g in led) and loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        still = [g for g in led if self.runtime.is_leader(g)]
        log.info(
            "event=leaderships_handed_over node=%d moved=%d of=%d",
            self.node_id,
            len(led) - len(still),
            len(led),
        )
        return len(led) - len(still), len(led)

    def _transfer_targets(self, gid: int) -> list[int]:
        """Voters of ``gid`` other than this broker that may take its leadership: not one rebuilding a wiped
        disk (it never campaigns, so a transfer to it would only stall proposals until it aborts)."""
        progress = self.runtime.leader_progress(gid)
        recovering = progress.recovering if progress is not None else frozenset()
        voters = self.runtime.conf_state(gid).voters
        return [v for v in voters if v != self.node_id and v not in recovering]

    def partition_of_group(self, gid: int) -> tuple[str, int] | None:
        return self._partitions.get(gid)

    # ------------------------------------------------------------------ state machine (runtime loop)

    def apply(self, group: int, entries: Sequence[Entry]) -> None:
        if group == CONTROLLER_GROUP:
            for e in entries:
                self._replaying = e.index <= self._boot_commit
                try:
                    change = self.state.apply(e.data)
                except (ValueError, KeyError, TypeError, AttributeError) as exc:
                    # Deterministic on every broker (controller.validation): the state is unchanged.
                    log.error("event=controller_entry_rejected index=%d error=%r", e.index, str(exc)[:500])
                    self.controller_rejected += 1
                    continue
                if change is not None:
                    try:
                        self._act_on(change)
                    except OSError as exc:
                        # The entry is applied (the metadata state has it); what this broker does about it
                        # locally (a topic's directories on a full disk) is retried until it succeeds.
                        log.error(
                            "event=controller_action_storage_error kind=%s topic=%s errno=%s error=%r",
                            change.kind,
                            change.topic.name if change.topic is not None else "",
                            exc.errno,
                            str(exc),
                        )
                        self._spawn(self._act_on_later(change))
            if entries:
                self._maybe_snapshot_controller(entries[-1].index)
            return
        where = self._partitions.get(group)
        if where is None:
            log.error("entries for group %d which hosts no partition here", group)
            return
        storage = self._storages.get(group)
        if storage is not None:
            self._apply_shared(group, storage, where[0], where[1], entries)
            return
        for e in entries:
            self._results[(group, e.index)] = self._apply_batch(where[0], where[1], e)
            if len(self._results) > _RESULTS_KEPT:
                self._results.popitem(last=False)

    def _act_on(self, change: Change) -> None:
        """What this broker does when the controller state changed (one applied entry, or a snapshot)."""
        if change.kind in ("broker", "target", "reassigned"):
            self._on_membership_change(change)
            return
        if change.kind == "broker_configs":
            self._apply_broker_configs()
            return
        assert change.topic is not None, change
        if change.kind == "created":
            self._install_topic(change.topic)
        elif change.kind == "deleted":
            self._remove_topic(change.topic)
        elif change.kind == "records_deleted":
            self._apply_log_start(change.topic)
        elif change.kind == "configs":
            self._apply_configs(change.topic)
        else:
            self._add_partitions(change.topic, change.first_new)

    async def _act_on_later(self, change: Change) -> None:
        """Retry a topic's local install or partition addition that a storage error stopped part-way
        (both resume from the partitions already open); gives up when the topic is gone or replaced."""
        meta = change.topic
        if meta is None or change.kind not in ("created", "extended"):
            return  # the other actions spawn their own retrying tasks or touch no disk
        delay = 1.0
        while True:
            await asyncio.sleep(delay)
            current = self.state.topics.get(meta.name)
            if current is None or current.topic_id != meta.topic_id:
                return
            try:
                if change.kind == "created":
                    self._install_topic(current)
                else:
                    self._add_partitions(current, change.first_new)
            except OSError as exc:
                delay = min(2 * delay, 10.0)
                log.warning("event=controller_action_retry_failed topic=%s error=%r", meta.name, str(exc))
                continue
            return

    def _maybe_snapshot_controller(self, applied: int) -> None:
        if applied - self._controller_snapshot_index >= self.controller_snapshot_entries:
            self._request_controller_snapshot()

    def _on_conf_change(self, group: int, index: int, conf: ConfState) -> None:
        # The Raft core refuses a snapshot whose configuration lacks the receiver, so a broker added to the
        # controller group after the latest snapshot could never catch up (the entries before it are gone)
        # until the next one: snapshot again now, so whoever leads has one naming it.
        if group == CONTROLLER_GROUP and self._controller_snapshot_index > 0:
            log.info("event=controller_snapshot_for_conf_change index=%d voters=%s", index, list(conf.voters))
            self._request_controller_snapshot()

    def _request_controller_snapshot(self) -> None:
        if self._controller_snapshotting:
            self._controller_snapshot_again = True
            return
        self._controller_snapshotting = True
        self._controller_snapshot_again = False
        self._spawn(self._snapshot_controller())

    async def _snapshot_controller(self) -> None:
        """Snapshot the controller state and compact the group's log up to it. Every broker does this with
        its own copy (as etcd does), so a restart replays only the entries after its latest snapshot."""
        try:
            # Read together, with no await in between: the runtime applies entries only inside its loop,
            # so on this event loop the state reflects exactly the entries applied up to ``index``.
            index = self.runtime.applied(CONTROLLER_GROUP)
            data = self.state.to_snapshot()
            await self.runtime.snapshot(CONTROLLER_GROUP, index, data)
        except (ConsensusError, ValueError) as exc:
            # Stopping, a newer snapshot arrived from the leader, or a configuration change was applied
            # before the runtime got to it: the next applied entry tries again.
            log.info("event=controller_snapshot_skipped reason=%r", str(exc))
            return
        except Exception:
            # A disk error: the log keeps growing until a later attempt succeeds; say so loudly.
            log.exception("event=controller_snapshot_failed node=%d", self.node_id)
            return
        finally:
            self._controller_snapshotting = False
            if self._controller_snapshot_again:
                self._request_controller_snapshot()
        self._controller_snapshot_index = max(self._controller_snapshot_index, index)
        log.info("event=controller_snapshot node=%d index=%d bytes=%d", self.node_id, index, len(data))

    def _apply_shared(
        self, group: int, storage: PartitionRaftStorage, topic: str, index: int, entries: Sequence[Entry]
    ) -> None:
        """The batches are in the log already (written as they were appended); committing them moves the
        high watermark and answers their producers."""
        partition = self.registry.partition(topic, index)
        assert partition is not None, (topic, index)
        hw = partition.high_watermark
        for e in entries:
            found = storage.data_range(e.index)
            if found is None:
                continue
            base, hw = found
            partition.leader_epoch = max(partition.leader_epoch, e.term)
            header = parse_header(e.data)
            append_time = (
                header.max_timestamp if header.timestamp_type is TimestampType.LOG_APPEND_TIME else -1
            )
            self._results[(group, e.index)] = (0, base, append_time, partition.log_start_offset)
            if len(self._results) > _RESULTS_KEPT:
                self._results.popitem(last=False)
        partition.advance_hw(hw)
        if entries:
            storage.release(entries[-1].index)

    def _apply_batch(self, topic: str, index: int, e: Entry) -> ProduceResult:
        partition = self.registry.partition(topic, index)
        assert partition is not None, (topic, index)
        partition.leader_epoch = max(partition.leader_epoch, e.term)
        hook = self.producers.before_write_hook(topic, index) if self.producers is not None else None
        try:
            info = partition.append(e.data, before_write=hook)
        except DuplicateBatchError as dup:
            return 0, dup.base_offset, -1, partition.log_start_offset
        except ValueError as exc:
            code = getattr(exc, "error_code", None)
            if code is None:
                log.exception("batch at raft index %d of %s-%d rejected", e.index, topic, index)
                return UNKNOWN_SERVER_ERROR, -1, -1, partition.log_start_offset
            return int(code), -1, -1, partition.log_start_offset
        return 0, info.base_offset, info.log_append_time, info.log_start_offset

    def restore(self, group: int, snapshot: Snapshot) -> None:
        if group == CONTROLLER_GROUP:
            self._restore_controller(snapshot)
            return
        storage = self._storages.get(group)
        where = self._partitions.get(group)
        if storage is None or where is None:
            # A separate Raft log takes no snapshots, so none can arrive; refusing beats losing state.
            raise RuntimeError(f"group {group}: snapshots need the partition's log as its Raft log")
        partition = self.registry.partition(*where)
        assert partition is not None, where
        # The log restarts at the snapshot's offset (installed from the leader) or starts there (retention).
        # Producer state already matches the log: the storage's truncation callback rebuilt it.
        partition.advance_hw(max(storage.snapshot_offset, partition.log_start_offset))
        log.info(
            "event=partition_snapshot_restored group=%d topic=%s partition=%d index=%d offset=%d",
            group,
            where[0],
            where[1],
            snapshot.meta.index,
            storage.snapshot_offset,
        )

    def _restore_controller(self, snapshot: Snapshot) -> None:
        """Replace the controller state with the snapshot's and act on the difference, as applying the
        entries it stands for would have. Raises ValueError for a snapshot this broker cannot read (at
        start-up the broker then refuses to start rather than run on a wrong state)."""
        new = ControllerState.from_snapshot(snapshot.data)
        # The runtime restores a snapshot found on disk while it creates the group at start-up: everything
        # in it was committed before this boot, which ``apply`` treats as replaying (so partition groups
        # with no data here wait for the replay to end). One from the leader holds entries new here.
        self._replaying = CONTROLLER_GROUP not in self.runtime.groups()
        old, self.state = self.state, new
        self._controller_snapshot_index = snapshot.meta.index
        changes = changes_between(old, new)
        for change in changes:
            self._act_on(change)
        self.membership.changed.set()
        log.info(
            "event=controller_snapshot_restored node=%d index=%d bytes=%d topics=%d changes=%d replaying=%s",
            self.node_id,
            snapshot.meta.index,
            len(snapshot.data),
            len(new.topics),
            len(changes),
            self._replaying,
        )

    def _make_storage(self, gid: int, name: str, index: int) -> PartitionRaftStorage | None:
        """Open the partition's log as the Raft log of its group (None: keep a separate Raft log)."""
        if not self.partition_raft_log:
            return None
        partition = self.registry.partition(name, index)
        if partition is None or not isinstance(partition.log, PartitionLog):
            return None
        producers = self.producers

        def on_append(header: BatchHeader) -> None:
            if producers is not None:
                producers.on_appended(name, index, header)

        plog = partition.log

        def on_truncate(offset: int) -> None:
            if producers is None:
                return
            if plog.log_start_offset == plog.log_end_offset == offset:
                # Restarted empty from the leader's snapshot: this replica's own producer snapshots may
                # hold batches the leader never had; like a new Kafka replica, it starts without them.
                for _, path in list_snapshots(plog.directory):
                    path.unlink(missing_ok=True)
            # Rebuilt at once (newest snapshot below the new end, then the headers after it) so the
            # batches appended next keep it current: this replica may lead soon.
            producers.forget_partition(name, index)
            producers.state(name, index)

        storage = PartitionRaftStorage(
            partition.log, self.raft_dir / f"group-{gid}", on_append=on_append, on_truncate=on_truncate
        )
        partition.raft_storage = storage
        partition.raft_hw = storage.snapshot_offset
        self._storages[gid] = storage
        if producers is not None:
            # Loaded now (snapshot + the batch headers after it) and kept current as batches arrive, so
            # the first idempotent produce after this replica becomes leader finds it ready: loading it then
            # would walk the whole log while producers wait out a failover.
            producers.state(name, index)
        return storage

    def _reopen_partition(self, gid: int) -> RaftStorage:
        """After a storage error: the partition's log and its Raft files opened again from disk (both
        recover their tails), replacing the in-memory ones, which are not trusted any more."""
        where = self._partitions.get(gid)
        partition = self.registry.partition(*where) if where is not None else None
        if where is None or partition is None:
            raise RuntimeError(f"group {gid} is no partition hosted here")
        old = self._storages.pop(gid, None)
        if old is not None:
            with contextlib.suppress(Exception):
                old.close()
        # What was committed and applied here stays committed: the high watermark does not move back.
        hw = partition.raft_hw
        drop_cached_pages(partition.log.directory)
        drop_cached_pages(self.raft_dir / f"group-{gid}")
        self.registry.reopen_log(partition)
        if self.producers is not None:
            self.producers.forget_partition(*where)
        storage = self._make_storage(gid, *where)
        if storage is None:
            raise RuntimeError(f"group {gid}: the partition log is not its Raft log")
        if hw is not None:
            partition.raft_hw = max(hw, storage.snapshot_offset)
        return storage

    def storage_failed(self, topic: str, index: int) -> bool:
        """This broker's copy of the partition is stopped by a storage error (KAFKA_STORAGE_ERROR)."""
        meta = self.state.topics.get(topic)
        if meta is None or not 0 <= index < len(meta.replicas):
            return False
        gid = meta.group(index)
        return gid in self.runtime.groups() and self.runtime.storage_error(gid) is not None

    async def apply_retention(self) -> int:
        """Retention for partitions whose log is their Raft log: a snapshot, then the oldest segments go
        (see PartitionRaftStorage.retain). Returns how many Raft entries were dropped."""
        dropped = 0
        runtime = self.runtime

        def retain(gid: int, storage: Any) -> int:
            if not isinstance(storage, PartitionRaftStorage) or storage.log.closed:
                return 0
            applied, conf, conf_index = runtime.applied(gid), runtime.conf_state(gid), runtime.conf_index(gid)
            dropped = storage.retain(applied, conf, conf_index)
            floor = self._records_floor(gid)
            if floor > storage.snapshot_offset:
                # DeleteRecords not yet reclaimed (the floor was not applied here when it was set).
                dropped += storage.retain_before(floor, applied, conf, conf_index)
            return dropped

        for gid in list(self._storages):
            if gid not in runtime.groups():
                continue
            try:
                dropped += await runtime.with_storage(gid, functools.partial(retain, gid))
            except ConsensusError:
                continue
            except Exception:
                log.exception("retention of raft group %d failed", gid)
        return dropped

    async def swap_cleaned_segment(
        self, topic: str, index: int, plog: PartitionLog, segment: Segment, cleaned: Path
    ) -> Segment | None:
        """The log cleaner's swap of a compacted segment into a partition whose log is its Raft log, run
        under the group's storage lock (never beside a sync); None when the group or log went meanwhile."""
        meta = self.state.topics.get(topic)
        if meta is None or not 0 <= index < len(meta.replicas):
            return None
        gid = meta.group(index)
        storage = self._storages.get(gid)
        if gid not in self.runtime.groups() or not isinstance(storage, PartitionRaftStorage):
            return None

        def swap(_storage: Any) -> Segment | None:
            if storage.log is not plog or plog.closed:
                return None
            return plog.replace_cleaned(segment, cleaned)

        try:
            return await self.runtime.with_storage(gid, swap)
        except ConsensusError:
            return None

    def _records_floor(self, gid: int) -> int:
        where = self._partitions.get(gid)
        partition = self.registry.partition(*where) if where is not None else None
        return partition.records_floor if partition is not None else 0

    def _apply_log_start(self, meta: TopicMeta) -> None:
        """DeleteRecords committed: every local copy hides the records before the new log start at once,
        and the Raft groups hosted here drop the entries wholly before it (a snapshot, as retention)."""
        topic = self.registry.get(meta.name)
        if topic is None or topic.topic_id != meta.topic_id:
            return
        for index, offset in meta.log_start.items():
            if index < len(topic.partitions) and offset > topic.partitions[index].records_floor:
                partition = topic.partitions[index]
                partition.records_floor = offset
                gid = meta.group(index)
                if gid in self._storages:
                    self._spawn(self._reclaim(gid, offset))
                elif gid in self._partitions and not partition.is_memory and not partition.log.closed:
                    # A separate Raft log: the partition log is a copy of what was applied (rebuilt from
                    # the Raft log on restart), trimmed as retention trims it.
                    partition.log.delete_records_before(min(offset, partition.log.log_end_offset))

    async def _reclaim(self, gid: int, offset: int) -> None:
        runtime = self.runtime

        def cut(storage: Any) -> int:
            if not isinstance(storage, PartitionRaftStorage) or storage.log.closed:
                return 0
            return storage.retain_before(
                offset, runtime.applied(gid), runtime.conf_state(gid), runtime.conf_index(gid)
            )

        try:
            await runtime.with_storage(gid, cut)
        except ConsensusError:
            return  # the group went or is stopping; the retention loop tries again
        except Exception:
            log.exception("deleting records of raft group %d failed", gid)

    async def delete_records(self, name: str, log_start: dict[int, int]) -> None:
        """Commit new log starts for partitions of ``name`` through the controller log (this broker leads
        them and checked the offsets); returns once applied here. Raises TopicError."""
        meta = self.state.topics.get(name)
        if meta is None:
            raise TopicError(UNKNOWN_TOPIC_OR_PARTITION, f"topic {name!r} does not exist")
        if self.runtime.is_leader(CONTROLLER_GROUP):
            await self._propose_metadata(encode(DeleteRecords(name, meta.topic_id, log_start)))
        else:
            await self._forward_delete_records(name, log_start)
        log.info(
            "event=records_deleted topic=%s log_start=%s via_controller_leader=%s",
            name,
            log_start,
            self.controller_id(),
        )
        # The controller answered once committed there; wait (briefly) for it to be applied here too.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + METADATA_LEADER_WAIT_S * 4
        while loop.time() < deadline:
            current = self.state.topics.get(name)
            if current is None or all(current.log_start.get(p, 0) >= o for p, o in log_start.items()):
                return
            await asyncio.sleep(0.01)  # polls against a deadline: no "controller applied" event

    def _apply_configs(self, meta: TopicMeta) -> None:
        """A topic's configs changed in the controller log: the partition logs here apply them."""
        topic = self.registry.get(meta.name)
        if topic is None or topic.topic_id != meta.topic_id:
            return
        topic.configs = dict(meta.configs)
        # Over the broker-level defaults (message.max.bytes, dynamic broker configs), as at open.
        self.registry.apply_log_config(topic)
        log.info("event=topic_configs_applied topic=%s", meta.name)

    def _apply_broker_configs(self) -> None:
        """The dynamic broker configs changed in the controller log (or were loaded from a snapshot): this
        broker's logs take the values in force here (its own entity over the cluster-wide one)."""
        self.registry.set_broker_layers(
            broker_configs.layers(self.state.broker_configs, self.node_id, self.registry.static_defaults)
        )
        log.info(
            "event=broker_configs_applied node=%d configs=%s",
            self.node_id,
            broker_configs.merged(self.registry.broker_layers[:2]),
        )

    async def alter_broker_configs(self, entity: str, configs: dict[str, str]) -> None:
        """Commit an entity's complete set of dynamic broker configs (validated) through the controller
        log (this broker leads it); returns once applied here."""
        await self._propose_metadata(encode(AlterBrokerConfigs(entity, configs)))

    async def alter_topic_configs(self, name: str, configs: dict[str, str]) -> None:
        """Commit a topic's new (validated) config overrides through the controller log (this broker leads
        it); returns once applied here."""
        meta = self.state.topics.get(name)
        if meta is None:
            raise TopicError(UNKNOWN_TOPIC_OR_PARTITION, f"topic {name!r} does not exist")
        await self._propose_metadata(encode(AlterConfigs(name, meta.topic_id, configs)))

    async def forward_alter_configs(self, resource: Any, validate_only: bool) -> None:
        """IncrementalAlterConfigs of one topic, to the controller's leader (which answers once the change
        is committed); its error is raised as a TopicError. Waits briefly for the change to apply here."""
        from kio.schema.incremental_alter_configs.v1 import request as iac_req  # noqa: PLC0415
        from kio.static.primitive import i8  # noqa: PLC0415

        from streamraft_broker.replication import membership_rpc  # noqa: PLC0415

        host, port = self.controller_address()
        body = iac_req.IncrementalAlterConfigsRequest(
            resources=(
                iac_req.AlterConfigsResource(
                    resource_type=i8(int(resource.resource_type)),
                    resource_name=str(resource.resource_name),
                    configs=tuple(
                        iac_req.AlterableConfig(
                            name=str(c.name), config_operation=i8(int(c.config_operation)), value=c.value
                        )
                        for c in resource.configs
                    ),
                ),
            ),
            validate_only=validate_only,
        )
        before = self.runtime.applied(CONTROLLER_GROUP)
        try:
            answer = await membership_rpc.call(host, port, 44, 1, body)
        except membership_rpc.ControllerUnreachable as exc:
            raise TopicError(NOT_CONTROLLER, f"controller unreachable: {exc}") from None
        for r in answer.responses:
            if int(r.error_code) != 0:
                raise TopicError(
                    int(r.error_code), r.error_message or f"controller error {int(r.error_code)}"
                )
        if validate_only:
            return
        # Committed on the controller: applied here a moment later (so a DescribeConfigs sent here next sees
        # it). Polls against a deadline: there is no "controller applied up to" event.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + METADATA_LEADER_WAIT_S * 4
        target = self.runtime.status(CONTROLLER_GROUP).hard_state.commit
        while self.runtime.applied(CONTROLLER_GROUP) < max(target, before + 1) and loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.01)

    async def _forward_delete_records(self, name: str, log_start: dict[int, int]) -> None:
        """DeleteRecords to the controller's leader, which commits it as forwarded by a broker (see
        handlers.delete_records); the first partition error it answers is raised as a TopicError."""
        from kio.schema.delete_records.v2 import request as dr_req  # noqa: PLC0415
        from kio.schema.types import TopicName  # noqa: PLC0415
        from kio.static.primitive import i32, i32Timedelta, i64  # noqa: PLC0415

        from streamraft_broker.replication import membership_rpc  # noqa: PLC0415

        host, port = self.controller_address()
        body = dr_req.DeleteRecordsRequest(
            topics=(
                dr_req.DeleteRecordsTopic(
                    name=TopicName(name),
                    partitions=tuple(
                        dr_req.DeleteRecordsPartition(partition_index=i32(p), offset=i64(o))
                        for p, o in sorted(log_start.items())
                    ),
                ),
            ),
            timeout=i32Timedelta.parse(datetime.timedelta(seconds=5)),
        )
        try:
            answer = await membership_rpc.call(host, port, 21, 2, body)
        except membership_rpc.ControllerUnreachable as exc:
            raise TopicError(NOT_CONTROLLER, f"controller unreachable: {exc}") from None
        for t in answer.topics:
            for p in t.partitions:
                if int(p.error_code) != 0:
                    raise TopicError(int(p.error_code), f"controller answered error {int(p.error_code)}")

    def _install_topic(self, meta: TopicMeta) -> None:
        existing = self.registry.get(meta.name)
        if existing is not None:
            if existing.topic_id == meta.topic_id and len(existing.partitions) < len(meta.replicas):
                # An earlier install stopped part-way (a storage error, see _act_on_later): finish it.
                self._open_partitions(existing, meta, len(existing.partitions))
                for listener in self.registry._listeners:
                    listener(meta.name, existing)
                log.info("event=topic_install_finished topic=%s", meta.name)
            return
        try:
            self.registry.partition_dir(meta.name, 0)  # every partition's is as safe as the first's
        except UnsafePath as exc:
            # Only from a log or snapshot written before apply-time validation: never served.
            log.error("event=topic_not_installed reason=unsafe_path error=%r", str(exc))
            return
        pending = [t for t in self._removing.pop(meta.name, []) if not t.done()]
        if pending:
            # Deleted moments ago and its partitions still closing: they share the directories.
            self._deferred_installs.add(meta.name)
            self._spawn(self._install_after(meta, pending))
            return
        topic = Topic(meta.name, meta.topic_id, dict(meta.configs))
        self.registry.topics[meta.name] = topic
        self._open_partitions(topic, meta, 0)
        for listener in self.registry._listeners:
            listener(meta.name, topic)
        log.info("topic applied from controller log", extra={"topic": meta.name})

    def _open_partitions(self, topic: Topic, meta: TopicMeta, first: int) -> None:
        for i in range(first, len(meta.replicas)):
            if not self.partition_raft_log:
                directory = self.registry.partition_dir(meta.name, i)
                shutil.rmtree(directory, ignore_errors=True)  # rebuilt from the separate Raft log
            topic.partitions.append(self.registry._open_partition(topic, i))
            topic.partitions[i].records_floor = meta.log_start.get(i, 0)
            if meta.replicas[i] != meta.origin[i] or i in meta.targets:
                # Only from a snapshot: the partition moved after it was created. Its group must start from
                # its origin (as a learner if this broker joined through a move): _ensure_hosting decides.
                if self.node_id in meta.replicas[i] or self.node_id in meta.targets.get(i, ()):
                    self._spawn(self._ensure_hosting(meta.name, i))
                continue
            if self.node_id in meta.replicas[i]:
                gid = meta.group(i)
                if self._replaying and not (self.raft_dir / f"group-{gid}").exists():
                    # Replaying the controller log with no Raft data for this group: a later move may have
                    # removed this replica, so decide once the replay is done (never bootstrap it again).
                    self._spawn(self._ensure_hosting(meta.name, i))
                    continue
                self._partitions[gid] = (meta.name, i)
                if not self._replaying:
                    self.rejoin.note_new_group(gid)
                self._spawn(self._create_group_as(gid, meta.replicas[i], []))

    async def _install_after(self, meta: TopicMeta, removals: list[asyncio.Task[None]]) -> None:
        await asyncio.gather(*removals, return_exceptions=True)
        self._deferred_installs.discard(meta.name)
        # Still this incarnation (not deleted again meanwhile); a restored snapshot may hold a new object.
        current = self.state.topics.get(meta.name)
        if current is not None and current.topic_id == meta.topic_id:
            self._install_topic(current)

    def _add_partitions(self, meta: TopicMeta, first_new: int) -> None:
        if meta.name in self._deferred_installs:
            return  # the deferred install opens every partition meta has by then
        topic = self.registry.get(meta.name)
        if topic is None:
            log.error("event=partitions_not_added topic=%r reason=topic_not_installed", meta.name[:300])
            return
        assert len(topic.partitions) <= len(meta.replicas), (meta.name, first_new)
        # From what is open: an earlier install or addition may have stopped part-way (a storage error).
        self._open_partitions(topic, meta, len(topic.partitions))
        log.info("partitions added from controller log", extra={"topic": meta.name})

    def _remove_topic(self, meta: TopicMeta) -> None:
        topic = self.registry.topics.pop(meta.name, None)
        if topic is None:
            return
        removals: list[asyncio.Task[None]] = []
        for p in topic.partitions:
            gid = meta.group(p.index)
            directory = self.registry.partition_dir(meta.name, p.index)
            if self._partitions.pop(gid, None) is not None:
                # The group goes first: its storage may be this partition's log.
                removals.append(
                    self._spawn(self._remove_group(gid, then_close=(p, directory, meta.topic_id)))
                )
            else:
                p.close()
                self._delete_partition_dir(directory, meta.topic_id)
        self._removing = {n: ts for n, ts in self._removing.items() if not all(t.done() for t in ts)}
        if removals:
            # A topic created again under this name must not open the directory until it is gone.
            self._removing[meta.name] = removals
        for listener in self.registry._listeners:
            listener(meta.name, None)
        log.info("topic deleted from controller log", extra={"topic": meta.name})

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    @staticmethod
    def _delete_partition_dir(directory: Path, topic_id: uuid.UUID) -> None:
        """Delete a deleted topic's partition directory, unless it holds a later topic of the same name (a
        broker replaying the controller log meets the deletion after the directory was reused)."""
        if partition_metadata.holds_other_topic(directory, topic_id):
            log.info("event=partition_dir_kept directory=%s reason=holds_another_topic_id", directory)
            return
        shutil.rmtree(directory, ignore_errors=True)

    async def _remove_group(self, gid: int, then_close: tuple[Any, Path, uuid.UUID] | None = None) -> None:
        try:
            await self.runtime.remove_group(gid, delete_data=True)
        except Exception:
            log.exception("cannot remove raft group %d", gid)
        storage = self._storages.pop(gid, None)
        self._inflight.pop(gid, None)
        if storage is not None:
            shutil.rmtree(storage.dir, ignore_errors=True)
        if then_close is not None:
            partition, directory, topic_id = then_close
            partition.close()
            self._delete_partition_dir(directory, topic_id)

    def _on_leader_change(self, change: LeaderChange) -> None:
        # Wake Metadata requests waiting for a live leader (a fresh Event: waiters already woken keep theirs).
        self._leaders_changed.set()
        self._leaders_changed = asyncio.Event()
        where = self._partitions.get(change.group)
        if where is None:
            return
        partition = self.registry.partition(*where)
        if partition is not None:
            partition.leader_epoch = max(partition.leader_epoch, change.term)

    # ------------------------------------------------------------------ what handlers ask

    def controller_id(self) -> int:
        leader = self.runtime.leader(CONTROLLER_GROUP)
        return leader if leader else -1

    def brokers(self) -> list[Member | BrokerReg]:
        """Registered brokers not decommissioned, plus static members not registered yet (a partition may
        already name one as its leader: a client must find its address in Metadata)."""
        registered: list[Member | BrokerReg] = [
            b for _, b in sorted(self.state.brokers.items()) if b.state != "decommissioned"
        ]
        registered += [self.members[n] for n in sorted(self.members) if n not in self.state.brokers]
        return sorted(registered, key=lambda b: b.node_id)

    def partition_count(self, topic: str) -> int:
        """Partitions ``topic`` has in the controller state (0 if unknown)."""
        meta = self.state.topics.get(topic)
        return len(meta.replicas) if meta is not None else 0

    def partition_view(self, topic: str, index: int) -> tuple[int, int, int, list[int]]:
        """(error_code, leader, leader_epoch, replicas) for Metadata."""
        meta = self.state.topics.get(topic)
        if meta is None or not 0 <= index < len(meta.replicas):
            return UNKNOWN_TOPIC_OR_PARTITION, -1, -1, []
        replicas = meta.replicas[index]
        gid = meta.group(index)
        if gid in self._partitions and gid not in self.runtime.groups():
            # This broker's replica is being created (a new topic or partition): it cannot know the leader
            # yet, and a guess may name a follower (the client's first produce would fail).
            return LEADER_NOT_AVAILABLE, -1, -1, replicas
        if gid not in self._partitions or gid not in self.runtime.groups():
            return self._guess_leader(replicas)
        leader = self.runtime.leader(gid)
        if leader == 0:
            return LEADER_NOT_AVAILABLE, -1, self.runtime.term(gid), replicas
        return 0, leader, self.runtime.term(gid), replicas

    def _without_live_leader(self, groups: Sequence[int], dead: set[int]) -> list[int]:
        hosted = set(self.runtime.groups())
        pending = []
        for gid in groups:
            if gid in hosted:
                leader = self.runtime.leader(gid)
                if leader == 0 or leader in dead or not self.runtime.peer_alive(leader):
                    pending.append(gid)
        return pending

    async def await_live_leaders(self, partitions: Sequence[tuple[str, int]]) -> None:
        """Wait (at most METADATA_LEADER_WAIT_S) until every hosted group among ``partitions`` and the
        controller group has a leader whose node is alive, so Metadata names the new leader instead of a
        dead one (or none) while an election completes. The leaders' nodes are checked first
        (``confirm_alive``): a client whose connection to a leader just broke asks here for the new one a
        few ms before this broker would notice that death by itself."""
        groups = [CONTROLLER_GROUP]
        for name, index in partitions:
            meta = self.state.topics.get(name)
            if meta is not None and 0 <= index < len(meta.replicas):
                groups.append(meta.group(index))
        hosted = set(self.runtime.groups())
        groups = [g for g in groups if g in hosted]
        leaders = sorted({self.runtime.leader(g) for g in groups} - {0, self.node_id})
        transport = self.runtime.transport
        alive = await asyncio.gather(*(transport.confirm_alive(n) for n in leaders))
        dead = {n for n, ok in zip(leaders, alive, strict=True) if not ok}
        pending = self._without_live_leader(groups, dead)
        if not pending:
            return
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + METADATA_LEADER_WAIT_S
        while pending and loop.time() < deadline:
            # A leader change wakes this at once; the short slice bounds how late a change of liveness alone
            # (a node found dead without any leader change yet) is seen.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(0.05, deadline - loop.time())):
                    await self._leaders_changed.wait()
            pending = self._without_live_leader(pending, dead)
        log.info(
            "event=metadata_waited_for_leaders node=%d seconds=%.3f groups=%d still_pending=%d",
            self.node_id,
            loop.time() - started,
            len(groups),
            len(pending),
        )

    def _partition_settled(self, meta: TopicMeta, index: int) -> bool:
        """True when this broker can name the partition's elected leader: it hosts the group and knows the
        leader, and if that is itself, it has committed an entry of its term (a produce is accepted).
        A partition not replicated here counts as settled: this broker cannot see its election."""
        if self.node_id not in meta.replicas[index]:
            return True
        gid = meta.group(index)
        if gid not in self._partitions or gid not in self.runtime.groups():
            return False
        leader = self.runtime.leader(gid)
        if leader == 0:
            return False
        return leader != self.node_id or self.runtime.leader_ready(gid)

    async def await_partition_leaders(self, name: str, first: int, timeout_s: float) -> bool:
        """Wait (at most ``timeout_s``) until partitions ``first``.. of topic ``name`` have an elected leader
        as seen here (see ``_partition_settled``). CreateTopics and CreatePartitions answer after this, as
        Kafka's do once leaders are assigned: the first produce to a new partition then finds its leader
        instead of NOT_LEADER_OR_FOLLOWER. Returns whether all did in time."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, timeout_s)
        while True:
            meta = self.state.topics.get(name)
            if meta is None:
                return False  # deleted meanwhile
            pending = [i for i in range(first, len(meta.replicas)) if not self._partition_settled(meta, i)]
            remaining = deadline - loop.time()
            if not pending or remaining <= 0:
                return not pending
            # A leader change wakes this at once; the slice bounds how late a group created here or a
            # leader's first commit (neither is a leader change) is seen.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(0.02, remaining)):
                    await self._leaders_changed.wait()

    def _guess_leader(self, replicas: list[int]) -> tuple[int, int, int, list[int]]:
        """Not hosted here: name the first replica this broker is connected to (a wrong guess costs the
        client one retry; naming a dead broker would leave it retrying there until its metadata ages)."""
        for node in replicas:
            if self.runtime.transport.is_connected(node):
                return 0, node, 0, replicas
        return LEADER_NOT_AVAILABLE, -1, -1, replicas

    def leader_ready(self, topic: str, index: int) -> bool:
        """True when this replica leads the partition and has applied everything committed before its term:
        its high watermark is then never below one an earlier leader answered (ListOffsets,
        OffsetForLeaderEpoch). Unlike ``caught_up`` it holds under load, while new batches commit."""
        meta = self.state.topics.get(topic)
        if meta is None or not 0 <= index < len(meta.replicas):
            return False
        gid = meta.group(index)
        return gid in self.runtime.groups() and self.runtime.leader_ready(gid)

    def caught_up(self, topic: str, index: int) -> bool:
        """True when this replica leads the partition and has applied everything in its Raft log, so its
        log end offset is the partition's true end."""
        meta = self.state.topics.get(topic)
        if meta is None or not 0 <= index < len(meta.replicas):
            return False
        gid = meta.group(index)
        if gid not in self.runtime.groups() or not self.runtime.is_leader(gid):
            return False
        status = self.runtime.status(gid)
        return status.applied == status.last_index == status.hard_state.commit

    async def produce(self, topic: str, index: int, records: bytes | memoryview) -> ProduceResult:
        return await self.begin_produce(topic, index, records)

    def begin_produce(
        self, topic: str, index: int, records: bytes | memoryview, acks: int = -1
    ) -> Coroutine[Any, Any, ProduceResult]:
        """Proposes the batch now, before returning, and returns what to await for the result: batches
        begun in some order reach the partition's log in that order (a pipelined connection relies on it
        for an idempotent producer's in-flight requests). acks=-1 is answered once the batch is committed
        (fsynced on a majority); acks=1 (and 0), when the partition's log is its Raft log, once the batch
        is written to the leader's log (Kafka's promise: lost if the leader dies before a majority has
        it); with a separate Raft log every acks waits for the commit."""
        meta = self.state.topics.get(topic)
        if meta is None or not 0 <= index < len(meta.replicas):
            return _ready((UNKNOWN_TOPIC_OR_PARTITION, -1, -1, -1))
        gid = meta.group(index)
        if gid not in self.runtime.groups():
            return _ready((NOT_LEADER_OR_FOLLOWER, -1, -1, -1))
        if self.runtime.storage_error(gid) is not None:
            return _ready((KAFKA_STORAGE_ERROR, -1, -1, -1))
        if gid in self._storages:
            return self._begin_shared(topic, index, gid, records, acks)
        started = time.perf_counter()
        try:
            future = self.runtime.propose_nowait(gid, bytes(records))
        except ConsensusError as exc:
            log.debug("produce to %s-%d refused here: %s", topic, index, exc)
            return _ready((NOT_LEADER_OR_FOLLOWER, -1, -1, -1))
        return self._finish_produce(topic, index, gid, future, started)

    async def _finish_produce(
        self, topic: str, index: int, gid: int, future: asyncio.Future[int], started: float
    ) -> ProduceResult:
        try:
            raft_index = await future
        except StorageFailedError as exc:
            # This broker's disk failed under the partition: the client retries (and finds the new leader).
            log.warning("event=produce_storage_error topic=%s partition=%d error=%r", topic, index, str(exc))
            return KAFKA_STORAGE_ERROR, -1, -1, -1
        except ConsensusError as exc:
            # Not leader, leadership lost before commit, or stopping: the client retries at the leader.
            log.debug("produce to %s-%d not committed here: %s", topic, index, exc)
            return NOT_LEADER_OR_FOLLOWER, -1, -1, -1
        if self.observe_commit is not None:
            self.observe_commit(time.perf_counter() - started)
        result = self._results.pop((gid, raft_index), None)
        assert result is not None, f"no apply result for {topic}-{index} raft index {raft_index}"
        return result

    def _begin_shared(
        self, topic: str, index: int, gid: int, records: bytes | memoryview, acks: int
    ) -> Coroutine[Any, Any, ProduceResult]:
        """The leader validates the request's batches (and sets LogAppendTime) before proposing: what is
        proposed is what every replica stores. Each batch is its own Raft entry; an idempotent producer's
        batch is checked against the log plus this leader's batches still in flight."""
        partition = self.registry.partition(topic, index)
        if partition is None or not self.runtime.is_leader(gid):
            return _ready((NOT_LEADER_OR_FOLLOWER, -1, -1, -1))
        config = partition.log.config
        buf = bytearray(records)
        append_time = wall_clock_ms() if config.log_append_time else None
        batches: list[tuple[bytes, BatchHeader]] = []
        try:
            if not buf:
                raise InvalidRecordError(
                    KafkaErrorCode.CORRUPT_MESSAGE, "the records field holds no record batch"
                )
            view = memoryview(buf)
            pos = 0
            while pos < len(buf):
                header = validate_produce_batch(buf, pos, max_batch_bytes=config.max_message_bytes)
                header = assign_for_append(buf, pos, header, 0, leader_epoch=0, log_append_time=append_time)
                batches.append((bytes(view[pos : pos + header.size]), header))
                pos += header.size
            view.release()
        except InvalidRecordError as exc:
            return _ready((exc.error_code, -1, -1, partition.log_start_offset))
        started = time.perf_counter()
        pending: list[Coroutine[Any, Any, ProduceResult]] = []
        for data, header in batches:
            inflight: _Inflight | None = None
            if header.producer_id != NO_PRODUCER_ID and not header.is_control:
                verdict = self._check_producer(gid, topic, index, header)
                if isinstance(verdict, Rejected):
                    pending.append(_ready((int(verdict.error_code), -1, -1, partition.log_start_offset)))
                    break
                if isinstance(verdict, Duplicate):
                    pending.append(self._answer_duplicate(partition, verdict))
                    continue
                if isinstance(verdict, _Inflight):
                    pending.append(verdict.wait())
                    continue
                inflight = _Inflight(header)
            appended: asyncio.Future[int] | None = None
            if acks != -1:
                appended = asyncio.get_running_loop().create_future()
            try:
                future = self.runtime.propose_nowait(gid, data, appended)
            except StorageFailedError:
                pending.append(_ready((KAFKA_STORAGE_ERROR, -1, -1, -1)))
                break
            except ConsensusError as exc:
                log.debug("produce to %s-%d refused here: %s", topic, index, exc)
                pending.append(_ready((NOT_LEADER_OR_FOLLOWER, -1, -1, -1)))
                break
            if inflight is not None:
                self._inflight.setdefault(gid, []).append(inflight)
            finish = self._finish_shared(topic, index, gid, future, started, inflight)
            if appended is None:
                pending.append(finish)
            else:
                committed = asyncio.get_running_loop().create_task(finish)
                self._tasks.add(committed)
                committed.add_done_callback(self._tasks.discard)
                pending.append(self._leader_appended(gid, partition, header, appended, committed))
        if len(pending) == 1:
            return pending[0]
        return self._first_result(pending)

    async def _leader_appended(
        self,
        gid: int,
        partition: Any,
        header: BatchHeader,
        appended: asyncio.Future[int],
        committed: asyncio.Future[ProduceResult],
    ) -> ProduceResult:
        """acks=1: the answer once the batch is in the leader's log (its commit is still awaited, by
        ``committed``, for the producer bookkeeping and metrics)."""
        either: set[asyncio.Future[Any]] = {appended, committed}
        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        storage = self._storages.get(gid)
        if appended.done() and storage is not None:
            try:
                found = storage.data_range(appended.result())
            except Exception:  # cut off again already (a new leader): the commit's outcome says what
                found = None
            if found is not None:
                append_time = (
                    header.max_timestamp if header.timestamp_type is TimestampType.LOG_APPEND_TIME else -1
                )
                return 0, found[0], append_time, partition.log_start_offset
        return await committed

    @staticmethod
    async def _first_result(pending: list[Coroutine[Any, Any, ProduceResult]]) -> ProduceResult:
        """One answer for a request of several batches: the first error, else the first batch's offsets."""
        results = [await p for p in pending]
        for r in results:
            if r[0] != 0:
                return r
        return results[0]

    def _check_producer(
        self, gid: int, topic: str, index: int, header: BatchHeader
    ) -> Duplicate | Rejected | _Inflight | None:
        state = self.producers.state(topic, index) if self.producers is not None else None
        stored = state.entry(header.producer_id) if state is not None else None
        current = stored.copy() if stored is not None else None
        for f in self._inflight.get(gid, ()):
            if f.pid != header.producer_id:
                continue
            if current is not None and current.find(f.epoch, f.first_seq, f.last_seq) is not None:
                continue  # in the log already (appended, not yet committed)
            if (f.epoch, f.first_seq, f.last_seq) == (
                header.producer_epoch,
                header.base_sequence,
                header.last_sequence,
            ):
                return f
            if current is None:
                current = ProducerEntry(f.pid, f.epoch)
            if current.epoch != f.epoch:
                current.epoch = f.epoch
                current.batches.clear()
            current.batches.append(BatchMetadata(f.first_seq, f.last_seq, -1, -1, f.max_timestamp))
        scratch = ProducerStateManager(complete=state is not None and state.complete)
        if current is not None:
            scratch.restore([current], 0)
        verdict = scratch.check([header])
        if isinstance(verdict, Duplicate | Rejected):
            return verdict
        return None

    async def _answer_duplicate(self, partition: Any, dup: Duplicate) -> ProduceResult:
        """A retried batch already in the log: answer with its offsets once they are committed (an
        uncommitted copy could still be cut off by a new leader)."""
        if dup.base_offset < 0:
            # Known here only as still in flight (no offsets assigned yet): the producer's retry finds it
            # appended, with its offsets.
            return REQUEST_TIMED_OUT, -1, -1, -1
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DUPLICATE_COMMIT_WAIT_S
        while partition.high_watermark <= dup.last_offset:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return REQUEST_TIMED_OUT, -1, -1, -1
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await partition.data_event().wait()
        return 0, dup.base_offset, -1, partition.log_start_offset

    async def _finish_shared(  # noqa: PLR0917
        self,
        topic: str,
        index: int,
        gid: int,
        future: asyncio.Future[int],
        started: float,
        inflight: _Inflight | None,
    ) -> ProduceResult:
        result: ProduceResult = (UNKNOWN_SERVER_ERROR, -1, -1, -1)
        try:
            result = await self._finish_produce(topic, index, gid, future, started)
        finally:
            if inflight is not None:
                waiting = self._inflight.get(gid)
                if waiting is not None and inflight in waiting:
                    waiting.remove(inflight)
                if not inflight.result.done():
                    # Retries waiting on this batch get its outcome (an error too: they must not hang).
                    inflight.result.set_result(result)
        return result

    async def create_topic(
        self, name: str, partitions: int, replication: int, configs: dict[str, str | None]
    ) -> TopicMeta:
        validate_topic_name(name)
        if not self.runtime.is_leader(CONTROLLER_GROUP):
            raise TopicError(NOT_CONTROLLER, f"node {self.node_id} is not the controller")
        if name in self.state.topics:
            raise TopicError(TOPIC_ALREADY_EXISTS, f"topic {name!r} already exists")
        if not 1 <= partitions <= MAX_PARTITIONS:
            raise TopicError(INVALID_PARTITIONS, f"partition count {partitions} not in 1..{MAX_PARTITIONS}")
        brokers = self.placement_brokers()
        if replication % 2 == 0 or not 1 <= replication <= len(brokers):
            raise TopicError(
                INVALID_REPLICATION_FACTOR,
                f"replication factor {replication} must be odd and at most {len(brokers)} (brokers)",
            )
        clean = registry_module._validated(configs)
        replicas = place_replicas(
            brokers, partitions, replication, len(self.state.topics), self.state.racks()
        )
        try:
            await self.runtime.propose(
                CONTROLLER_GROUP, encode(CreateTopic(name, uuid.uuid4(), assignment(replicas), clean))
            )
        except ConsensusError as exc:
            raise TopicError(NOT_CONTROLLER, f"controller proposal failed: {exc}") from None
        return self.state.topics[name]

    async def _propose_metadata(self, command: bytes) -> None:
        if not self.runtime.is_leader(CONTROLLER_GROUP):
            raise TopicError(NOT_CONTROLLER, f"node {self.node_id} is not the controller")
        try:
            await self.runtime.propose(CONTROLLER_GROUP, command)
        except ConsensusError as exc:
            raise TopicError(NOT_CONTROLLER, f"controller proposal failed: {exc}") from None

    async def propose_metadata(self, command: bytes) -> None:
        """Proposes a controller command and returns once it is applied here (TopicError NOT_CONTROLLER
        when this broker does not lead the controller group)."""
        await self._propose_metadata(command)

    async def delete_topic(self, name: str) -> None:
        if name not in self.state.topics:
            raise TopicError(UNKNOWN_TOPIC_OR_PARTITION, f"topic {name!r} does not exist")
        await self._propose_metadata(encode(DeleteTopic(name)))

    async def add_partitions(self, name: str, total: int) -> None:
        meta = self.state.topics.get(name)
        if meta is None:
            raise TopicError(UNKNOWN_TOPIC_OR_PARTITION, f"topic {name!r} does not exist")
        have = len(meta.replicas)
        if not have < total <= MAX_PARTITIONS:
            raise TopicError(
                INVALID_PARTITIONS, f"topic {name!r} has {have} partitions; {total} is not valid"
            )
        rf = len(meta.replicas[0])
        brokers = self.placement_brokers()
        if rf > len(brokers):
            raise TopicError(
                INVALID_REPLICATION_FACTOR, f"{rf} replicas but only {len(brokers)} active brokers"
            )
        placed = place_replicas(brokers, total, rf, len(self.state.topics), self.state.racks())
        await self._propose_metadata(encode(AddPartitions(name, assignment(placed[have:]))))

    # ------------------------------------------------------------------ membership and replica moves
    # (see replication.membership and replication.reassign)

    def _start_membership(self) -> None:
        # Partition groups wait until the controller log is applied up to here: a replica removed by a
        # later move must not bootstrap its group again from the topic's creation while replaying.
        # Everything in the local controller log was written before this boot, committed or not: the
        # durable commit index alone can lag it (it is written lazily), and an entry wrongly taken for new
        # would bootstrap a partition group this broker may no longer hold.
        status = self.runtime.status(CONTROLLER_GROUP)
        self._boot_commit = max(status.hard_state.commit, status.last_index)
        self._spawn(self.membership.registrar())
        self._spawn(self.membership.duties())
        self._spawn(self.mover.run())

    def placement_brokers(self) -> list[int]:
        """Brokers that may receive replicas: registered active ones, plus static members not registered yet
        (one starting a moment later than the others; a topic created meanwhile must still get its replicas
        there, as it does when nobody has registered yet)."""
        late = {n for n in self.members if n not in self.state.brokers}
        return sorted(set(self.state.placeable_brokers()) | late)

    def broker_address(self, node: int) -> tuple[str, int] | None:
        reg = self.state.brokers.get(node)
        if reg is not None:
            return reg.kafka_host, reg.kafka_port
        m = self.members.get(node)
        return (m.kafka_host, m.kafka_port) if m is not None else None

    def controller_address(self) -> tuple[str, int]:
        """Kafka address of the controller's Raft leader, or of a static member when none is known
        (it answers NOT_CONTROLLER and the caller retries)."""
        from streamraft_broker.replication.membership_rpc import ControllerUnreachable  # noqa: PLC0415

        leader = self.runtime.leader(CONTROLLER_GROUP)
        address = self.broker_address(leader) if leader else None
        if address is None:
            others = [n for n in sorted(self.members) if n != self.node_id]
            if not others:
                raise ControllerUnreachable("no controller leader known")
            address = self.broker_address(others[int(time.monotonic()) % len(others)])
        assert address is not None
        return address

    def _on_membership_change(self, change: Change) -> None:
        if change.broker is not None and change.broker.node_id != self.node_id:
            self.runtime.add_node(change.broker.node_id, change.broker.raft_address)
        if change.topic is not None:
            self._spawn(self._ensure_hosting(change.topic.name, change.partition))
        self.membership.changed.set()

    async def _ensure_hosting(self, name: str, index: int) -> None:
        """Host the partition's Raft group here iff its current or target replicas name this broker."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60.0
        # Polls against a deadline: the runtime has no "applied up to" event.
        while self.runtime.applied(CONTROLLER_GROUP) < self._boot_commit and loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        meta = self.state.topics.get(name)
        if meta is None or not 0 <= index < len(meta.replicas):
            return
        gid = meta.group(index)
        if gid in self._hosting_changes:
            return  # another task is creating or removing this group right now
        wanted = self.node_id in meta.replicas[index] or self.node_id in meta.targets.get(index, ())
        hosted = gid in self.runtime.groups()
        if wanted and not hosted:
            origin = meta.origin[index]
            self._partitions[gid] = (name, index)
            self._hosting_changes.add(gid)
            try:
                # A replica resumes from its Raft data, or bootstraps with the others if it was one from
                # the partition's creation. One added by a move, with no data here (a move already finished
                # in a snapshot, or in a replay on an empty disk), can only start as a learner.
                has_data = (self.raft_dir / f"group-{gid}").exists()
                if self.node_id in meta.replicas[index] and (self.node_id in origin or has_data):
                    await self._create_group_as(gid, origin, [])
                else:
                    # Joining through a move: start as a learner of the group's original configuration, so
                    # replaying its log from index 1 rebuilds the true one (never as a voter with no log).
                    self._reset_partition(name, index)
                    voters = [n for n in origin if n != self.node_id]
                    await self._create_group_as(gid, voters, [self.node_id])
            finally:
                self._hosting_changes.discard(gid)
        elif not wanted and hosted and gid in self._partitions:
            del self._partitions[gid]
            await self._remove_group(gid)
            self._reset_partition(name, index)
            log.info("event=replica_removed topic=%s partition=%d", name, index)

    def _reset_partition(self, name: str, index: int) -> None:
        """Empty this broker's copy of a partition (it is rebuilt from the Raft log when hosted)."""
        topic = self.registry.get(name)
        if topic is None or index >= len(topic.partitions):
            return
        topic.partitions[index].close()
        shutil.rmtree(self.registry.partition_dir(name, index), ignore_errors=True)
        topic.partitions[index] = self.registry._open_partition(topic, index)
        meta = self.state.topics.get(name)
        if meta is not None:
            topic.partitions[index].records_floor = meta.log_start.get(index, 0)

    async def _create_group_as(self, gid: int, voters: list[int], learners: list[int]) -> None:
        delay = 0.0
        while True:
            failed = await self._try_create_group(gid, voters, learners)
            if not isinstance(failed, OSError) or gid not in self._partitions or gid in self.runtime.groups():
                return
            # A full disk (or an I/O error) while opening it: try again until it opens, backing off.
            delay = min(max(2 * delay, 1.0), 10.0)
            log.warning("event=group_create_retry group=%d in_s=%.0f error=%r", gid, delay, str(failed))
            await asyncio.sleep(delay)
            if gid not in self._partitions or gid in self.runtime.groups():
                return

    async def _try_create_group(self, gid: int, voters: list[int], learners: list[int]) -> Exception | None:
        storage: PartitionRaftStorage | None = None
        try:
            where = self._partitions.get(gid)
            storage = self._make_storage(gid, *where) if where is not None else None
            reopen = functools.partial(self._reopen_partition, gid) if storage is not None else None
            await self.runtime.create_group(gid, voters, learners, storage=storage, reopen=reopen)
        except Exception as exc:
            log.exception("cannot create raft group %d", gid)
            if storage is not None and gid not in self.runtime.groups():
                self._storages.pop(gid, None)
                with contextlib.suppress(Exception):
                    storage.close()
            return exc
        return None
