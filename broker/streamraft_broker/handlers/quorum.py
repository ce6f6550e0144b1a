"""DescribeQuorum: the controller group's Raft state, as `kafka-metadata-quorum describe` reads it.

Kafka names its metadata log ``__cluster_metadata`` partition 0; ours is the controller Raft group, so
the answer uses that name. Only the group's leader knows how far each member has replicated, so any other
broker forwards the request to it (as a Kafka broker forwards to its active controller). Raft indexes
are 1-based entry counts, so a member's log end offset is its last index (its match index, as the leader
knows it) and the high watermark is the commit index.
"""

from __future__ import annotations

from typing import Any

from streamraft_broker.controller.state import CONTROLLER_GROUP
from streamraft_broker.handlers.context import BrokerContext, err
from streamraft_broker.protocol.codec import build, nested, response_type
from streamraft_broker.protocol.header import RequestHeader
from streamraft_broker.protocol.versions import ApiKey

METADATA_TOPIC = "__cluster_metadata"
NOT_LEADER_OR_FOLLOWER = 6
INVALID_REQUEST = 42
FORWARD_LIMIT_S = 5.0


def _response(
    version: int, code: int, message: str | None, topics: tuple[Any, ...], nodes: tuple[Any, ...]
) -> Any:
    return build(
        response_type(ApiKey.DESCRIBE_QUORUM, version),
        error_code=err(code),
        error_message=message,
        topics=topics,
        nodes=nodes,
    )


def _partition(version: int, code: int, message: str | None, **fields: Any) -> tuple[Any, ...]:
    topic_cls = nested(ApiKey.DESCRIBE_QUORUM, version, "TopicData")
    part_cls = nested(ApiKey.DESCRIBE_QUORUM, version, "PartitionData")
    part = build(
        part_cls,
        partition_index=0,
        error_code=err(code),
        error_message=message,
        leader_id=fields.get("leader_id", -1),
        leader_epoch=fields.get("leader_epoch", -1),
        high_watermark=fields.get("high_watermark", -1),
        current_voters=fields.get("current_voters", ()),
        observers=fields.get("observers", ()),
    )
    return (build(topic_cls, topic_name=METADATA_TOPIC, partitions=(part,)),)


async def handle_describe_quorum(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    version = header.api_version
    rep = ctx.extra.get("replication")
    if rep is None:
        return _response(
            version,
            INVALID_REQUEST,
            "this broker runs without replication: there is no controller quorum",
            (),
            (),
        )
    runtime = rep.runtime
    if not runtime.is_leader(CONTROLLER_GROUP):
        return await _forward(rep, version, request)
    progress = runtime.leader_progress(CONTROLLER_GROUP)
    if progress is None:  # lost leadership between the two reads
        return await _forward(rep, version, request)
    conf = runtime.conf_state(CONTROLLER_GROUP)
    replica_cls = nested(ApiKey.DESCRIBE_QUORUM, version, "ReplicaState")

    def replica(node: int) -> Any:
        end = progress.last_index if node == rep.node_id else progress.match.get(node, -1)
        return build(replica_cls, replica_id=node, replica_directory_id=None, log_end_offset=end)

    topics = _partition(
        version,
        0,
        None,
        leader_id=rep.node_id,
        leader_epoch=runtime.term(CONTROLLER_GROUP),
        high_watermark=progress.commit,
        current_voters=tuple(replica(n) for n in sorted(conf.voters)),
        observers=tuple(replica(n) for n in sorted(conf.learners)),
    )
    nodes: tuple[Any, ...] = ()
    if version >= 2:
        node_cls = nested(ApiKey.DESCRIBE_QUORUM, version, "Node")
        listener_cls = nested(ApiKey.DESCRIBE_QUORUM, version, "Listener")
        members = sorted({*conf.voters, *conf.learners})
        nodes = tuple(
            build(
                node_cls, node_id=n, listeners=(build(listener_cls, name="PLAINTEXT", host=a[0], port=a[1]),)
            )
            for n in members
            if (a := rep.broker_address(n)) is not None
        )
    return _response(version, 0, None, topics, nodes)


async def _forward(rep: Any, version: int, request: Any) -> Any:
    """Ask the controller group's leader; NOT_LEADER_OR_FOLLOWER when none is known or it is unreachable
    (the client retries, as it does while a controller election runs)."""
    from streamraft_broker.replication import membership_rpc  # noqa: PLC0415

    leader = rep.runtime.leader(CONTROLLER_GROUP)
    address = rep.broker_address(leader) if leader and leader != rep.node_id else None
    if address is None:
        return _response(version, NOT_LEADER_OR_FOLLOWER, "no controller leader is known", (), ())
    try:
        return await membership_rpc.call(
            address[0], address[1], ApiKey.DESCRIBE_QUORUM, version, request, limit_s=FORWARD_LIMIT_S
        )
    except membership_rpc.ControllerUnreachable as exc:
        return _response(version, NOT_LEADER_OR_FOLLOWER, f"controller leader {leader}: {exc}", (), ())
