"""DescribeCluster, FindCoordinator (this node coordinates every group and transactional id),
OffsetForLeaderEpoch."""

from __future__ import annotations

from typing import Any

from streamraft_broker.handlers.authz import cluster_denied, group_denied, may, operations, topic_denied
from streamraft_broker.handlers.broker_addresses import broker_addresses, controller_id
from streamraft_broker.handlers.context import BrokerContext, endpoint_of, err
from streamraft_broker.protocol.codec import build, nested, response_type
from streamraft_broker.protocol.header import RequestHeader
from streamraft_broker.protocol.versions import ApiKey
from streamraft_broker.security.acl import CLUSTER, Operation, Resource

UNKNOWN_TOPIC_OR_PARTITION = 3
NOT_LEADER_OR_FOLLOWER = 6
INVALID_REQUEST = 42
COORDINATOR_NOT_AVAILABLE = 15
TRANSACTIONAL_ID_AUTHORIZATION_FAILED = 53
COORDINATOR_GROUP, COORDINATOR_TRANSACTION = 0, 1


async def handle_describe_cluster(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    version = header.api_version
    broker_cls = nested(ApiKey.DESCRIBE_CLUSTER, version, "DescribeClusterBroker")
    # v2 (KIP-1073): we keep no fenced state (a broker is listed until decommissioned), so is_fenced is
    # always false and include_fenced_brokers changes nothing.
    brokers = tuple(
        build(broker_cls, broker_id=a.node_id, host=a.host, port=a.port, rack=a.rack, is_fenced=False)
        for a in broker_addresses(ctx)
    )
    denied = cluster_denied(ctx, Operation.DESCRIBE)
    return build(
        response_type(ApiKey.DESCRIBE_CLUSTER, version),
        throttle_time=0,
        error_code=err(denied),
        error_message="Describe on the cluster is required" if denied else None,
        endpoint_type=1,
        cluster_id=ctx.cluster_id,
        controller_id=controller_id(ctx),
        brokers=() if denied else brokers,
        cluster_authorized_operations=operations(
            ctx, CLUSTER, bool(getattr(request, "include_cluster_authorized_operations", False))
        ),
    )


async def handle_find_coordinator(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    version = header.api_version
    cls = response_type(ApiKey.FIND_COORDINATOR, version)
    key_type = int(getattr(request, "key_type", COORDINATOR_GROUP))

    def outcome(key: str) -> tuple[int, str | None]:
        if key_type == COORDINATOR_TRANSACTION:
            if not may(ctx, Operation.DESCRIBE, Resource.transactional_id(key)):
                return (
                    TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
                    f"Describe on transactional id {key!r} is not allowed",
                )
            if "transactions" not in ctx.extra:
                why = (
                    "transactions run on a single node only so far (no replicated transaction coordinator)"
                    if "replication" in ctx.extra
                    else "transactions need a broker storing its partitions on disk"
                )
                return COORDINATOR_NOT_AVAILABLE, why
            return 0, None
        if key_type != COORDINATOR_GROUP:
            return INVALID_REQUEST, f"unknown coordinator key type {key_type}"
        if denied := group_denied(ctx, Operation.DESCRIBE, key):
            return denied, f"Describe on group {key!r} is not allowed"
        return 0, None

    own_host, own_port = endpoint_of(ctx, ctx.node_id, ctx.host, ctx.port)
    if version >= 4:
        coord_cls = nested(ApiKey.FIND_COORDINATOR, version, "Coordinator")
        coords = tuple(
            build(
                coord_cls,
                key=k,
                node_id=ctx.node_id if code == 0 else -1,
                host=own_host if code == 0 else "",
                port=own_port if code == 0 else -1,
                error_code=err(code),
                error_message=message,
            )
            for k in request.coordinator_keys
            for code, message in [outcome(str(k))]
        )
        return build(cls, throttle_time=0, coordinators=coords)
    code, message = outcome(str(request.key))
    return build(
        cls,
        throttle_time=0,
        error_code=err(code),
        error_message=message,
        node_id=ctx.node_id if code == 0 else -1,
        host=own_host if code == 0 else "",
        port=own_port if code == 0 else -1,
    )


async def handle_offset_for_leader_epoch(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    version = header.api_version
    part_cls = nested(ApiKey.OFFSET_FOR_LEADER_EPOCH, version, "EpochEndOffset")
    topic_cls = nested(ApiKey.OFFSET_FOR_LEADER_EPOCH, version, "OffsetForLeaderTopicResult")
    topics = []
    for t in request.topics:
        parts = []
        for p in t.partitions:
            partition = ctx.registry.partition(t.topic, int(p.partition))
            if denied := topic_denied(ctx, Operation.DESCRIBE, t.topic):
                parts.append(build(part_cls, error_code=err(denied), partition=p.partition))
                continue
            if partition is None:
                parts.append(
                    build(part_cls, error_code=err(UNKNOWN_TOPIC_OR_PARTITION), partition=p.partition)
                )
                continue
            rep = ctx.extra.get("replication")
            if rep is not None and not rep.leader_ready(t.topic, int(p.partition)):
                # Only a leader that has applied everything committed before its term knows where the log
                # ends. A replica still applying (a new leader after a restart) would answer a short end
                # offset, and the client would take it as truncation and rewind: it retries instead.
                parts.append(build(part_cls, error_code=err(NOT_LEADER_OR_FOLLOWER), partition=p.partition))
                continue
            # Epochs are not tracked per offset: every epoch the client asks about ends at the log end,
            # which holds because a Raft leader's log already contains every committed batch.
            parts.append(
                build(
                    part_cls,
                    error_code=err(0),
                    partition=p.partition,
                    leader_epoch=partition.leader_epoch,
                    end_offset=partition.log_end_offset,
                )
            )
        topics.append(build(topic_cls, topic=t.topic, partitions=tuple(parts)))
    return build(
        response_type(ApiKey.OFFSET_FOR_LEADER_EPOCH, version), throttle_time=0, topics=tuple(topics)
    )
