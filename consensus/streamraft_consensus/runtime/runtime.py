"""asyncio runtime hosting many Raft groups in one process.

One loop drives every group: each iteration it steps queued inbound messages and proposals into the
groups' RawNodes, ticks (on the tick schedule), collects every group's Ready, writes all their entries and
hard states, makes them durable with one pass of fsyncs on a worker thread (group commit: a Ready of many
entries costs one fsync per touched file), sends every message (one envelope per peer), applies committed
entries to the state machine, resolves waiting callers and advances. A leader's appends are the exception
to "send after sync": they go out before its own fsync (Raft thesis 10.2.1), so its disk write and the
followers' overlap. That is safe because responses are only stepped in the next iteration, after the
sync, so a commit still counts the leader's copy only once it is durable; and an append never carries a
term or vote not yet durable (a Ready that changes them sends nothing early).

RawNodes are only ever touched by this loop; public methods enqueue work and wake it, so a RawNode is never
used while its storage is being synced.

Idle cost: a leader whose group has nothing to do (``can_quiesce``) for ``quiesce_after_ticks`` stops
ticking it and tells the followers (coalesced into the heartbeat section) to stop too. Any message,
proposal or read wakes a group. Node-level liveness (the transport's stream state and pings) replaces the
per-group heartbeats of quiesced groups: when a peer node goes down, the groups it led are woken and the
longest-running live voter takes over; quiet groups it was a member of wake so check_quorum runs.

Durability: one fsync per dirty group file per iteration (run in parallel threads when many groups are
dirty). Groups with separate SegmentLogs cannot share one fsync; a shared write-ahead log could.

Storage errors (a write or fsync raising OSError: disk full, I/O error) stop that group on this node
(fail-stop): nothing of the failing Ready is sent, applied or acknowledged, its callers get
``StorageFailedError``, it neither votes nor leads (its peers elect a healthy leader), and the other groups
carry on. A retry (``storage_retry_s``, backing off) opens the group's storage again from disk through the
``reopen`` given to ``create_group`` and resumes it from what is durable there: after a failed write or
fsync nothing past the last successful fsync is trusted, so the in-memory log and RawNode are discarded.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import shutil
import time
from collections.abc import AsyncGenerator, Callable, Sequence
from typing import TypeVar

from streamraft_consensus.core.node import Config, NotLeader, ProposalDropped, RawNode, Status
from streamraft_consensus.core.storage import LogStorage
from streamraft_consensus.core.types import (
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    Ready,
    Role,
)
from streamraft_consensus.runtime.api import LeaderChange, NullStateMachine, StateMachine
from streamraft_consensus.runtime.config import RuntimeConfig
from streamraft_consensus.runtime.errors import (
    NotLeaderError,
    ProposalRejectedError,
    StoppedError,
    StorageFailedError,
    TermChangedError,
    UnknownGroupError,
)
from streamraft_consensus.runtime.group import Group, PendingRead, Proposal
from streamraft_consensus.runtime.progress import LeaderProgress
from streamraft_consensus.storage.files import drop_cached_pages
from streamraft_consensus.storage.protocol import RaftStorage
from streamraft_consensus.storage.segment_log import SegmentLog
from streamraft_consensus.transport.faults import FaultInjector
from streamraft_consensus.transport.grpc_transport import (
    GrpcTransport,
    Inbound,
    TransportConfig,
    TransportTls,
)

T = TypeVar("T")

log = logging.getLogger("streamraft.consensus.runtime")

_Action = Callable[[], None]
_SYNC_THREADS = 4
_ENTRY_BYTES_WEIGHT = 0.1


def _sync_each(groups: Sequence[Group]) -> list[tuple[Group, OSError]]:
    """fsync each group's storage; the groups whose sync failed, with their error (the others synced)."""
    failed: list[tuple[Group, OSError]] = []
    for g in groups:
        try:
            g.storage.sync()
        except OSError as err:
            failed.append((g, err))
    return failed


def _never(_group: int) -> bool:
    return False


class Runtime:
    def __init__(
        self,
        config: RuntimeConfig,
        state_machine: StateMachine | None = None,
        *,
        listen: str = "127.0.0.1:0",
        transport_config: TransportConfig | None = None,
        faults: FaultInjector | None = None,
        on_leader_change: Callable[[LeaderChange], None] | None = None,
        on_conf_change: Callable[[int, int, ConfState], None] | None = None,
        tls: TransportTls | None = None,
    ) -> None:
        self.config = config
        self.node_id = config.node_id
        self._sm: StateMachine = state_machine or NullStateMachine()
        self.transport = GrpcTransport(
            config.node_id,
            self._on_inbound,
            listen,
            config=transport_config,
            faults=faults,
            on_peer_change=self._on_peer_change,
            tls=tls,
        )
        self._peers_changed = False
        self._groups: dict[int, Group] = {}
        self._dirty: set[int] = set()
        self._actions: list[_Action] = []
        self._kick = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopped = False
        self._watchers: list[asyncio.Queue[LeaderChange]] = []
        self._on_leader_change = on_leader_change
        self._on_conf_change = on_conf_change
        """Told (group, index, configuration) after each configuration change entry is applied here."""
        self._peer_alive: dict[int, bool] = {}
        self._read_ids = itertools.count(1)
        self._rand = random.Random()
        self._unknown_logged: dict[int, int] = {}
        self._trusted: frozenset[int] = frozenset()
        self._dropped_removed = 0
        """``dropped_from_non_members`` of groups removed since."""
        self.iterations = 0
        self.fsync_passes = 0
        self.group_ticks = 0
        self.storage_failures = 0
        """Groups stopped here by a storage error (a metric: one count per failure)."""
        self.storage_recoveries = 0
        """Failed groups re-opened from disk and resumed."""
        self._failed: set[int] = set()
        self.recover_group: Callable[[int], bool] = _never
        """Whether a group created now must start recovering (this node's disk was wiped; see the
        broker's replication.rejoin). Asked once per create_group."""
        """RawNode.tick() calls made by the tick schedule: stays flat while every group is quiet."""

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> str:
        """Start listening and driving groups; returns the transport's host:port."""
        address = await self.transport.start()
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"raft-runtime-{self.node_id}")
        log.info("event=runtime_started node=%d address=%s", self.node_id, address)
        return address

    def add_node(self, node_id: int, address: str) -> None:
        """Tell the runtime where another node listens (needed before groups can reach it). The nodes told
        of here are this cluster's: every group takes their messages even before its log names them as
        members; messages from any other node outside a group's configuration are dropped by the core."""
        self.transport.add_peer(node_id, address)
        trusted = frozenset(self.transport.peers())
        if trusted != self._trusted:
            self._trusted = trusted
            for g in self._groups.values():
                g.raw.set_trusted(trusted)

    def dropped_from_non_members(self) -> int:
        """Raft messages dropped so far because their sender is outside the group's configuration and not
        a node of this cluster (see ``add_node``)."""
        return self._dropped_removed + sum(g.raw.dropped_from_non_members for g in self._groups.values())

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for g in list(self._groups.values()):
            self._fail_all(g, StoppedError(f"node {self.node_id} stopped"))
            self._close_storage(g)
        self._groups.clear()
        self._failed.clear()
        await self.transport.stop()
        log.info("event=runtime_stopped node=%d", self.node_id)

    # ------------------------------------------------------------------ groups

    async def create_group(
        self,
        group: int,
        voters: Sequence[int],
        learners: Sequence[int] = (),
        storage: RaftStorage | None = None,
        reopen: Callable[[], RaftStorage] | None = None,
    ) -> None:
        """Host ``group`` here. ``voters``/``learners`` bootstrap a brand-new group; an existing one
        resumes from what its storage holds. ``reopen`` opens the group's storage again from disk after a
        storage error (without it, a group given its ``storage`` stays stopped after one)."""
        if self._stopped:
            raise StoppedError("runtime stopped")
        if group in self._groups:
            raise ValueError(f"group {group} already exists on node {self.node_id}")
        if group < 1:
            raise ValueError(f"group id must be >= 1, got {group}")
        if storage is None:
            if self.config.data_dir is None:
                raise ValueError("no storage given and RuntimeConfig.data_dir is not set")
            directory = self.config.data_dir / f"group-{group}"
            storage = SegmentLog(directory)
            if reopen is None:

                def reopen() -> RaftStorage:
                    drop_cached_pages(directory)
                    return SegmentLog(directory)

        hs, cs = storage.initial_state()
        if not cs.voters and hs == HardState() and storage.last_index() == 0:
            if self.node_id not in voters and self.node_id not in learners:
                raise ValueError(f"node {self.node_id} is not among voters {voters} / learners {learners}")
            cs = ConfState(voters=tuple(sorted(set(voters))), learners=tuple(sorted(set(learners))))
            storage.set_conf_state(cs)
            await asyncio.to_thread(storage.sync)
        snap = storage.snapshot()
        applied = snap.meta.index
        if not snap.is_empty():
            self._sm.restore(group, snap)
            cs = snap.meta.conf_state if snap.meta.index > 0 and not cs.voters else cs
        recovering = self.recover_group(group)
        raw = self._raw_node(storage, applied, recovering)
        raw.set_trusted(self._trusted)
        # The stored configuration is the last one applied before the restart, maybe from an entry past the
        # snapshot that is applied again: it is only known to hold from the end of the log on.
        g = Group(
            group,
            raw,
            storage,
            cs,
            applied,
            conf_index=storage.last_index(),
            term=hs.term,
            durable_vote=(hs.term, hs.vote),
            reopen=reopen,
        )
        self._groups[group] = g
        self._mark(g)
        log.info(
            "event=group_created node=%d group=%d voters=%s learners=%s applied=%d recovering=%s",
            self.node_id,
            group,
            list(cs.voters),
            list(cs.learners),
            applied,
            recovering,
        )

    async def remove_group(self, group: int, delete_data: bool = False) -> None:
        g = self._group(group)
        del self._groups[group]
        self._dropped_removed += g.raw.dropped_from_non_members
        g.stopped = True
        self._failed.discard(group)
        self._fail_all(g, StoppedError(f"group {group} removed"))
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        def close() -> None:
            # Runs between loop iterations, never while the group's storage is being synced.
            self._close_storage(g)
            if delete_data and isinstance(g.storage, SegmentLog):
                shutil.rmtree(g.storage.dir, ignore_errors=True)
            done.set_result(0)

        self._action(close)
        await done
        log.info("event=group_removed node=%d group=%d", self.node_id, group)

    def groups(self) -> list[int]:
        """Every group hosted here, those stopped by a storage error included."""
        return list(self._groups)

    def storage_error(self, group: int) -> OSError | None:
        """The error that stopped ``group`` here, while it is stopped (None once it resumed)."""
        return self._group(group).failed

    def failed_groups(self) -> dict[int, OSError]:
        """Groups stopped here by a storage error, with the error."""
        return {gid: err for gid in self._failed if (err := self._groups[gid].failed) is not None}

    def leader(self, group: int) -> int:
        return self._group(group).leader

    def term(self, group: int) -> int:
        return self._group(group).term

    def is_leader(self, group: int) -> bool:
        return self._group(group).is_leader

    def conf_state(self, group: int) -> ConfState:
        return self._group(group).conf_state

    def conf_index(self, group: int) -> int:
        """The index from which ``conf_state`` is known to hold (see ``Group.conf_index``): a snapshot taken
        below it could record the wrong configuration."""
        return self._group(group).conf_index

    def applied(self, group: int) -> int:
        return self._group(group).applied

    def peer_alive(self, node: int) -> bool:
        """This node itself, or a peer whose stream is up and heard from within ``peer_dead_after_s``."""
        if node == self.node_id:
            return True
        return self.transport.is_connected(node) and self._peer_alive.get(node, False)

    def leader_ready(self, group: int) -> bool:
        """This node leads ``group`` and has applied an entry of its own term, so everything committed
        before its term (by any earlier leader) is applied here: what it has applied is at least what any
        earlier leader had."""
        g = self._group(group)
        raft = g.raw.raft
        if not g.is_leader or raft.role != Role.LEADER:
            return False
        applied = raft.log.applied
        return applied > 0 and raft.log.term(applied) == raft.term

    def recovering(self, group: int) -> bool:
        """Whether this node is still rebuilding ``group`` after a wiped disk (no votes, acks not counted)."""
        return self._group(group).raw.raft.recovering

    def end_recovery(self, group: int) -> None:
        """The caller learnt that the cluster is brand new (not a rejoin): ``group`` may vote at once."""
        g = self._group(group)
        if g.raw.raft.recovering:
            g.raw.raft.recovering = False
            log.info("event=recovery_skipped node=%d group=%d", self.node_id, group)
            self._mark(g)

    def is_quiesced(self, group: int) -> bool:
        return self._group(group).quiesced

    def status(self, group: int) -> Status:
        return self._group(group).raw.status()

    def membership_pending(self, group: int) -> bool:
        """This node leads ``group`` and it has a learner or a recovering member: something a membership
        driver may have to act on. Cheap enough to ask of every group several times a second."""
        g = self._group(group)
        raft = g.raw.raft
        if not g.is_leader or raft.role != Role.LEADER:
            return False
        return bool(g.conf_state.learners) or any(pr.recovering for pr in raft.prs.values())

    def leader_progress(self, group: int) -> LeaderProgress | None:
        """How far each other member has replicated, when this node leads ``group`` (else None). Cheaper
        than ``status()`` and safe to call often: it copies only the match indexes."""
        g = self._group(group)
        raft = g.raw.raft
        if not g.is_leader or raft.role != Role.LEADER:
            return None
        return LeaderProgress(
            last_index=raft.log.last_index(),
            commit=raft.log.committed,
            match={peer: pr.match for peer, pr in raft.prs.items() if peer != self.node_id},
            learners=frozenset(g.conf_state.learners),
            recovering=frozenset(p for p, pr in raft.prs.items() if pr.recovering),
            entry_bytes=g.entry_bytes,
            quiesced=g.quiesced,
        )

    # ------------------------------------------------------------------ requests

    async def propose(self, group: int, data: bytes) -> int:
        """Resolves with the entry's index once it is committed and applied here."""
        return await self._propose(group, data)

    async def add_learner(self, group: int, node: int) -> int:
        return await self._propose(group, ConfChange(((ConfChangeType.ADD_LEARNER, node),)))

    async def promote(self, group: int, node: int) -> int:
        return await self._propose(group, ConfChange(((ConfChangeType.ADD_VOTER, node),)))

    async def remove_member(self, group: int, node: int) -> int:
        return await self._propose(group, ConfChange(((ConfChangeType.REMOVE, node),)))

    def propose_nowait(
        self, group: int, data: bytes, appended: asyncio.Future[int] | None = None
    ) -> asyncio.Future[int]:
        """Queues a proposal now (proposals queued in call order reach the log in that order) and returns
        the future ``propose`` awaits. Raises at once (unknown group, a quiet follower) like ``propose``.
        ``appended``, if given, is resolved with the entry's index once it is written to this leader's own
        log (before its fsync and before any follower has it: what Kafka's acks=1 promises); it is left
        pending if the entry never gets there (the returned future then fails)."""
        return self._queue_proposal(group, data, appended)

    async def _propose(self, group: int, data: bytes | ConfChange) -> int:
        return await self._queue_proposal(group, data)

    def _queue_proposal(
        self, group: int, data: bytes | ConfChange, appended: asyncio.Future[int] | None = None
    ) -> asyncio.Future[int]:
        g = self._live_group(group)
        if g.quiesced and not g.is_leader and g.leader:
            # Waking a quiet follower only to refuse would restart its election clock for nothing.
            raise NotLeaderError(group, g.leader)
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        g.proposals.append(Proposal(data, future, appended))
        self._mark(g)
        return future

    async def read_index(self, group: int) -> int:
        """Linearizable read barrier: resolves with an index; state applied up to it is up to date."""
        g = self._live_group(group)
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        g.reads.append((next(self._read_ids).to_bytes(8, "big"), PendingRead(future)))
        self._mark(g)
        return await future

    async def transfer_leadership(self, group: int, target: int) -> None:
        """Ask the leader to hand over to ``target``; watch leadership changes for the outcome."""
        g = self._live_group(group)
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        g.control.append(("transfer", target, future))
        self._mark(g)
        await future

    async def campaign(self, group: int) -> None:
        g = self._live_group(group)
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        g.control.append(("campaign", 0, future))
        self._mark(g)
        await future

    async def snapshot(self, group: int, index: int, data: bytes) -> None:
        """Persist ``data`` as the state at ``index`` (<= applied, and not before the last configuration
        change applied) and drop the log up to it."""
        g = self._live_group(group)
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        def take() -> None:
            if g.failed is not None:
                done.set_exception(StorageFailedError(group, g.failed))
                return
            if index > g.applied:
                done.set_exception(ValueError(f"snapshot index {index} is past applied {g.applied}"))
                return
            if index < g.conf_index:
                # The snapshot must record the configuration as of ``index``; only the current one is known.
                done.set_exception(
                    ValueError(f"snapshot index {index} is before the configuration change at {g.conf_index}")
                )
                return
            try:
                g.storage.create_snapshot(index, g.conf_state, data)
                g.storage.compact(index)
            except Exception as err:
                done.set_exception(err)
                return
            done.set_result(index)

        self._action(take)
        await done

    async def with_storage(self, group: int, fn: Callable[[RaftStorage], T]) -> T:
        """Run ``fn(storage)`` between loop iterations (never while the group's storage is being synced)
        and return its result: for the owner of a group's storage, e.g. to compact it."""
        g = self._live_group(group)
        done: asyncio.Future[T] = asyncio.get_running_loop().create_future()

        def run() -> None:
            if g.failed is not None:
                done.set_exception(StorageFailedError(group, g.failed))
                return
            try:
                done.set_result(fn(g.storage))
            except Exception as err:
                done.set_exception(err)

        self._action(run)
        return await done

    async def leadership_changes(self) -> AsyncGenerator[LeaderChange, None]:
        """Every leader/term change of every group on this node, from now on."""
        queue: asyncio.Queue[LeaderChange] = asyncio.Queue()
        self._watchers.append(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self._watchers.remove(queue)

    # ------------------------------------------------------------------ plumbing

    def _raw_node(self, storage: LogStorage, applied: int, recovering: bool) -> RawNode:
        """A group's Raft core with this runtime's settings (at creation, and again when a group that failed
        stop re-opens from disk)."""
        c = self.config
        return RawNode(
            Config(
                id=self.node_id,
                election_tick=c.election_tick,
                heartbeat_tick=c.heartbeat_tick,
                max_size_per_msg=c.max_size_per_msg,
                max_inflight_msgs=c.max_inflight_msgs,
                pre_vote=c.pre_vote,
                check_quorum=c.check_quorum,
                applied=applied,
                recovering=recovering,
            ),
            storage,
            random.Random(self._rand.getrandbits(64)),
        )

    def _group(self, group: int) -> Group:
        if self._stopped:
            raise StoppedError("runtime stopped")
        g = self._groups.get(group)
        if g is None:
            raise UnknownGroupError(group)
        return g

    def _live_group(self, group: int) -> Group:
        """The group, unless a storage error stopped it here (then StorageFailedError)."""
        g = self._group(group)
        if g.failed is not None:
            raise StorageFailedError(group, g.failed)
        return g

    def _action(self, action: _Action) -> None:
        self._actions.append(action)
        self._kick.set()

    def _mark(self, g: Group, wake: bool = True) -> None:
        self._dirty.add(g.id)
        if wake and g.quiesced:
            g.quiesced = False
            g.needs_wake = True
            g.idle_ticks = 0
            log.debug("event=group_woken node=%d group=%d", self.node_id, g.id)
        self._kick.set()

    def _on_peer_change(self, peer: int, connected: bool) -> None:
        # Check liveness now rather than at the next tick: a killed leader's stream breaks at once.
        self._peers_changed = True
        self._kick.set()

    def _on_inbound(self, inbound: Inbound) -> None:
        for gid, msg in inbound.messages:
            g = self._groups.get(gid)
            if g is None:
                self._log_unknown_group(gid, inbound.from_node, msg)
                continue
            if g.failed is not None:
                # Stopped here: it neither votes nor follows until re-opened, but it still tells who leads
                # now (clients asking this broker for metadata are sent to the new leader).
                self._observe_leader(g, msg)
                continue
            g.inbox.append(msg)
            # Late heartbeat responses must not undo a leader's decision to go quiet.
            self._mark(g, wake=msg.type != MessageType.HEARTBEAT_RESP)
        for gid in inbound.quiesce:
            g = self._groups.get(gid)
            if g is not None and g.failed is None and not g.is_leader and g.leader == inbound.from_node:
                g.quiesced = True
                g.idle_ticks = 0

    _LEADER_MESSAGES = frozenset({MessageType.APPEND, MessageType.HEARTBEAT, MessageType.SNAPSHOT})

    def _observe_leader(self, g: Group, msg: Message) -> None:
        if msg.type not in self._LEADER_MESSAGES or msg.term < g.term:
            return
        if (msg.frm, msg.term) == (g.leader, g.term):
            return
        g.leader, g.term = msg.frm, msg.term
        self._notify_leader(LeaderChange(g.id, msg.frm, msg.term, False))

    def _log_unknown_group(self, gid: int, frm: int, msg: Message) -> None:
        seen = self._unknown_logged.get(gid, 0)
        self._unknown_logged[gid] = seen + 1
        if seen % 1000 == 0:  # one line per 1000 drops: a misconfigured peer must not flood the log
            log.warning(
                "event=message_for_unknown_group node=%d group=%d from=%d type=%s dropped_total=%d",
                self.node_id,
                gid,
                frm,
                msg.type.name,
                seen + 1,
            )
        if len(self._unknown_logged) > 10_000:
            self._unknown_logged.clear()

    def _fail_all(self, g: Group, err: Exception) -> None:
        futures = [p.future for p in g.proposals]
        futures += [f for _, (_, f) in g.waiting.items()]
        futures += [pr.future for _, pr in g.reads]
        futures += [pr.future for pr in g.confirmed_reads.values()]
        futures += [f for _, _, f in g.control]
        g.proposals.clear()
        g.waiting.clear()
        g.appending.clear()
        g.reads.clear()
        g.confirmed_reads.clear()
        g.control.clear()
        for f in futures:
            if not f.done():
                f.set_exception(err)

    # ------------------------------------------------------------------ storage errors

    def _close_storage(self, g: Group) -> None:
        try:
            g.storage.close()
        except Exception as err:
            # A failed disk may fail the final sync too; the descriptors are released regardless.
            log.warning("event=storage_close_failed node=%d group=%d error=%r", self.node_id, g.id, str(err))

    def _fail_group(self, g: Group, err: OSError) -> None:
        """Fail-stop ``g`` here after its storage raised ``err``: nothing more of it is written, sent,
        applied or acknowledged until ``_retry_failed`` re-opens it from disk."""
        if g.failed is not None:
            return
        g.failed = err
        self._failed.add(g.id)
        self.storage_failures += 1
        now = time.monotonic()
        if now - g.resumed_at < 2 * self.config.storage_retry_max_s:
            # Failed again soon after a re-open (the disk is still full): keep backing off.
            g.retry_delay = min(
                max(2 * g.retry_delay, self.config.storage_retry_s), self.config.storage_retry_max_s
            )
        else:
            g.retry_delay = self.config.storage_retry_s
        g.retry_at = now + g.retry_delay
        log.error(
            "event=storage_failed node=%d group=%d errno=%s error=%r leader=%s",
            self.node_id,
            g.id,
            err.errno,
            str(err),
            g.is_leader,
        )
        self._fail_all(g, StorageFailedError(g.id, err))
        g.inbox.clear()
        self._dirty.discard(g.id)
        if g.is_leader:
            # Its followers stop hearing from it and elect a healthy leader; tell watchers at once.
            g.is_leader = False
            g.leader = 0
            self._notify_leader(LeaderChange(g.id, 0, g.term, False))
        self._close_storage(g)

    def _retry_failed(self) -> None:
        now = time.monotonic()
        for gid in list(self._failed):
            g = self._groups.get(gid)
            if g is None or g.failed is None:
                self._failed.discard(gid)
                continue
            if now < g.retry_at or g.reopen is None:
                continue
            try:
                self._resume(g, g.reopen())
            except Exception as err:
                g.retry_delay = min(2 * g.retry_delay, self.config.storage_retry_max_s)
                g.retry_at = now + g.retry_delay
                log.warning(
                    "event=storage_reopen_failed node=%d group=%d error=%r retry_in_s=%.1f",
                    self.node_id,
                    gid,
                    str(err),
                    g.retry_delay,
                )

    def _resume(self, g: Group, storage: RaftStorage) -> None:
        """Restart ``g`` from what ``storage`` (just opened from disk) holds. The state machine keeps what
        it applied: entries up to ``g.applied`` were committed (so never change) and were durable here
        before they were applied, so the log on disk still has them; only a snapshot past them is
        restored."""
        try:
            hs, _cs = storage.initial_state()
            snap = storage.snapshot()
            applied = g.applied
            restore = snap.meta.index > applied
            if restore:
                applied = snap.meta.index
            if applied > storage.last_index():
                raise RuntimeError(
                    f"the log on disk ends at index {storage.last_index()}, below the applied index {applied}"
                )
            if hs.commit < applied:
                # A commit-only change is written lazily (StateFile): applied entries are committed.
                storage.set_hard_state(HardState(hs.term, hs.vote, applied))
            raw = self._raw_node(storage, applied, g.raw.raft.recovering)
        except BaseException:
            with contextlib.suppress(Exception):
                storage.close()
            raise
        if restore:
            self._sm.restore(g.id, snap)
            g.conf_state = snap.meta.conf_state
            g.conf_index = snap.meta.index
        g.raw = raw
        g.storage = storage
        g.applied = applied
        g.term = hs.term
        g.durable_vote = (hs.term, hs.vote)
        g.is_leader = False
        g.quiesced = False
        g.needs_wake = False
        g.idle_ticks = 0
        g.inbox.clear()
        g.failed = None
        g.resumed_at = time.monotonic()
        self._failed.discard(g.id)
        self.storage_recoveries += 1
        self._mark(g)
        log.info(
            "event=storage_recovered node=%d group=%d applied=%d last_index=%d term=%d",
            self.node_id,
            g.id,
            applied,
            storage.last_index(),
            hs.term,
        )

    # ------------------------------------------------------------------ the loop

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        interval = self.config.tick_interval_s
        next_tick = loop.time() + interval
        while True:
            now = loop.time()
            if now < next_tick and not self._kick.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(next_tick - now):
                        await self._kick.wait()
            self._kick.clear()
            self.iterations += 1
            try:
                actions, self._actions = self._actions, []
                for action in actions:
                    action()
                if self._failed:
                    self._retry_failed()
                now = loop.time()
                if self._peers_changed:
                    self._peers_changed = False
                    self._check_peers()
                if now >= next_tick:
                    self._check_peers()
                    self._tick_all()
                    next_tick += interval
                    if next_tick < now:  # fell behind: skip ticks rather than burst (bursts cause elections)
                        next_tick = now + interval
                self._drain_inputs()
                await self._handle_readies()
            except asyncio.CancelledError:
                raise
            except Exception:
                # A bug in one iteration must not stop every group on the node; it is logged loudly.
                log.exception("event=runtime_iteration_failed node=%d", self.node_id)

    def _live_groups(self) -> list[Group]:
        return [g for g in self._groups.values() if g.failed is None]

    def _check_peers(self) -> None:
        now = time.monotonic()
        for peer in self.transport.peers():
            heard = self.transport.last_heard(peer)
            alive = (
                self.transport.is_connected(peer)
                and heard is not None
                and now - heard < self.config.peer_dead_after_s
            )
            was = self._peer_alive.get(peer, False)
            if alive == was:
                continue
            self._peer_alive[peer] = alive
            if alive:
                log.info("event=peer_up node=%d peer=%d", self.node_id, peer)
                for g in self._live_groups():
                    if g.is_leader and g.quiesced and peer in g.peers(self.node_id):
                        # A restarted peer (maybe on a wiped disk) must hear from its leaders to catch up.
                        self._mark(g)
                continue
            led = [g for g in self._live_groups() if g.leader == peer]
            uptimes = {
                n: round(
                    self.transport.uptime() if n == self.node_id else self.transport.peer_uptime(n) or 0, 1
                )
                for n in [self.node_id, *self.transport.peers()]
                if n != peer
            }
            # The uptimes choose who campaigns at once for the groups the dead node led (_successor).
            log.info(
                "event=peer_down node=%d peer=%d groups_led=%d uptimes=%s",
                self.node_id,
                peer,
                len(led),
                uptimes,
            )
            for g in self._live_groups():
                if g.is_leader and g.quiesced and peer in g.peers(self.node_id):
                    # Tick again so check_quorum can find out whether this leader still has a quorum; it
                    # quiesces again (quiesce_after_ticks > election_tick) if it does.
                    self._mark(g)
            for g in led:
                self._mark(g)
                g.needs_wake = False
                # The leader's node is gone: waiting out the whole election timeout only delays failover.
                # One live voter (see _successor) takes over at once, as if the dead leader had handed over
                # to it: a transfer-style campaign skips pre-vote and the other followers' lease, which only
                # protects a live leader. If its log is behind, or the survivors disagree on who it is, the
                # others' election clocks (moved close to, but still short of, their randomised timeouts)
                # elect someone soon after.
                for _ in range(max(0, self.config.election_tick - 4)):
                    g.raw.tick()
                live = [
                    v
                    for v in g.conf_state.voters
                    if v != peer and (v == self.node_id or self._peer_alive.get(v, False))
                ]
                if live and self._successor(live) == self.node_id and not g.is_leader:
                    term = g.raw.status().hard_state.term
                    log.info("event=campaign_after_leader_death node=%d group=%d", self.node_id, g.id)
                    try:
                        g.raw.step(Message(MessageType.TIMEOUT_NOW, self.node_id, peer, term=term))
                    except ValueError as err:
                        log.warning(
                            "event=campaign_failed node=%d group=%d error=%r", self.node_id, g.id, str(err)
                        )

    def _successor(self, live: Sequence[int]) -> int:
        """The live voter that campaigns at once when a group's leader dies: the longest-running node, up
        to ``successor_settled_s`` (beyond that all count as settled), ties within ``successor_tie_s``
        going to the lowest id. Every survivor computes this from uptimes the nodes report themselves, so
        they agree (but for uptimes within measurement error of a tie boundary; then the fallback election
        decides). A node that restarted moments ago is the worst successor: clients saw it fail and back
        off reconnecting to it (librdkafka's reconnect backoff doubles up to 10 s), and it may be cold."""
        settled = self.config.successor_settled_s

        def uptime(node: int) -> float:
            up = self.transport.uptime() if node == self.node_id else self.transport.peer_uptime(node)
            return min(settled, up if up is not None else 0.0)

        ups = {node: uptime(node) for node in live}
        best = max(ups.values())
        return min(node for node, up in ups.items() if up >= best - self.config.successor_tie_s)

    def _tick_all(self) -> None:
        quiesce = self.config.quiesce
        for g in self._groups.values():
            if g.quiesced or g.failed is not None:
                continue
            if quiesce and g.is_leader and not g.proposals and g.raw.can_quiesce():
                g.idle_ticks += 1
                if g.idle_ticks >= self.config.quiesce_after_ticks:
                    g.quiesced = True
                    for peer in g.peers(self.node_id):
                        self.transport.send_quiesce(peer, g.id)
                    log.debug("event=group_quiesced node=%d group=%d", self.node_id, g.id)
                    continue
            else:
                g.idle_ticks = 0
            g.raw.tick()
            self.group_ticks += 1
            self._dirty.add(g.id)

    def _drain_inputs(self) -> None:
        for gid in list(self._dirty):
            g = self._groups.get(gid)
            if g is None or g.failed is not None:
                self._dirty.discard(gid)
                continue
            raw = g.raw
            if g.needs_wake:
                g.needs_wake = False
                raw.wake()
            if g.inbox:
                inbox, g.inbox = g.inbox, []
                for msg in inbox:
                    try:
                        raw.step(msg)
                    except Exception as err:
                        log.warning(
                            "event=step_failed node=%d group=%d from=%d type=%s error=%r",
                            self.node_id,
                            gid,
                            msg.frm,
                            msg.type.name,
                            str(err),
                        )
            if g.proposals:
                proposals, g.proposals = g.proposals, []
                for p in proposals:
                    if p.future.done():
                        continue  # the caller gave up before it reached the log
                    try:
                        if isinstance(p.data, ConfChange):
                            term, index = raw.propose_conf_change(p.data)
                        else:
                            term, index = raw.propose(p.data)
                    except NotLeader as err:
                        p.future.set_exception(NotLeaderError(gid, err.leader_hint))
                        continue
                    except ProposalDropped as err:
                        p.future.set_exception(ProposalRejectedError(f"group {gid}: {err}"))
                        continue
                    g.waiting[index] = (term, p.future)
                    if p.appended is not None:
                        g.appending[index] = p.appended
            if g.reads:
                reads, g.reads = g.reads, []
                for ctx, pr in reads:
                    if pr.future.done():
                        continue
                    try:
                        raw.read_index(ctx)
                    except NotLeader as err:
                        pr.future.set_exception(NotLeaderError(gid, err.leader_hint))
                        continue
                    g.confirmed_reads[ctx] = pr
            if g.control:
                control, g.control = g.control, []
                for kind, target, future in control:
                    try:
                        if kind == "transfer":
                            raw.transfer_leader(target)
                        else:
                            raw.campaign()
                    except NotLeader as err:
                        future.set_exception(NotLeaderError(gid, err.leader_hint))
                        continue
                    if not future.done():
                        future.set_result(0)

    async def _handle_readies(self) -> None:
        readies: list[tuple[Group, Ready]] = []
        for gid in self._dirty:
            g = self._groups.get(gid)
            if g is not None and g.failed is None and g.raw.has_ready():
                readies.append((g, g.raw.ready()))
        self._dirty.clear()
        if not readies:
            self.transport.flush()  # quiesce notices and node-level pings
            return
        to_sync: list[Group] = []
        sent_early: dict[int, set[int]] = {}  # group -> positions in its Ready's messages already sent
        for g, rd in readies:
            try:
                self._write_ready(g, rd, sent_early)
            except OSError as err:
                self._fail_group(g, err)
                continue
            if g.storage.needs_sync():
                to_sync.append(g)
        if to_sync:
            if sent_early:
                self.transport.flush()
            self.fsync_passes += 1
            loop = asyncio.get_running_loop()
            if len(to_sync) <= 2:
                failed = await loop.run_in_executor(None, _sync_each, to_sync)
            else:
                # Many groups' files (an election storm, a burst over many partitions): overlap the fsyncs.
                k = min(_SYNC_THREADS, len(to_sync))
                parts = await asyncio.gather(
                    *(loop.run_in_executor(None, _sync_each, to_sync[i::k]) for i in range(k))
                )
                failed = [f for part in parts for f in part]
            for g, sync_err in failed:
                self._fail_group(g, sync_err)
        unreachable: set[tuple[int, int]] = set()
        for g, rd in readies:
            if g.failed is not None:
                continue
            if rd.hard_state is not None:
                g.durable_vote = (rd.hard_state.term, rd.hard_state.vote)
            if g.stopped:
                continue
            already = sent_early.get(g.id, ())
            for i, msg in enumerate(rd.messages):
                if i in already:
                    continue  # sent before the sync (an append to a peer that connected since goes now)
                if not self.transport.is_connected(msg.to):
                    if (g.id, msg.to) not in unreachable:
                        unreachable.add((g.id, msg.to))
                        g.raw.report_unreachable(msg.to)
                    continue
                self.transport.send(g.id, msg)
                if msg.type == MessageType.SNAPSHOT:
                    g.raw.report_snapshot(msg.to, True)
        self.transport.flush()
        for g, rd in readies:
            if g.stopped or g.failed is not None:
                continue
            try:
                self._finish_ready(g, rd)
            except OSError as err:
                # The state machine's own writes (e.g. a partition directory for a new topic) failed.
                self._fail_group(g, err)

    def _write_ready(self, g: Group, rd: Ready, sent_early: dict[int, set[int]]) -> None:
        """Write a Ready's snapshot, entries and hard state (not yet synced); a leader's appends may go out
        first. Raises OSError when the storage fails."""
        storage = g.storage
        if self.config.send_appends_before_sync and self._may_send_early(g, rd):
            # Raft thesis 10.2.1: a leader may replicate entries before its own disk write; the
            # followers' acknowledgements are stepped only after this iteration's fsyncs, so a commit
            # still needs the leader's own copy durable. Its term is durable (``_may_send_early``).
            early = {
                i
                for i, msg in enumerate(rd.messages)
                if msg.type == MessageType.APPEND and self.transport.is_connected(msg.to)
            }
            for i in sorted(early):
                self.transport.send(g.id, rd.messages[i])
            if early:
                sent_early[g.id] = early
        if rd.snapshot is not None and not rd.snapshot.is_empty():
            storage.apply_snapshot(rd.snapshot)
        if rd.entries:
            storage.append(rd.entries)
            if g.appending:
                self._resolve_appended(g, rd.entries[-1].index)
            size = sum(len(e.data) for e in rd.entries) / len(rd.entries)
            weight = _ENTRY_BYTES_WEIGHT if g.entry_bytes else 1.0
            g.entry_bytes += weight * (size - g.entry_bytes)
        if rd.hard_state is not None:
            storage.set_hard_state(rd.hard_state)

    def _finish_ready(self, g: Group, rd: Ready) -> None:
        """After the sync: apply, resolve callers and advance."""
        if rd.snapshot is not None and not rd.snapshot.is_empty():
            self._sm.restore(g.id, rd.snapshot)
            g.applied = rd.snapshot.meta.index
            g.conf_state = rd.snapshot.meta.conf_state
            g.conf_index = rd.snapshot.meta.index
        if rd.committed_entries:
            self._apply(g, rd.committed_entries)
        if rd.soft_state is not None or rd.hard_state is not None:
            self._update_leadership(g, rd)
        for rs in rd.read_states:
            pr = g.confirmed_reads.get(rs.context)
            if pr is not None:
                pr.index = rs.index
        if g.confirmed_reads:
            self._serve_reads(g)
        was_recovering = g.raw.raft.recovering
        g.raw.advance(rd)
        if was_recovering and not g.raw.raft.recovering:
            log.info("event=recovery_done node=%d group=%d applied=%d", self.node_id, g.id, g.applied)
        if g.raw.has_ready():
            self._dirty.add(g.id)
            self._kick.set()

    @staticmethod
    def _resolve_appended(g: Group, last: int) -> None:
        for index in [i for i in g.appending if i <= last]:
            future = g.appending.pop(index)
            if not future.done():
                future.set_result(index)

    @staticmethod
    def _may_send_early(g: Group, rd: Ready) -> bool:
        """A leader's appends may precede the sync of this Ready unless it changes the term or vote: an
        append must never carry a term this node could forget in a crash."""
        if g.raw.raft.role != Role.LEADER:
            return False
        hs = rd.hard_state
        return hs is None or (hs.term, hs.vote) == g.durable_vote

    def _apply(self, g: Group, entries: Sequence[Entry]) -> None:
        batch: list[Entry] = []
        for e in entries:
            if e.type == EntryType.CONF_CHANGE and e.data:
                if batch:
                    self._sm.apply(g.id, batch)
                    batch = []
                cs = g.raw.apply_conf_change(ConfChange.decode(e.data))
                g.conf_state = cs
                g.conf_index = e.index
                g.storage.set_conf_state(cs)
                log.info(
                    "event=conf_change_applied node=%d group=%d index=%d voters=%s learners=%s",
                    self.node_id,
                    g.id,
                    e.index,
                    list(cs.voters),
                    list(cs.learners),
                )
                if self._on_conf_change is not None:
                    self._on_conf_change(g.id, e.index, cs)
            elif e.data:
                batch.append(e)
            g.applied = e.index
            waiting = g.waiting.pop(e.index, None)
            if waiting is not None:
                term, future = waiting
                if future.done():
                    continue
                if term == e.term:
                    future.set_result(e.index)
                else:
                    future.set_exception(TermChangedError(g.id, e.index, term))
        if batch:
            self._sm.apply(g.id, batch)

    def _serve_reads(self, g: Group) -> None:
        for ctx, pr in list(g.confirmed_reads.items()):
            if pr.future.done():
                del g.confirmed_reads[ctx]
            elif 0 <= pr.index <= g.applied:
                pr.future.set_result(pr.index)
                del g.confirmed_reads[ctx]

    def _update_leadership(self, g: Group, rd: Ready) -> None:
        leader, is_leader, term = g.leader, g.is_leader, g.term
        if rd.soft_state is not None:
            leader = rd.soft_state.leader
            is_leader = rd.soft_state.role == Role.LEADER
        if rd.hard_state is not None:
            term = rd.hard_state.term
        if (leader, is_leader, term) == (g.leader, g.is_leader, g.term):
            return
        lost = g.is_leader and not is_leader
        g.leader, g.is_leader, g.term = leader, is_leader, term
        if lost:
            # Outcome unknown for in-flight proposals: the new leader may or may not keep them.
            for index, (t, future) in g.waiting.items():
                if not future.done():
                    future.set_exception(TermChangedError(g.id, index, t))
            g.waiting.clear()
            g.appending.clear()
            for pr in g.confirmed_reads.values():
                if not pr.future.done():
                    pr.future.set_exception(NotLeaderError(g.id, leader))
            g.confirmed_reads.clear()
        if leader != 0 or lost:
            self._notify_leader(LeaderChange(g.id, leader, term, is_leader))

    def _notify_leader(self, change: LeaderChange) -> None:
        log.info(
            "event=leader_changed node=%d group=%d leader=%d term=%d",
            self.node_id,
            change.group,
            change.leader,
            change.term,
        )
        if self._on_leader_change is not None:
            self._on_leader_change(change)
        for q in self._watchers:
            q.put_nowait(change)
