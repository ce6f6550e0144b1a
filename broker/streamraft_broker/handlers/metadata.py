"""Metadata: brokers and topics with their partitions, auto-creating unknown ones when enabled (see
topic_autocreate)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from streamraft_broker.handlers.authz import may_create_topic, may_topic, operations
from streamraft_broker.handlers.broker_addresses import broker_addresses, controller_id
from streamraft_broker.handlers.context import BrokerContext, err
from streamraft_broker.handlers.partition_view import partition_views
from streamraft_broker.handlers.topic_autocreate import auto_create
from streamraft_broker.protocol.codec import build, nested, response_type
from streamraft_broker.protocol.header import RequestHeader
from streamraft_broker.protocol.versions import ApiKey
from streamraft_broker.security.acl import CLUSTER, TOPIC_AUTHORIZATION_FAILED, Operation, Resource
from streamraft_broker.topics.internal import is_internal
from streamraft_broker.topics.registry import UNKNOWN_TOPIC_OR_PARTITION, Topic

# kio writes None as the all-zero UUID Kafka uses for "no id".
_NO_ID = None
YIELD_EVERY = 500
"""Topics answered between two yields to the event loop: a request naming tens of thousands of topics
(the protocol caps allow 50,000) must not hold every other client for its whole duration."""


def _topic_entry(ctx: BrokerContext, version: int, topic: Topic, request: Any) -> Any:
    part_cls = nested(ApiKey.METADATA, version, "MetadataResponsePartition")
    topic_cls = nested(ApiKey.METADATA, version, "MetadataResponseTopic")
    partitions = tuple(build(part_cls, **view.wire_fields()) for view in partition_views(ctx, topic))
    return build(
        topic_cls,
        error_code=err(0),
        name=topic.name,
        topic_id=topic.topic_id,
        is_internal=topic.internal or is_internal(topic.name),
        partitions=partitions,
        topic_authorized_operations=operations(
            ctx,
            Resource.topic(topic.name),
            bool(getattr(request, "include_topic_authorized_operations", False)),
        ),
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
        # As Kafka: the topics this principal may not Describe are left out.
        visible = [t for t in list(registry.topics.values()) if may_topic(ctx, Operation.DESCRIBE, t.name)]
        for i, t in enumerate(visible):
            if i and i % YIELD_EVERY == 0:
                await asyncio.sleep(0)
            entries.append(_topic_entry(ctx, version, t, request))
    else:
        # Versions before 4 have no allow_auto_topic_creation: Kafka treats them as allowing it.
        allow_auto = bool(getattr(request, "allow_auto_topic_creation", True)) and ctx.auto_create_topics
        created: dict[str, int] = {}
        if allow_auto:
            unknown = list(
                dict.fromkeys(
                    w.name
                    for w in request.topics
                    if w.name
                    and registry.get(w.name) is None
                    # Only what this principal may see and create (the loop below answers the rest).
                    and may_topic(ctx, Operation.DESCRIBE, w.name)
                    and may_create_topic(ctx, w.name)
                )
            )
            codes = await asyncio.gather(*(auto_create(ctx, n) for n in unknown))
            created = dict(zip(unknown, codes, strict=True))
        by_id = {t.topic_id: t for t in registry.topics.values()}
        for i, wanted in enumerate(request.topics):
            if i and i % YIELD_EVERY == 0:
                await asyncio.sleep(0)
            name: str | None = wanted.name
            topic_id = getattr(wanted, "topic_id", None)
            topic = registry.get(name) if name is not None else by_id.get(topic_id) if topic_id else None
            shown = topic.name if topic is not None else name
            if shown is not None and not may_topic(ctx, Operation.DESCRIBE, shown):
                # Kafka answers this whether or not the topic exists, so existence does not leak.
                entries.append(_error_entry(version, name, topic_id, TOPIC_AUTHORIZATION_FAILED))
                continue
            if topic is None and is_internal(name):
                # Only the broker creates internal topics (a client's auto-create must not pre-empt it).
                entries.append(_error_entry(version, name, topic_id, UNKNOWN_TOPIC_OR_PARTITION))
                continue
            if topic is None and name is not None and allow_auto and not may_create_topic(ctx, name):
                entries.append(_error_entry(version, name, topic_id, TOPIC_AUTHORIZATION_FAILED))
                continue
            if topic is None:
                code = created.get(name, 0) if name is not None else 0
                entries.append(_error_entry(version, name, topic_id, code or UNKNOWN_TOPIC_OR_PARTITION))
            else:
                entries.append(_topic_entry(ctx, version, topic, request))
    broker_cls = nested(ApiKey.METADATA, version, "MetadataResponseBroker")
    brokers = tuple(
        build(broker_cls, node_id=a.node_id, host=a.host, port=a.port, rack=a.rack)
        for a in broker_addresses(ctx)
    )
    return build(
        response_type(ApiKey.METADATA, version),
        throttle_time=0,
        brokers=brokers,
        cluster_id=ctx.cluster_id,
        controller_id=controller_id(ctx),
        topics=tuple(entries),
        cluster_authorized_operations=operations(
            ctx, CLUSTER, bool(getattr(request, "include_cluster_authorized_operations", False))
        ),
        error_code=err(0),  # v13+: a top-level error (none here)
    )
