"""AlterPartitionReassignments (45), ListPartitionReassignments (46) and AlterPartition (56, sent by a
partition's leader to the controller when a move has reached its target); see replication.reassign."""

from __future__ import annotations

from typing import Any

from streamraft_broker.handlers.authz import cluster_denied, may_cluster
from streamraft_broker.handlers.context import BrokerContext, err
from streamraft_broker.protocol.codec import build, nested, response_type
from streamraft_broker.protocol.header import RequestHeader
from streamraft_broker.protocol.versions import ApiKey
from streamraft_broker.replication import broker_proof
from streamraft_broker.replication.reassign import (
    NOT_CONTROLLER,
    UNKNOWN_TOPIC_OR_PARTITION,
    MoveError,
    finish_move,
    request_move,
)
from streamraft_broker.security.acl import CLUSTER_AUTHORIZATION_FAILED, Operation

INVALID_REQUEST = 42
_SINGLE_NODE = "partition reassignment needs --replication raft"


async def handle_alter_partition_reassignments(
    ctx: BrokerContext, header: RequestHeader, request: Any
) -> Any:
    version = header.api_version
    part_cls = nested(ApiKey.ALTER_PARTITION_REASSIGNMENTS, version, "ReassignablePartitionResponse")
    topic_cls = nested(ApiKey.ALTER_PARTITION_REASSIGNMENTS, version, "ReassignableTopicResponse")
    rep = ctx.extra.get("replication")
    top_code, top_message = 0, None
    if denied := cluster_denied(ctx, Operation.ALTER):
        top_code, top_message = denied, "Alter on the cluster is required"
    elif rep is None:
        top_code, top_message = INVALID_REQUEST, _SINGLE_NODE
    elif not rep.runtime.is_leader(1):
        top_code, top_message = NOT_CONTROLLER, f"node {ctx.node_id} is not the controller"
    topics = []
    for t in request.topics:
        parts = []
        for p in t.partitions:
            code, message = top_code, top_message
            if code == 0 and rep is not None:
                target = None if p.replicas is None else [int(b) for b in p.replicas]
                try:
                    await request_move(rep, str(t.name), int(p.partition_index), target)
                except MoveError as exc:
                    code, message = exc.code, exc.message
            parts.append(
                build(
                    part_cls, partition_index=p.partition_index, error_code=err(code), error_message=message
                )
            )
        topics.append(build(topic_cls, name=t.name, partitions=tuple(parts)))
    return build(
        response_type(ApiKey.ALTER_PARTITION_REASSIGNMENTS, version),
        throttle_time=0,
        error_code=err(top_code if top_code != NOT_CONTROLLER else 0),
        error_message=None,
        responses=tuple(topics),
        allow_replication_factor_change=True,
    )


async def handle_list_partition_reassignments(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    """Answered from this broker's applied controller state (any broker can answer). A single node
    never has a reassignment in progress, so it answers an empty list: kafka-topics --describe asks
    this of every cluster and must not fail."""
    version = header.api_version
    part_cls = nested(ApiKey.LIST_PARTITION_REASSIGNMENTS, version, "OngoingPartitionReassignment")
    topic_cls = nested(ApiKey.LIST_PARTITION_REASSIGNMENTS, version, "OngoingTopicReassignment")
    cls = response_type(ApiKey.LIST_PARTITION_REASSIGNMENTS, version)
    rep = ctx.extra.get("replication")
    if denied := cluster_denied(ctx, Operation.DESCRIBE):
        return build(
            cls, throttle_time=0, error_code=err(denied), error_message="Describe on the cluster", topics=()
        )
    if rep is None:
        return build(cls, throttle_time=0, error_code=err(0), error_message=None, topics=())
    topics_state = rep.state.topics
    wanted: dict[str, set[int] | None]
    if request.topics is None:
        wanted = dict.fromkeys(topics_state)
    else:
        wanted = {str(t.name): {int(i) for i in t.partition_indexes} for t in request.topics}
    out = []
    for name, indexes in wanted.items():
        meta = topics_state.get(name)
        if meta is None:
            continue
        parts = []
        for index, target in sorted(meta.targets.items()):
            if indexes is not None and index not in indexes:
                continue
            current = meta.replicas[index]
            adding = [b for b in target if b not in current]
            removing = [b for b in current if b not in target]
            parts.append(
                build(
                    part_cls,
                    partition_index=index,
                    replicas=tuple(current + adding),
                    adding_replicas=tuple(adding),
                    removing_replicas=tuple(removing),
                )
            )
        if parts:
            out.append(build(topic_cls, name=name, partitions=tuple(parts)))
    return build(cls, throttle_time=0, error_code=err(0), error_message=None, topics=tuple(out))


def _signed(rep: Any, header: RequestHeader, topic_id: Any, p: Any) -> bool:
    """The partition's leader signed this report (see replication.broker_proof)."""
    voters = [int(b) for b in p.new_isr]
    message = broker_proof.alter_partition_message(str(topic_id), int(p.partition_index), voters)
    return broker_proof.sender(header.client_id, rep.state.brokers, message) is not None


async def handle_alter_partition(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    """A partition leader reports that its Raft group's voters reached the move's target."""
    version = header.api_version
    part_cls = nested(ApiKey.ALTER_PARTITION, version, "PartitionData")
    topic_cls = nested(ApiKey.ALTER_PARTITION, version, "TopicData")
    cls = response_type(ApiKey.ALTER_PARTITION, version)
    rep = ctx.extra.get("replication")
    if rep is None or not rep.runtime.is_leader(1):
        code = INVALID_REQUEST if rep is None else NOT_CONTROLLER
        return build(cls, throttle_time=0, error_code=err(code), topics=())
    by_id = {m.topic_id: m for m in rep.state.topics.values()}
    topics = []
    authorized = ctx.authorizer.enabled and may_cluster(ctx, Operation.CLUSTER_ACTION)
    for t in request.topics:
        meta = by_id.get(t.topic_id)
        parts = []
        for p in t.partitions:
            code = UNKNOWN_TOPIC_OR_PARTITION
            if not (authorized or _signed(rep, header, t.topic_id, p)):
                code = CLUSTER_AUTHORIZATION_FAILED
            elif meta is not None:
                try:
                    await finish_move(rep, meta.name, int(p.partition_index), [int(b) for b in p.new_isr])
                    code = 0
                except MoveError as exc:
                    code = exc.code
            parts.append(
                build(
                    part_cls,
                    partition_index=p.partition_index,
                    error_code=err(code),
                    leader_id=-1,
                    leader_epoch=p.leader_epoch,
                    isr=p.new_isr,
                    partition_epoch=0,
                )
            )
        topics.append(build(topic_cls, topic_id=t.topic_id, partitions=tuple(parts)))
    return build(cls, throttle_time=0, error_code=err(0), topics=tuple(topics))
