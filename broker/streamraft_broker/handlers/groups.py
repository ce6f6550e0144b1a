"""Consumer-group APIs (JoinGroup, SyncGroup, Heartbeat, LeaveGroup, OffsetCommit, OffsetFetch, ListGroups,
DescribeGroups, DeleteGroups): translate kio requests into GroupCoordinator calls and its dataclasses back
into kio responses for the request's version. `ctx.groups` is a groups.service.GroupService; without one
every group API answers COORDINATOR_NOT_AVAILABLE. In replicated mode each group goes to the coordinator
of its `__consumer_offsets` partition (replication.group_offsets); groups coordinated elsewhere get
NOT_COORDINATOR."""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Any

from kio.schema.errors import ErrorCode

from streamraft_broker.groups import GroupCoordinator, JoinRequest, MemberIdentity, OffsetCommitEntry
from streamraft_broker.handlers.authz import group_denied, may, operations, topic_denied
from streamraft_broker.handlers.context import BrokerContext
from streamraft_broker.protocol.codec import build, nested, response_type
from streamraft_broker.protocol.header import RequestHeader
from streamraft_broker.protocol.versions import ApiKey
from streamraft_broker.security.acl import CLUSTER, Operation, Resource

if TYPE_CHECKING:
    from streamraft_broker.replication.group_offsets import GroupOffsets

DELETE_GROUPS = 42
CLASSIC_GROUP_TYPE = "classic"  # ListGroups v5's group type; KIP-848 consumer groups are not implemented
DEAD = "Dead"
_MS = datetime.timedelta(milliseconds=1)


def _ms(value: Any) -> int:
    if isinstance(value, datetime.timedelta):
        return int(value / _MS)
    return int(value)


def replicated_groups(ctx: BrokerContext) -> GroupOffsets | None:
    """The replicated-mode coordinators (replication.group_offsets), or None in single-node mode."""
    replication = ctx.extra.get("replication")
    found: GroupOffsets | None = getattr(replication, "group_offsets", None)
    return found


def _coordinator(
    ctx: BrokerContext, group_id: str, op: Operation = Operation.READ
) -> GroupCoordinator | ErrorCode:
    """The coordinator of `group_id` here, or the error to answer: GROUP_AUTHORIZATION_FAILED without
    ``op`` on the group (Read for membership and offsets), NOT_COORDINATOR when another broker
    coordinates it (replicated mode), COORDINATOR_LOAD_IN_PROGRESS while its partition loads."""
    if denied := group_denied(ctx, op, group_id):
        return ErrorCode(denied)
    replicated = replicated_groups(ctx)
    if replicated is not None:
        return replicated.coordinator_for(group_id)
    service = ctx.groups
    if service is None:
        return ErrorCode.coordinator_not_available
    coordinator: GroupCoordinator = service.ensure_started()
    return coordinator


coordinator_for = _coordinator
"""The coordinator of a group here, or the error to answer (for the group APIs in other modules)."""


def topic_names(ctx: BrokerContext, topics: Any) -> list[str | None]:
    """The topic each request entry names: by name, or by topic id from the versions that use ids (None:
    no topic has that id)."""
    by_id: dict[Any, str] | None = None
    out: list[str | None] = []
    for t in topics:
        name = getattr(t, "name", None)
        if name is not None:
            out.append(str(name))
            continue
        if by_id is None:
            by_id = {topic.topic_id: topic.name for topic in ctx.registry.topics.values()}
        out.append(by_id.get(getattr(t, "topic_id", None)))
    return out


def _all_coordinators(ctx: BrokerContext) -> list[GroupCoordinator] | None:
    replicated = replicated_groups(ctx)
    if replicated is not None:
        return replicated.coordinators()
    return None if ctx.groups is None else [ctx.groups.ensure_started()]


async def handle_join_group(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    version = header.api_version
    cls = response_type(ApiKey.JOIN_GROUP, version)
    coord = _coordinator(ctx, str(request.group_id))
    if isinstance(coord, ErrorCode):
        return build(
            cls,
            throttle_time=0,
            error_code=coord,
            generation_id=-1,
            protocol_type=None,
            protocol_name=None,
            leader="",
            member_id=request.member_id,
            members=(),
        )
    session_ms = _ms(request.session_timeout)
    result = await coord.join(
        JoinRequest(
            group_id=str(request.group_id),
            member_id=request.member_id,
            protocol_type=request.protocol_type,
            protocols=tuple((p.name, bytes(p.metadata)) for p in request.protocols),
            session_timeout_ms=session_ms,
            # v0 has no rebalance timeout; Kafka uses the session timeout for it.
            rebalance_timeout_ms=_ms(getattr(request, "rebalance_timeout", session_ms)),
            group_instance_id=getattr(request, "group_instance_id", None),
            client_id=header.client_id or "",
            client_host="",
            require_known_member_id=version >= 4,
        )
    )
    member_cls = nested(ApiKey.JOIN_GROUP, version, "JoinGroupResponseMember")
    members = tuple(
        build(member_cls, member_id=m.member_id, group_instance_id=m.group_instance_id, metadata=m.metadata)
        for m in result.members
    )
    return build(
        cls,
        throttle_time=0,
        error_code=result.error_code,
        generation_id=result.generation_id,
        protocol_type=result.protocol_type,
        # Before v7 the field is not nullable.
        protocol_name=result.protocol_name if version >= 7 else (result.protocol_name or ""),
        leader=result.leader_id,
        member_id=result.member_id,
        members=members,
    )


async def handle_sync_group(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    version = header.api_version
    cls = response_type(ApiKey.SYNC_GROUP, version)
    coord = _coordinator(ctx, str(request.group_id))
    if isinstance(coord, ErrorCode):
        return build(cls, throttle_time=0, error_code=coord, assignment=b"")
    result = await coord.sync(
        str(request.group_id),
        int(request.generation_id),
        request.member_id,
        {a.member_id: bytes(a.assignment) for a in request.assignments},
        group_instance_id=getattr(request, "group_instance_id", None),
        protocol_type=getattr(request, "protocol_type", None),
        protocol_name=getattr(request, "protocol_name", None),
    )
    return build(
        cls,
        throttle_time=0,
        error_code=result.error_code,
        protocol_type=result.protocol_type,
        protocol_name=result.protocol_name,
        assignment=result.assignment,
    )


async def handle_heartbeat(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    cls = response_type(ApiKey.HEARTBEAT, header.api_version)
    coord = _coordinator(ctx, str(request.group_id))
    if isinstance(coord, ErrorCode):
        return build(cls, throttle_time=0, error_code=coord)
    code = await coord.heartbeat(
        str(request.group_id),
        int(request.generation_id),
        request.member_id,
        getattr(request, "group_instance_id", None),
    )
    return build(cls, throttle_time=0, error_code=code)


async def handle_leave_group(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    version = header.api_version
    cls = response_type(ApiKey.LEAVE_GROUP, version)
    coord = _coordinator(ctx, str(request.group_id))
    if isinstance(coord, ErrorCode):
        return build(cls, throttle_time=0, error_code=coord, members=())
    if version >= 3:
        idents = [MemberIdentity(m.member_id, m.group_instance_id) for m in request.members]
    else:
        idents = [MemberIdentity(request.member_id)]
    result = await coord.leave(str(request.group_id), idents)
    if version < 3:
        # One member, one error: v0-v2 report it at the top level.
        code = result.members[0][1] if result.members else result.error_code
        return build(cls, throttle_time=0, error_code=code)
    member_cls = nested(ApiKey.LEAVE_GROUP, version, "MemberResponse")
    members = tuple(
        build(member_cls, member_id=i.member_id, group_instance_id=i.group_instance_id, error_code=code)
        for i, code in result.members
    )
    return build(cls, throttle_time=0, error_code=result.error_code, members=members)


async def handle_offset_commit(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    version = header.api_version
    cls = response_type(ApiKey.OFFSET_COMMIT, version)
    part_cls = nested(ApiKey.OFFSET_COMMIT, version, "OffsetCommitResponsePartition")
    topic_cls = nested(ApiKey.OFFSET_COMMIT, version, "OffsetCommitResponseTopic")
    # v10 names topics by id (KIP-848's commit form); an id no topic has is UNKNOWN_TOPIC_ID, as in Kafka.
    names = topic_names(ctx, request.topics)
    entries = [
        OffsetCommitEntry(
            topic=name,
            partition=int(p.partition_index),
            offset=int(p.committed_offset),
            metadata=p.committed_metadata,
            leader_epoch=int(getattr(p, "committed_leader_epoch", -1)),
        )
        for t, name in zip(request.topics, names, strict=True)
        if name is not None
        for p in t.partitions
    ]
    coord = _coordinator(ctx, str(request.group_id))
    # As Kafka: partitions of topics this principal may not Read are answered, never committed.
    refused: dict[str, ErrorCode] = {}
    if not isinstance(coord, ErrorCode):
        refused = {
            e.topic: ErrorCode(c) for e in entries if (c := topic_denied(ctx, Operation.READ, e.topic))
        }
    entries = [e for e in entries if e.topic not in refused]
    codes: dict[tuple[str, int], ErrorCode] = {}
    if isinstance(coord, ErrorCode):
        codes = {(e.topic, e.partition): coord for e in entries}
    elif entries:
        generation = getattr(request, "generation_id_or_member_epoch", getattr(request, "generation_id", -1))
        results = await coord.commit_offsets(
            str(request.group_id),
            int(generation),
            request.member_id,
            entries,
            group_instance_id=getattr(request, "group_instance_id", None),
        )
        codes = {(r.topic, r.partition): r.error_code for r in results}
    topics = tuple(
        build(
            topic_cls,
            name=name,
            topic_id=getattr(t, "topic_id", None),
            partitions=tuple(
                build(
                    part_cls,
                    partition_index=p.partition_index,
                    error_code=ErrorCode.unknown_topic_id
                    if name is None
                    else refused.get(name) or codes[(name, p.partition_index)],
                )
                for p in t.partitions
            ),
        )
        for t, name in zip(request.topics, names, strict=True)
    )
    return build(cls, throttle_time=0, topics=topics)


async def handle_offset_fetch(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    version = header.api_version
    cls = response_type(ApiKey.OFFSET_FETCH, version)
    if version < 8:
        topics, error = await _fetch_group_offsets(ctx, version, str(request.group_id), request.topics)
        return build(cls, throttle_time=0, topics=topics, error_code=error)
    # v8 (KIP-709) batches groups: each is answered as a v7 request for it alone would be, error included.
    # v9's member id and epoch concern KIP-848 consumer groups; Kafka does not check them for classic ones.
    group_cls = nested(ApiKey.OFFSET_FETCH, version, "OffsetFetchResponseGroup")
    groups = []
    for g in request.groups:
        topics, error = await _fetch_group_offsets(ctx, version, str(g.group_id), g.topics)
        groups.append(build(group_cls, group_id=g.group_id, topics=topics, error_code=error))
    return build(cls, throttle_time=0, groups=tuple(groups))


async def _fetch_group_offsets(
    ctx: BrokerContext, version: int, group_id: str, asked: Any
) -> tuple[tuple[Any, ...], ErrorCode]:
    """One group's committed offsets (``asked`` None: all of them) as response topics, and its error."""
    plural = "s" if version >= 8 else ""
    part_cls = nested(ApiKey.OFFSET_FETCH, version, f"OffsetFetchResponsePartition{plural}")
    topic_cls = nested(ApiKey.OFFSET_FETCH, version, f"OffsetFetchResponseTopic{plural}")
    by_id = version >= 10  # v10 names topics by id (KIP-848's fetch form)
    names = [] if asked is None else topic_names(ctx, asked)
    unknown = [t for t, name in zip(asked or (), names, strict=True) if name is None]
    wanted = (
        None
        if asked is None
        else [
            (name, int(p)) for t, name in zip(asked, names, strict=True) if name for p in t.partition_indexes
        ]
    )
    ids = {t.name: t.topic_id for t in ctx.registry.topics.values()} if by_id else {}
    # An id no topic has is answered UNKNOWN_TOPIC_ID, as Kafka does.
    missing = tuple(
        build(
            topic_cls,
            topic_id=t.topic_id,
            partitions=tuple(
                build(
                    part_cls,
                    partition_index=p,
                    committed_offset=-1,
                    committed_leader_epoch=-1,
                    metadata="",
                    error_code=ErrorCode.unknown_topic_id,
                )
                for p in t.partition_indexes
            ),
        )
        for t in unknown
    )
    coord = _coordinator(ctx, group_id)
    if isinstance(coord, ErrorCode):
        # Before v2 there is no top-level error: every asked partition carries it.
        failed = tuple(
            build(
                topic_cls,
                name=name,
                topic_id=getattr(t, "topic_id", None),
                partitions=tuple(
                    build(
                        part_cls,
                        partition_index=p,
                        committed_offset=-1,
                        committed_leader_epoch=-1,
                        metadata="",
                        error_code=coord,
                    )
                    for p in t.partition_indexes
                ),
            )
            for t, name in zip(asked or (), names, strict=True)
            if name is not None
        )
        return failed + missing, coord
    result = await coord.fetch_offsets(group_id, wanted)
    by_topic: dict[str, list[Any]] = {}
    for p in result.partitions:
        # As Kafka: a topic this principal may not Describe is an error when asked for, else left out.
        denied = topic_denied(ctx, Operation.DESCRIBE, p.topic)
        if denied and wanted is None:
            continue
        if by_id and p.topic not in ids:
            continue  # v10 names topics by id: offsets of a deleted topic have none to be named by
        by_topic.setdefault(p.topic, []).append(
            build(
                part_cls,
                partition_index=p.partition,
                committed_offset=-1 if denied else p.offset,
                committed_leader_epoch=-1 if denied else p.leader_epoch,
                metadata="" if denied else p.metadata,
                error_code=ErrorCode(denied) if denied else p.error_code,
            )
        )
    topics = tuple(
        build(topic_cls, name=name, topic_id=ids.get(name), partitions=tuple(parts))
        for name, parts in by_topic.items()
    )
    return topics + missing, result.error_code


async def handle_list_groups(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    version = header.api_version
    cls = response_type(ApiKey.LIST_GROUPS, version)
    coords = _all_coordinators(ctx)
    if coords is None:
        return build(cls, throttle_time=0, error_code=ErrorCode.coordinator_not_available, groups=())
    replicated = replicated_groups(ctx)
    if replicated is not None and replicated.loading():
        # As Kafka: a partial list would hide groups; the client asks again.
        return build(cls, throttle_time=0, error_code=ErrorCode.coordinator_load_in_progress, groups=())
    states = getattr(request, "states_filter", None) or None
    listed_cls = nested(ApiKey.LIST_GROUPS, version, "ListedGroup")
    listed = [g for coord in coords for g in await coord.list_groups(states)]
    types = {str(t).lower() for t in getattr(request, "types_filter", ())}
    if types and CLASSIC_GROUP_TYPE not in types:
        listed = []  # v5 (KIP-848): every group here is a classic one; Kafka matches types case-blind
    if not may(ctx, Operation.DESCRIBE, CLUSTER):
        # As Kafka: without Describe on the cluster, only the groups this principal may Describe.
        listed = [g for g in listed if may(ctx, Operation.DESCRIBE, Resource.group(g.group_id))]
    groups = tuple(
        build(
            listed_cls,
            group_id=g.group_id,
            protocol_type=g.protocol_type,
            group_state=g.state,
            group_type=CLASSIC_GROUP_TYPE,
        )
        for g in listed
    )
    return build(cls, throttle_time=0, error_code=ErrorCode.none, groups=groups)


async def handle_describe_groups(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    version = header.api_version
    cls = response_type(ApiKey.DESCRIBE_GROUPS, version)
    group_cls = nested(ApiKey.DESCRIBE_GROUPS, version, "DescribedGroup")
    member_cls = nested(ApiKey.DESCRIBE_GROUPS, version, "DescribedGroupMember")
    described: list[Any] = []
    for group_id in (str(g) for g in request.groups):
        coord = _coordinator(ctx, group_id, Operation.DESCRIBE)
        if isinstance(coord, ErrorCode):
            described.append(
                build(
                    group_cls,
                    error_code=coord,
                    group_id=group_id,
                    group_state="",
                    protocol_type="",
                    protocol_data="",
                    members=(),
                    authorized_operations=-2147483648,
                )
            )
            continue
        described.extend(
            build(
                group_cls,
                error_code=ErrorCode.group_id_not_found if missing else d.error_code,
                error_message=f"Group {d.group_id} not found." if missing else None,
                group_id=d.group_id,
                group_state=d.state,
                protocol_type=d.protocol_type,
                protocol_data=d.protocol_data,
                members=tuple(
                    build(
                        member_cls,
                        member_id=m.member_id,
                        group_instance_id=m.group_instance_id,
                        client_id=m.client_id,
                        client_host=m.client_host,
                        member_metadata=m.metadata,
                        member_assignment=m.assignment,
                    )
                    for m in d.members
                ),
                authorized_operations=operations(
                    ctx,
                    Resource.group(d.group_id),
                    bool(getattr(request, "include_authorized_operations", False)),
                ),
            )
            for d in await coord.describe_groups([group_id])
            # v6 (KIP-1043) names a group that does not exist instead of describing it as Dead and empty.
            for missing in [version >= 6 and d.state == DEAD and not d.members]
        )
    return build(cls, throttle_time=0, groups=tuple(described))


async def handle_delete_groups(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    version = header.api_version
    cls = response_type(DELETE_GROUPS, version)
    result_cls = nested(DELETE_GROUPS, version, "DeletableGroupResult")
    outcome: list[tuple[str, ErrorCode]] = []
    for group_id in (str(g) for g in request.groups_names):
        coord = _coordinator(ctx, group_id, Operation.DELETE)
        if isinstance(coord, ErrorCode):
            outcome.append((group_id, coord))
        else:
            outcome.extend(await coord.delete_groups([group_id]))
    results = tuple(build(result_cls, group_id=g, error_code=code) for g, code in outcome)
    return build(cls, throttle_time=0, results=results)
