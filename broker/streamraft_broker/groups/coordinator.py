"""The classic consumer-group coordinator (JoinGroup/SyncGroup/Heartbeat/LeaveGroup/OffsetCommit/...), in
the shape of Kafka's GroupCoordinator: group states Empty -> PreparingRebalance -> CompletingRebalance ->
Stable (and Dead once deleted), generations, coordinator-assigned member ids (JoinGroup v4+
MEMBER_ID_REQUIRED), static membership (KIP-345), session and rebalance timeouts.

Time comes from the injected `clock` (milliseconds); nothing here sleeps or reads a wall clock. `tick()`
fires expired deadlines; `run()` is the background task that calls it when the next deadline is due.
JoinGroup and SyncGroup answers that must wait for the rest of the group are asyncio futures, resolved when
the rebalance completes (or fails); `join`/`sync` await them, `join_nowait`/`sync_nowait` hand them out.

Offsets follow Kafka: the last commit wins, so a client may rewind on purpose, and nothing here lowers a
committed offset on its own (offset retention/expiry is not implemented: offsets live until the group is
deleted). Committed offsets and group metadata (generation, protocol, leader, members with their
assignments) are written to `__consumer_offsets` through the `store`; a restart reloads both, so a group
keeps its generation and members, which must then heartbeat within their session timeout as in Kafka."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Protocol

from kio.schema.errors import ErrorCode

from streamraft_broker.groups.codec import (
    GroupKey,
    OffsetKey,
    StoredGroup,
    StoredMember,
    encode_group_key,
    encode_group_value,
    encode_offset_key,
    encode_offset_value,
)
from streamraft_broker.groups.config import GroupConfig
from streamraft_broker.groups.model import (
    CommittedOffset,
    FetchedOffset,
    Group,
    GroupDescription,
    GroupListing,
    GroupState,
    JoinedMember,
    JoinRequest,
    JoinResult,
    LeaveResult,
    Member,
    MemberDescription,
    MemberIdentity,
    OffsetCommitEntry,
    OffsetFetchResult,
    PartitionResult,
    SyncResult,
)
from streamraft_broker.groups.subscription import CONSUMER_PROTOCOL_TYPE, subscribed_topics
from streamraft_broker.groups.timers import Deadlines

log = logging.getLogger(__name__)

Record = tuple[bytes, bytes | None]


class GroupStoreError(Exception):
    """The store could not persist a write (disk error, log closed); nothing of it may be acknowledged."""


class GroupStore(Protocol):
    """Where the coordinator persists key/value records (None = tombstone), in the order it hands them
    over: `write` returns once they are durable (raising GroupStoreError when they cannot be),
    `write_nowait` queues them behind earlier writes."""

    async def write(self, records: Sequence[Record]) -> None: ...
    def write_nowait(self, records: Sequence[Record]) -> None: ...


class LoadedGroups(Protocol):
    @property
    def offsets(self) -> Mapping[str, Mapping[tuple[str, int], CommittedOffset]]: ...
    @property
    def groups(self) -> Mapping[str, StoredGroup]: ...


S = GroupState


class GroupCoordinator:
    def __init__(
        self,
        *,
        clock: Callable[[], int],
        config: GroupConfig | None = None,
        store: GroupStore | None = None,
        partition_exists: Callable[[str, int], bool] | None = None,
    ) -> None:
        self._clock = clock
        self.config = config or GroupConfig()
        self._store = store
        self._partition_exists = partition_exists
        self._groups: dict[str, Group] = {}
        self._deadlines = Deadlines()
        self._wakeup = asyncio.Event()

    # ---- loading -------------------------------------------------------------------------------------
    def restore(self, loaded: LoadedGroups) -> None:
        now = self._clock()
        for group_id, stored in loaded.groups.items():
            group = self._group_or_create(group_id)
            group.generation_id = stored.generation_id
            group.protocol_type = stored.protocol_type or None
            group.protocol_name = stored.protocol_name
            group.leader_id = stored.leader_id
            group.state_timestamp = stored.state_timestamp
            for sm in stored.members:
                member = Member(
                    member_id=sm.member_id,
                    group_instance_id=sm.group_instance_id,
                    client_id=sm.client_id,
                    client_host=sm.client_host,
                    session_timeout_ms=sm.session_timeout_ms,
                    rebalance_timeout_ms=sm.rebalance_timeout_ms,
                    protocol_type=stored.protocol_type,
                    protocols=((stored.protocol_name or "", sm.subscription),),
                    assignment=sm.assignment,
                )
                group.members[member.member_id] = member
                if member.group_instance_id:
                    group.static_members[member.group_instance_id] = member.member_id
                self._arm_heartbeat(group, member, now)
            group.state = S.STABLE if group.members else S.EMPTY
        for group_id, offsets in loaded.offsets.items():
            self._group_or_create(group_id).offsets.update(offsets)

    def unload(self, error: ErrorCode) -> None:
        """This broker stops coordinating these groups (e.g. it lost the leadership of their offsets
        partition): every parked JoinGroup/SyncGroup is answered with `error` so its client goes to the
        new coordinator. The caller closes the store, so a request already past routing cannot persist."""
        for group in self._groups.values():
            for m in group.members.values():
                if m.join_future is not None:
                    self._resolve(m.join_future, JoinResult(error, member_id=m.member_id))
                    m.join_future = None
                if m.sync_future is not None:
                    self._resolve(m.sync_future, SyncResult(error))
                    m.sync_future = None
        self._groups.clear()
        self._deadlines = Deadlines()
        self._wakeup.set()

    # ---- timers --------------------------------------------------------------------------------------
    def next_deadline(self) -> int | None:
        return self._deadlines.next_deadline()

    def tick(self) -> None:
        """Fire every deadline that has passed by the clock's current time."""
        now = self._clock()
        for key in self._deadlines.pop_expired(now):
            assert isinstance(key, tuple)
            kind, group_id, *rest = key
            group = self._groups.get(group_id)
            if group is None:
                continue
            if kind == "heartbeat":
                self._on_heartbeat_expired(group, rest[0], now)
            elif kind == "pending":
                self._on_pending_expired(group, rest[0])
            elif kind == "join":
                self._on_rebalance_deadline(group)
            elif kind == "join-delay":
                self._try_complete_join(group)
            elif kind == "sync":
                self._on_sync_deadline(group, int(rest[0]))
            else:  # pragma: no cover - keys are built only in this class
                raise AssertionError(f"unknown deadline kind {kind!r}")

    async def run(self, *, max_wait_ms: int = 1000) -> None:
        """Background task: fire deadlines as they fall due (cancel it to stop)."""
        while True:
            self.tick()
            nxt = self.next_deadline()
            wait_ms = max_wait_ms if nxt is None else min(max_wait_ms, max(0, nxt - self._clock()))
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), wait_ms / 1000)

    def _arm(self, key: tuple[str, ...], deadline: int) -> None:
        self._deadlines.arm(key, deadline)
        self._wakeup.set()

    def _arm_heartbeat(self, group: Group, member: Member, now: int) -> None:
        member.heartbeat_deadline = now + member.session_timeout_ms
        self._arm(("heartbeat", group.group_id, member.member_id), member.heartbeat_deadline)

    def _on_heartbeat_expired(self, group: Group, member_id: str, now: int) -> None:
        member = group.members.get(member_id)
        if member is None or member.heartbeat_deadline > now:
            return  # gone, or re-armed by an earlier deadline fired in the same tick
        # A member parked in JoinGroup or SyncGroup cannot heartbeat; the rebalance timeout bounds it instead.
        if member.join_future is not None or member.sync_future is not None:
            self._arm_heartbeat(group, member, now)
            return
        log.info("group %s: member %s session expired", group.group_id, member_id)
        self._remove_member(group, member)

    def _on_pending_expired(self, group: Group, member_id: str) -> None:
        if group.pending_members.pop(member_id, None) is not None and group.state is S.PREPARING_REBALANCE:
            self._try_complete_join(group)

    def _on_sync_deadline(self, group: Group, generation: int) -> None:
        if group.state is not S.COMPLETING_REBALANCE or group.generation_id != generation:
            return
        stuck = [group.members[m] for m in group.pending_sync if m in group.members]
        log.info("group %s: %d members never sent SyncGroup; removing them", group.group_id, len(stuck))
        for member in stuck:
            self._remove_member(group, member)

    def _on_rebalance_deadline(self, group: Group) -> None:
        deadline = group.rebalance_deadline
        # The deadline of a rebalance begun earlier in this same tick has not passed yet.
        if group.state is S.PREPARING_REBALANCE and deadline is not None and deadline <= self._clock():
            self._complete_join(group, timed_out=True)

    # ---- helpers -------------------------------------------------------------------------------------
    def _group_or_create(self, group_id: str) -> Group:
        group = self._groups.get(group_id)
        if group is None:
            group = self._groups[group_id] = Group(group_id, state_timestamp=self._clock())
        return group

    def _set_state(self, group: Group, state: GroupState) -> None:
        group.state = state
        group.state_timestamp = self._clock()

    @staticmethod
    def _fenced(group: Group, instance_id: str | None, member_id: str) -> bool:
        if not instance_id:
            return False
        mapped = group.static_members.get(instance_id)
        return mapped is not None and mapped != member_id

    def _new_member_id(self, prefix: str) -> str:
        return f"{prefix}-{uuid.uuid4()}"

    @staticmethod
    def _resolve(fut: asyncio.Future[JoinResult] | asyncio.Future[SyncResult] | None, result: object) -> None:
        if fut is not None and not fut.done():
            fut.set_result(result)  # type: ignore[arg-type]

    def _join_result(self, group: Group, member: Member) -> JoinResult:
        is_leader = member.member_id == group.leader_id
        members = (
            tuple(
                JoinedMember(m.member_id, m.group_instance_id, m.metadata(group.protocol_name))
                for m in group.members.values()
            )
            if is_leader
            else ()
        )
        return JoinResult(
            ErrorCode.none,
            member_id=member.member_id,
            generation_id=group.generation_id,
            protocol_type=group.protocol_type,
            protocol_name=group.protocol_name,
            leader_id=group.leader_id or "",
            members=members,
        )

    def _persist_group(self, group: Group) -> None:
        if self._store is None:
            return
        stored = StoredGroup(
            protocol_type=group.protocol_type or "",
            generation_id=group.generation_id,
            protocol_name=group.protocol_name,
            leader_id=group.leader_id,
            state_timestamp=group.state_timestamp,
            members=tuple(
                StoredMember(
                    member_id=m.member_id,
                    group_instance_id=m.group_instance_id,
                    client_id=m.client_id,
                    client_host=m.client_host,
                    rebalance_timeout_ms=m.rebalance_timeout_ms,
                    session_timeout_ms=m.session_timeout_ms,
                    subscription=m.metadata(group.protocol_name),
                    assignment=m.assignment,
                )
                for m in group.members.values()
            ),
        )
        # Not awaited: callers are state transitions that must not yield. Offsets are what consumers resume
        # from; losing a generation to a crash costs a rebalance at most.
        self._store.write_nowait([(encode_group_key(GroupKey(group.group_id)), encode_group_value(stored))])

    # ---- rebalance machinery -------------------------------------------------------------------------
    def _prepare_rebalance(self, group: Group, reason: str) -> None:
        assert group.state is not S.DEAD
        now = self._clock()
        if group.state is S.COMPLETING_REBALANCE:
            # Assignments of the generation being completed are void; members waiting in SyncGroup rejoin.
            for m in group.members.values():
                m.assignment = b""
                if m.sync_future is not None:
                    self._resolve(m.sync_future, SyncResult(ErrorCode.rebalance_in_progress))
                    m.sync_future = None
                    # It could not heartbeat while parked: a full session to rejoin starts now.
                    self._arm_heartbeat(group, m, now)
        if group.state is S.EMPTY and self.config.group_initial_rebalance_delay_ms > 0:
            group.join_not_before = now + self.config.group_initial_rebalance_delay_ms
            self._arm(("join-delay", group.group_id), group.join_not_before)
        else:
            group.join_not_before = now
        timeout = max((m.rebalance_timeout_ms for m in group.members.values()), default=0)
        group.rebalance_deadline = now + timeout
        self._arm(("join", group.group_id), group.rebalance_deadline)
        log.info(
            "group %s: preparing rebalance (generation %d): %s", group.group_id, group.generation_id, reason
        )
        self._set_state(group, S.PREPARING_REBALANCE)

    def _maybe_prepare_rebalance(self, group: Group, reason: str) -> None:
        if group.state in (S.STABLE, S.COMPLETING_REBALANCE, S.EMPTY):
            self._prepare_rebalance(group, reason)
        if group.state is S.PREPARING_REBALANCE:
            self._try_complete_join(group)

    def _try_complete_join(self, group: Group) -> None:
        if (
            group.state is S.PREPARING_REBALANCE
            and group.all_members_joined()
            and self._clock() >= group.join_not_before
        ):
            self._complete_join(group, timed_out=False)

    def _complete_join(self, group: Group, *, timed_out: bool) -> None:
        assert group.state is S.PREPARING_REBALANCE
        # Dynamic members that did not rejoin in time leave the group; static ones keep their slot until
        # their session expires (KIP-345).
        for m in list(group.members.values()):
            if m.join_future is None and not m.group_instance_id:
                self._remove_member_quietly(group, m)
        if timed_out:
            group.pending_members.clear()
        self._deadlines.cancel(("join", group.group_id))
        group.rebalance_deadline = None
        group.generation_id += 1
        now = self._clock()
        if not group.members:
            group.protocol_name = None
            group.leader_id = None
            self._set_state(group, S.EMPTY)
            log.info("group %s: empty at generation %d", group.group_id, group.generation_id)
            self._persist_group(group)
            return
        group.protocol_name = group.select_protocol()
        leader = group.members.get(group.leader_id or "")
        if leader is None or leader.join_future is None:
            joined = [m for m in group.members.values() if m.join_future is not None]
            group.leader_id = (joined[0] if joined else next(iter(group.members.values()))).member_id
        self._set_state(group, S.COMPLETING_REBALANCE)
        log.info(
            "group %s: generation %d with %d members, protocol %s, leader %s",
            group.group_id,
            group.generation_id,
            len(group.members),
            group.protocol_name,
            group.leader_id,
        )
        for m in group.members.values():
            if m.join_future is not None:
                fut, m.join_future = m.join_future, None
                self._resolve(fut, self._join_result(group, m))
            self._arm_heartbeat(group, m, now)
        # A member that heartbeats but never syncs (a stuck leader) would hold the group in
        # CompletingRebalance forever; as Kafka 3.x does, such members are dropped after the rebalance
        # timeout.
        group.pending_sync = set(group.members)
        timeout = max(m.rebalance_timeout_ms for m in group.members.values())
        self._arm(("sync", group.group_id, str(group.generation_id)), now + timeout)

    def _remove_member_quietly(self, group: Group, member: Member) -> None:
        self._resolve(member.join_future, JoinResult(ErrorCode.unknown_member_id, member_id=member.member_id))
        self._resolve(member.sync_future, SyncResult(ErrorCode.unknown_member_id))
        member.join_future = member.sync_future = None
        del group.members[member.member_id]
        if (
            member.group_instance_id
            and group.static_members.get(member.group_instance_id) == member.member_id
        ):
            del group.static_members[member.group_instance_id]
        self._deadlines.cancel(("heartbeat", group.group_id, member.member_id))
        if group.leader_id == member.member_id:
            group.leader_id = next(iter(group.members), None)

    def _remove_member(self, group: Group, member: Member) -> None:
        self._remove_member_quietly(group, member)
        if group.state in (S.STABLE, S.COMPLETING_REBALANCE):
            self._prepare_rebalance(group, f"member {member.member_id} left")
        if group.state is S.PREPARING_REBALANCE:
            self._try_complete_join(group)

    def _add_member_and_rebalance(
        self, group: Group, member_id: str, req: JoinRequest, fut: asyncio.Future[JoinResult]
    ) -> None:
        member = Member(
            member_id=member_id,
            group_instance_id=req.group_instance_id,
            client_id=req.client_id,
            client_host=req.client_host,
            session_timeout_ms=req.session_timeout_ms,
            rebalance_timeout_ms=req.rebalance_timeout_ms,
            protocol_type=req.protocol_type,
            protocols=req.protocols,
            join_future=fut,
        )
        if not group.members:
            group.protocol_type = req.protocol_type
        group.members[member_id] = member
        if req.group_instance_id:
            group.static_members[req.group_instance_id] = member_id
        if group.leader_id is None:
            group.leader_id = member_id
        self._arm_heartbeat(group, member, self._clock())
        self._maybe_prepare_rebalance(group, f"member {member_id} joined")

    def _update_member_and_rebalance(
        self, group: Group, member: Member, req: JoinRequest, fut: asyncio.Future[JoinResult]
    ) -> None:
        member.protocols = req.protocols
        member.session_timeout_ms = req.session_timeout_ms
        member.rebalance_timeout_ms = req.rebalance_timeout_ms
        member.client_id, member.client_host = req.client_id, req.client_host
        if member.join_future is not None and member.join_future is not fut:
            # A second JoinGroup from the same member supersedes the first (the client gave up on it).
            self._resolve(member.join_future, JoinResult(ErrorCode.rebalance_in_progress, member.member_id))
        member.join_future = fut
        self._maybe_prepare_rebalance(group, f"member {member.member_id} rejoined")

    # ---- JoinGroup -----------------------------------------------------------------------------------
    async def join(self, req: JoinRequest) -> JoinResult:
        return await self.join_nowait(req)

    def join_nowait(self, req: JoinRequest) -> asyncio.Future[JoinResult]:
        fut: asyncio.Future[JoinResult] = asyncio.get_running_loop().create_future()
        error = self._join(req, fut)
        if error is not None:
            fut.set_result(error)
        return fut

    def _join(self, req: JoinRequest, fut: asyncio.Future[JoinResult]) -> JoinResult | None:
        cfg = self.config
        if not req.group_id:
            return JoinResult(ErrorCode.invalid_group_id, req.member_id)
        if not cfg.group_min_session_timeout_ms <= req.session_timeout_ms <= cfg.group_max_session_timeout_ms:
            return JoinResult(ErrorCode.invalid_session_timeout, req.member_id)
        group = self._groups.get(req.group_id)
        if group is None:
            if req.member_id:
                return JoinResult(ErrorCode.unknown_member_id, req.member_id)
            group = self._group_or_create(req.group_id)
        if group.state is S.DEAD:
            return JoinResult(ErrorCode.coordinator_not_available, req.member_id)
        if not group.supports(req.protocol_type, req.protocols):
            return JoinResult(ErrorCode.inconsistent_group_protocol, req.member_id)
        if not req.member_id:
            return self._join_unknown_member(group, req, fut)
        if self._fenced(group, req.group_instance_id, req.member_id):
            return JoinResult(ErrorCode.fenced_instance_id, req.member_id)
        if req.member_id in group.pending_members:
            del group.pending_members[req.member_id]
            self._deadlines.cancel(("pending", group.group_id, req.member_id))
            self._add_member_and_rebalance(group, req.member_id, req, fut)
            return None
        member = group.members.get(req.member_id)
        if member is None:
            return JoinResult(ErrorCode.unknown_member_id, req.member_id)
        self._arm_heartbeat(group, member, self._clock())
        if group.state is S.PREPARING_REBALANCE:
            self._update_member_and_rebalance(group, member, req, fut)
        elif group.state is S.COMPLETING_REBALANCE:
            if member.protocols == req.protocols:
                # The JoinGroup response was lost: answer it again.
                return self._join_result(group, member)
            self._update_member_and_rebalance(group, member, req, fut)
        elif group.state is S.STABLE:
            if member.member_id == group.leader_id or member.protocols != req.protocols:
                # The leader rejoining (e.g. its subscription's topics changed) or new metadata: rebalance.
                self._update_member_and_rebalance(group, member, req, fut)
            else:
                return self._join_result(group, member)
        else:
            return JoinResult(ErrorCode.unknown_member_id, req.member_id)
        return None

    def _join_unknown_member(
        self, group: Group, req: JoinRequest, fut: asyncio.Future[JoinResult]
    ) -> JoinResult | None:
        if req.group_instance_id:
            old_id = group.static_members.get(req.group_instance_id)
            new_id = self._new_member_id(req.group_instance_id)
            if old_id is not None and old_id in group.members:
                return self._replace_static_member(group, group.members[old_id], new_id, req, fut)
        if len(group.members) + len(group.pending_members) >= self.config.group_max_size:
            return JoinResult(ErrorCode.group_max_size_reached)
        if req.group_instance_id:
            self._add_member_and_rebalance(group, self._new_member_id(req.group_instance_id), req, fut)
            return None
        new_id = self._new_member_id(req.client_id or "member")
        if req.require_known_member_id:
            deadline = self._clock() + req.session_timeout_ms
            group.pending_members[new_id] = deadline
            self._arm(("pending", group.group_id, new_id), deadline)
            return JoinResult(ErrorCode.member_id_required, member_id=new_id)
        self._add_member_and_rebalance(group, new_id, req, fut)
        return None

    def _replace_static_member(
        self, group: Group, old: Member, new_id: str, req: JoinRequest, fut: asyncio.Future[JoinResult]
    ) -> JoinResult | None:
        """A static member restarted (same group.instance.id, no member id): it takes over its old slot
        under a new member id, and whoever still uses the old id is fenced."""
        self._resolve(old.join_future, JoinResult(ErrorCode.fenced_instance_id, old.member_id))
        self._resolve(old.sync_future, SyncResult(ErrorCode.fenced_instance_id))
        old.join_future = old.sync_future = None
        self._deadlines.cancel(("heartbeat", group.group_id, old.member_id))
        was_leader = group.leader_id == old.member_id
        # Rebuild the dict to keep the member's position (join order decides leader succession).
        group.members = {(new_id if k == old.member_id else k): v for k, v in group.members.items()}
        old_protocols = old.protocols
        old.member_id = new_id
        assert req.group_instance_id is not None
        group.static_members[req.group_instance_id] = new_id
        if was_leader:
            group.leader_id = new_id
        self._arm_heartbeat(group, old, self._clock())
        if group.state is S.STABLE and not was_leader and old_protocols == req.protocols:
            # Same subscription: hand back the current generation; SyncGroup returns the kept assignment.
            return self._join_result(group, old)
        self._update_member_and_rebalance(group, old, req, fut)
        return None

    # ---- SyncGroup -----------------------------------------------------------------------------------
    async def sync(
        self,
        group_id: str,
        generation_id: int,
        member_id: str,
        assignments: Mapping[str, bytes],
        *,
        group_instance_id: str | None = None,
        protocol_type: str | None = None,
        protocol_name: str | None = None,
    ) -> SyncResult:
        fut = self.sync_nowait(
            group_id,
            generation_id,
            member_id,
            assignments,
            group_instance_id=group_instance_id,
            protocol_type=protocol_type,
            protocol_name=protocol_name,
        )
        return await fut

    def sync_nowait(
        self,
        group_id: str,
        generation_id: int,
        member_id: str,
        assignments: Mapping[str, bytes],
        *,
        group_instance_id: str | None = None,
        protocol_type: str | None = None,
        protocol_name: str | None = None,
    ) -> asyncio.Future[SyncResult]:
        fut: asyncio.Future[SyncResult] = asyncio.get_running_loop().create_future()
        group = self._groups.get(group_id)
        error: ErrorCode | None = None
        if group is None:
            error = ErrorCode.unknown_member_id
        elif group.state is S.DEAD:
            error = ErrorCode.coordinator_not_available
        elif self._fenced(group, group_instance_id, member_id):
            error = ErrorCode.fenced_instance_id
        elif member_id not in group.members:
            error = ErrorCode.unknown_member_id
        elif generation_id != group.generation_id:
            error = ErrorCode.illegal_generation
        elif (protocol_type is not None and protocol_type != group.protocol_type) or (
            protocol_name is not None and protocol_name != group.protocol_name
        ):
            error = ErrorCode.inconsistent_group_protocol
        elif group.state is S.EMPTY:
            error = ErrorCode.unknown_member_id
        elif group.state is S.PREPARING_REBALANCE:
            error = ErrorCode.rebalance_in_progress
        if error is not None or group is None:
            fut.set_result(SyncResult(error or ErrorCode.unknown_member_id))
            return fut
        member = group.members[member_id]
        self._arm_heartbeat(group, member, self._clock())
        if group.state is S.STABLE:
            fut.set_result(self._sync_result(group, member))
            return fut
        assert group.state is S.COMPLETING_REBALANCE
        group.pending_sync.discard(member_id)
        if member.sync_future is not None and member.sync_future is not fut:
            self._resolve(member.sync_future, SyncResult(ErrorCode.rebalance_in_progress))
        member.sync_future = fut
        if member_id == group.leader_id:
            for m in group.members.values():
                m.assignment = bytes(assignments.get(m.member_id, b""))
            self._set_state(group, S.STABLE)
            self._persist_group(group)
            for m in group.members.values():
                if m.sync_future is not None:
                    waiting, m.sync_future = m.sync_future, None
                    self._resolve(waiting, self._sync_result(group, m))
        return fut

    @staticmethod
    def _sync_result(group: Group, member: Member) -> SyncResult:
        return SyncResult(ErrorCode.none, member.assignment, group.protocol_type, group.protocol_name)

    # ---- Heartbeat / LeaveGroup ----------------------------------------------------------------------
    async def heartbeat(
        self, group_id: str, generation_id: int, member_id: str, group_instance_id: str | None = None
    ) -> ErrorCode:
        group = self._groups.get(group_id)
        if group is None:
            return ErrorCode.unknown_member_id
        if group.state is S.DEAD:
            return ErrorCode.coordinator_not_available
        if self._fenced(group, group_instance_id, member_id):
            return ErrorCode.fenced_instance_id
        member = group.members.get(member_id)
        if member is None or group.state is S.EMPTY:
            return ErrorCode.unknown_member_id
        if generation_id != group.generation_id:
            return ErrorCode.illegal_generation
        self._arm_heartbeat(group, member, self._clock())
        if group.state is S.PREPARING_REBALANCE:
            return ErrorCode.rebalance_in_progress
        return ErrorCode.none

    async def leave(self, group_id: str, members: Sequence[MemberIdentity]) -> LeaveResult:
        group = self._groups.get(group_id)
        if group is None:
            return LeaveResult(ErrorCode.none, tuple((m, ErrorCode.unknown_member_id) for m in members))
        if group.state is S.DEAD:
            return LeaveResult(ErrorCode.coordinator_not_available)
        results: list[tuple[MemberIdentity, ErrorCode]] = []
        for ident in members:
            member_id = ident.member_id
            if not member_id and ident.group_instance_id:
                # KIP-345: an admin may remove a static member by instance id alone.
                member_id = group.static_members.get(ident.group_instance_id, "")
            if self._fenced(group, ident.group_instance_id, member_id):
                results.append((ident, ErrorCode.fenced_instance_id))
            elif member_id in group.pending_members:
                del group.pending_members[member_id]
                self._deadlines.cancel(("pending", group.group_id, member_id))
                self._try_complete_join(group)
                results.append((ident, ErrorCode.none))
            elif member_id not in group.members:
                results.append((ident, ErrorCode.unknown_member_id))
            else:
                log.info("group %s: member %s left", group_id, member_id)
                self._remove_member(group, group.members[member_id])
                results.append((ident, ErrorCode.none))
        return LeaveResult(ErrorCode.none, tuple(results))

    # ---- offsets -------------------------------------------------------------------------------------
    def validate_txn_offset_commit(
        self, group_id: str, generation_id: int, member_id: str, group_instance_id: str | None
    ) -> ErrorCode:
        """KIP-447: a TxnOffsetCommit (v3+) names the consumer's member, generation and static instance, and
        is checked as Kafka's group coordinator checks it, so a producer whose consumer has been replaced
        in the group (a zombie) cannot commit offsets for partitions it no longer owns. Older requests
        carry generation -1 and no member: accepted as before. Unlike OffsetCommit, a transactional commit
        is accepted while the group completes a rebalance and does not count as a heartbeat."""
        if not group_id:
            return ErrorCode.invalid_group_id
        group = self._groups.get(group_id)
        if group is None:
            # A group that does not exist yet takes offsets only from clients outside group management.
            return ErrorCode.illegal_generation if generation_id >= 0 else ErrorCode.none
        if group.state is S.DEAD:
            return ErrorCode.coordinator_not_available
        if generation_id < 0 and group.state is S.EMPTY:
            return ErrorCode.none
        if generation_id < 0 and not member_id and not group_instance_id:
            return ErrorCode.none  # v0-v2: no identity to check
        if group_instance_id:
            mapped = group.static_members.get(group_instance_id)
            if mapped is None:
                return ErrorCode.unknown_member_id
            if mapped != member_id:
                return ErrorCode.fenced_instance_id
        elif member_id not in group.members:
            return ErrorCode.unknown_member_id
        if generation_id != group.generation_id:
            return ErrorCode.illegal_generation
        return ErrorCode.none

    async def commit_offsets(
        self,
        group_id: str,
        generation_id: int,
        member_id: str,
        offsets: Sequence[OffsetCommitEntry],
        *,
        group_instance_id: str | None = None,
    ) -> list[PartitionResult]:
        def all_fail(code: ErrorCode) -> list[PartitionResult]:
            return [PartitionResult(o.topic, o.partition, code) for o in offsets]

        if not group_id:
            return all_fail(ErrorCode.invalid_group_id)
        group = self._groups.get(group_id)
        if group is None:
            if generation_id >= 0:
                return all_fail(ErrorCode.illegal_generation)
            # Kafka lets clients that manage their own assignment (generation -1) store offsets too.
            group = self._group_or_create(group_id)
        if group.state is S.DEAD:
            return all_fail(ErrorCode.coordinator_not_available)
        if self._fenced(group, group_instance_id, member_id):
            return all_fail(ErrorCode.fenced_instance_id)
        if not (generation_id < 0 and group.state is S.EMPTY):
            if group.state is S.COMPLETING_REBALANCE:
                return all_fail(ErrorCode.rebalance_in_progress)
            member = group.members.get(member_id)
            if member is None:
                return all_fail(ErrorCode.unknown_member_id)
            if generation_id != group.generation_id:
                return all_fail(ErrorCode.illegal_generation)
            self._arm_heartbeat(group, member, self._clock())
        now = self._clock()
        results: list[PartitionResult] = []
        records: list[Record] = []
        accepted: list[tuple[tuple[str, int], CommittedOffset]] = []
        for o in offsets:
            metadata = o.metadata or ""
            if len(metadata.encode()) > self.config.offset_metadata_max_bytes:
                results.append(PartitionResult(o.topic, o.partition, ErrorCode.offset_metadata_too_large))
                continue
            if self._partition_exists is not None and not self._partition_exists(o.topic, o.partition):
                results.append(PartitionResult(o.topic, o.partition, ErrorCode.unknown_topic_or_partition))
                continue
            value = CommittedOffset(o.offset, o.leader_epoch, metadata, now)
            records.append(
                (encode_offset_key(OffsetKey(group_id, o.topic, o.partition)), encode_offset_value(value))
            )
            accepted.append(((o.topic, o.partition), value))
            results.append(PartitionResult(o.topic, o.partition, ErrorCode.none))
        if records and self._store is not None:
            # Written before the in-memory view changes: a failed write must not show as committed.
            try:
                await self._store.write(records)
            except GroupStoreError as exc:
                log.error("group %s: offset commit not persisted: %s", group_id, exc)
                return [
                    PartitionResult(r.topic, r.partition, ErrorCode.coordinator_not_available)
                    if r.error_code == ErrorCode.none
                    else r
                    for r in results
                ]
        group.offsets.update(accepted)
        return results

    async def commit_transactional_offsets(self, group_id: str, offsets: Sequence[OffsetCommitEntry]) -> None:
        """Offsets of a committed transaction (TxnOffsetCommit, then EndTxn commit). The producer's
        generation was its own business when it sent them; the transaction's commit makes them the group's
        committed offsets, whatever the group's state now. Raises GroupStoreError if not persisted."""
        group = self._group_or_create(group_id)
        now = self._clock()
        accepted = [
            ((o.topic, o.partition), CommittedOffset(o.offset, o.leader_epoch, o.metadata or "", now))
            for o in offsets
        ]
        records: list[Record] = [
            (encode_offset_key(OffsetKey(group_id, t, p)), encode_offset_value(v)) for (t, p), v in accepted
        ]
        if records and self._store is not None:
            await self._store.write(records)
        group.offsets.update(accepted)

    async def fetch_offsets(
        self, group_id: str, partitions: Sequence[tuple[str, int]] | None = None
    ) -> OffsetFetchResult:
        """Committed offsets of the given partitions (all the group has, when None); -1 where none."""
        group = self._groups.get(group_id)
        stored: Mapping[tuple[str, int], CommittedOffset] = group.offsets if group is not None else {}
        wanted = sorted(stored) if partitions is None else list(partitions)
        out: list[FetchedOffset] = []
        for topic, partition in wanted:
            c = stored.get((topic, partition))
            if c is None:
                out.append(FetchedOffset(topic, partition, -1, -1, ""))
            else:
                out.append(FetchedOffset(topic, partition, c.offset, c.leader_epoch, c.metadata))
        return OffsetFetchResult(ErrorCode.none, tuple(out))

    def committed_offsets(self) -> Iterator[tuple[str, str, int, int]]:
        """(group, topic, partition, committed offset) for lag metrics: lag = log end offset - committed.

        Iterates over copies: the metrics endpoint scrapes from its own thread while the loop commits."""
        for group in list(self._groups.values()):
            for (topic, partition), c in list(group.offsets.items()):
                yield group.group_id, topic, partition, c.offset

    # ---- admin ---------------------------------------------------------------------------------------
    async def list_groups(self, states: Sequence[str] | None = None) -> list[GroupListing]:
        wanted = {s.lower() for s in states} if states else None
        return [
            GroupListing(g.group_id, g.protocol_type or "", g.state.value)
            for g in self._groups.values()
            if g.state is not S.DEAD and (wanted is None or g.state.value.lower() in wanted)
        ]

    async def describe_groups(self, group_ids: Sequence[str]) -> list[GroupDescription]:
        out: list[GroupDescription] = []
        for group_id in group_ids:
            group = self._groups.get(group_id)
            if group is None:
                out.append(GroupDescription(ErrorCode.none, group_id, S.DEAD.value, "", ""))
                continue
            # Kafka reports the chosen protocol only once it is settled (Stable).
            stable = group.state is S.STABLE
            members = tuple(
                MemberDescription(
                    m.member_id,
                    m.group_instance_id,
                    m.client_id,
                    m.client_host,
                    m.metadata(group.protocol_name) if stable else b"",
                    m.assignment if stable else b"",
                )
                for m in group.members.values()
            )
            out.append(
                GroupDescription(
                    ErrorCode.none,
                    group_id,
                    group.state.value,
                    group.protocol_type or "",
                    (group.protocol_name or "") if stable else "",
                    members,
                )
            )
        return out

    async def delete_groups(self, group_ids: Sequence[str]) -> list[tuple[str, ErrorCode]]:
        out: list[tuple[str, ErrorCode]] = []
        for group_id in group_ids:
            group = self._groups.get(group_id)
            if group is None or group.state is S.DEAD:
                out.append((group_id, ErrorCode.group_id_not_found))
                continue
            if group.state is not S.EMPTY:
                out.append((group_id, ErrorCode.non_empty_group))
                continue
            if self._store is not None:
                tombstones: list[Record] = [
                    (encode_offset_key(OffsetKey(group_id, t, p)), None) for (t, p) in group.offsets
                ]
                tombstones.append((encode_group_key(GroupKey(group_id)), None))
                try:
                    await self._store.write(tombstones)
                except GroupStoreError as exc:
                    log.error("group %s: deletion not persisted: %s", group_id, exc)
                    out.append((group_id, ErrorCode.coordinator_not_available))
                    continue
            self._set_state(group, S.DEAD)
            del self._groups[group_id]
            out.append((group_id, ErrorCode.none))
        return out

    async def delete_offsets(
        self, group_id: str, partitions: Sequence[tuple[str, int]]
    ) -> tuple[ErrorCode, list[PartitionResult]]:
        """OffsetDelete: forget the group's committed offsets of ``partitions`` (Kafka's
        OffsetMetadataManager.deleteOffsets). The group must exist (GROUP_ID_NOT_FOUND) and be Empty, or be
        a consumer group, whose partitions of topics its members subscribe to answer
        GROUP_SUBSCRIBED_TO_TOPIC; a non-empty group of another protocol answers NON_EMPTY_GROUP. A
        partition without a committed offset answers no error, as in Kafka."""
        group = self._groups.get(group_id)
        if group is None or group.state is S.DEAD:
            return ErrorCode.group_id_not_found, []
        subscribed: set[str] | None = set()
        if group.state is not S.EMPTY:
            if group.protocol_type != CONSUMER_PROTOCOL_TYPE:
                return ErrorCode.non_empty_group, []
            subscribed = subscribed_topics(
                group.protocol_type, (m.metadata(group.protocol_name) for m in group.members.values())
            )
        results: list[PartitionResult] = []
        doomed: list[tuple[str, int]] = []
        for topic, partition in partitions:
            # Unknown subscriptions (unparsable metadata) count as subscribed: nothing in use is deleted.
            if subscribed is None or topic in subscribed:
                results.append(PartitionResult(topic, partition, ErrorCode.group_subscribed_to_topic))
                continue
            results.append(PartitionResult(topic, partition, ErrorCode.none))
            if (topic, partition) in group.offsets:
                doomed.append((topic, partition))
        if doomed and self._store is not None:
            try:
                await self._store.write(
                    [(encode_offset_key(OffsetKey(group_id, t, p)), None) for t, p in doomed]
                )
            except GroupStoreError as exc:
                log.error("group %s: offset deletion not persisted: %s", group_id, exc)
                return ErrorCode.coordinator_not_available, []
        for key in doomed:
            group.offsets.pop(key, None)
        if doomed:
            log.info("group %s: deleted %d committed offsets", group_id, len(doomed))
        return ErrorCode.none, results

    def delete_topic_offsets(self, topic: str) -> int:
        """Forget every group's committed offsets for a deleted topic (as Kafka does); returns how many."""
        doomed = [(g, key) for g in self._groups.values() for key in g.offsets if key[0] == topic]
        if not doomed:
            return 0
        if self._store is not None:
            self._store.write_nowait(
                [(encode_offset_key(OffsetKey(g.group_id, t, p)), None) for g, (t, p) in doomed]
            )
        for g, key in doomed:
            del g.offsets[key]
        return len(doomed)

    def group(self, group_id: str) -> Group | None:
        """Read-only view for tests, metrics and describe-style tooling."""
        return self._groups.get(group_id)
