"""Metadata: brokers (this node) and topics with their partitions, auto-creating when enabled."""

from __future__ import annotations

import uuid
from typing import Any

from streamraft_broker.handlers.context import BrokerContext, endpoint_of, err
from streamraft_broker.protocol.codec import build, nested, response_type
from streamraft_broker.protocol.header import RequestHeader
from streamraft_broker.protocol.versions import ApiKey
from streamraft_broker.topics.registry import UNKNOWN_TOPIC_OR_PARTITION, Topic, TopicError

# kio writes None as the all-zero UUID Kafka uses for "no id".
_NO_ID = None


def _replicated_partitions(ctx: BrokerContext, version: int, topic: Topic) -> tuple[Any, ...]:
    part_cls = nested(ApiKey.METADATA, version, "MetadataResponsePartition")
    rep = ctx.extra["replication"]
    out = []
    for p in topic.partitions:
        code, leader, epoch, replicas = rep.partition_view(topic.name, p.index)
        out.append(
            build(
                part_cls,
                error_code=err(code),
                partition_index=p.index,
                leader_id=leader,
                leader_epoch=epoch,
                replica_nodes=tuple(replicas),
                # Raft has no ISR; every replica is named (a majority holds each committed batch).
                isr_nodes=tuple(replicas),
                offline_replicas=(),
            )
        )
    return tuple(out)


def _topic_entry(ctx: BrokerContext, version: int, topic: Topic) -> Any:
    part_cls = nested(ApiKey.METADATA, version, "MetadataResponsePartition")
    topic_cls = nested(ApiKey.METADATA, version, "MetadataResponseTopic")
    partitions = (
        _replicated_partitions(ctx, version, topic)
        if "replication" in ctx.extra
        else tuple(
            build(
                part_cls,
                error_code=err(0),
                partition_index=p.index,
                leader_id=ctx.node_id,
                leader_epoch=p.leader_epoch,
                replica_nodes=(ctx.node_id,),
                isr_nodes=(ctx.node_id,),
                offline_replicas=(),
            )
            for p in topic.partitions
        )
    )
    return build(
        topic_cls,
        error_code=err(0),
        name=topic.name,
        topic_id=topic.topic_id,
        is_internal=topic.internal,
        partitions=partitions,
        topic_authorized_operations=-2147483648,
    )


def _error_entry(version: int, name: str | None, topic_id: uuid.UUID | None, code: int) -> Any:
    topic_cls = nested(ApiKey.METADATA, version, "MetadataResponseTopic")
    return build(
        topic_cls,
        error_code=err(code),
        name=name,
        topic_id=topic_id or _NO_ID,
        is_internal=False,
        partitions=(),
        topic_authorized_operations=-2147483648,
    )


async def handle_metadata(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    version = header.api_version
    registry = ctx.registry
    rep = ctx.extra.get("replication")
    if rep is not None:
        wanted = (
            registry.topics.values()
            if request.topics is None
            else [t for t in (registry.get(w.name) for w in request.topics if w.name is not None) if t]
        )
        await rep.await_live_leaders([(t.name, p.index) for t in wanted for p in t.partitions])
    entries: list[Any] = []
    if request.topics is None:
        entries = [_topic_entry(ctx, version, t) for t in registry.topics.values()]
    else:
        allow_auto = bool(getattr(request, "allow_auto_topic_creation", True)) and ctx.auto_create_topics
        # Replicated topics are only created through the controller (CreateTopics).
        allow_auto = allow_auto and "replication" not in ctx.extra
        by_id = {t.topic_id: t for t in registry.topics.values()}
        for wanted in request.topics:
            name: str | None = wanted.name
            topic_id = getattr(wanted, "topic_id", None)
            topic = registry.get(name) if name is not None else by_id.get(topic_id) if topic_id else None
            if topic is None and name is not None and allow_auto:
                try:
                    topic = registry.create(name, ctx.default_partitions, 1, {})
                except TopicError as exc:
                    entries.append(_error_entry(version, name, topic_id, exc.error_code))
                    continue
            if topic is None:
                entries.append(_error_entry(version, name, topic_id, UNKNOWN_TOPIC_OR_PARTITION))
            else:
                entries.append(_topic_entry(ctx, version, topic))
    broker_cls = nested(ApiKey.METADATA, version, "MetadataResponseBroker")
    own_host, own_port = endpoint_of(ctx, ctx.node_id, ctx.host, ctx.port)
    brokers = (build(broker_cls, node_id=ctx.node_id, host=own_host, port=own_port, rack=None),)
    controller_id = ctx.node_id
    if rep is not None:
        brokers = tuple(
            build(
                broker_cls,
                node_id=m.node_id,
                host=endpoint_of(ctx, m.node_id, m.kafka_host, m.kafka_port)[0],
                port=endpoint_of(ctx, m.node_id, m.kafka_host, m.kafka_port)[1],
                rack=getattr(m, "rack", None),
            )
            for m in rep.brokers()
        )
        controller_id = rep.controller_id()
    return build(
        response_type(ApiKey.METADATA, version),
        throttle_time=0,
        brokers=brokers,
        cluster_id=ctx.cluster_id,
        controller_id=controller_id,
        topics=tuple(entries),
        cluster_authorized_operations=-2147483648,
    )
