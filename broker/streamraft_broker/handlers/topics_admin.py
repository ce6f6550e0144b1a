"""CreateTopics, DeleteTopics, CreatePartitions.

Internal topics (``__consumer_offsets``) belong to the broker: clients can neither create, delete nor
add partitions to them (adding would move every group to another partition), authorizer or not."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from streamraft_broker.handlers.authz import may_create_topic, topic_denied
from streamraft_broker.handlers.context import BrokerContext, err
from streamraft_broker.handlers.topic_autocreate import default_replication_factor
from streamraft_broker.protocol.codec import build, nested, nested_or_none, response_type
from streamraft_broker.protocol.header import RequestHeader
from streamraft_broker.protocol.versions import ApiKey
from streamraft_broker.security.acl import TOPIC_AUTHORIZATION_FAILED, Operation
from streamraft_broker.topics.configs import effective_configs
from streamraft_broker.topics.internal import is_internal
from streamraft_broker.topics.registry import (
    INVALID_REPLICATION_FACTOR,
    UNKNOWN_TOPIC_OR_PARTITION,
    TopicError,
)

# kio writes None as the all-zero UUID Kafka uses for "no id".
_NO_ID = None
INVALID_REQUEST = 42


def deadline_of(request: Any) -> float:
    """The loop time when the request's timeout field (kio decodes it as a timedelta) runs out; a timeout
    <= 0 means "do not wait" (as Kafka answers such a request without waiting for the outcome)."""
    value = getattr(request, "timeout", None)
    seconds = 0.0 if value is None else max(0.0, value.total_seconds())
    return asyncio.get_running_loop().time() + seconds


def remaining(deadline: float) -> float:
    return max(0.0, deadline - asyncio.get_running_loop().time())


async def handle_create_topics(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    version = header.api_version
    result_cls = nested(ApiKey.CREATE_TOPICS, version, "CreatableTopicResult")
    cfg_cls = nested_or_none(ApiKey.CREATE_TOPICS, version, "CreatableTopicConfigs")
    deadline = deadline_of(request)
    results = []
    seen: set[str] = set()
    for t in request.topics:
        num = int(t.num_partitions)
        replication = int(t.replication_factor)
        if num == -1:
            num = ctx.default_partitions
        rep = ctx.extra.get("replication")
        if replication == -1:
            replication = default_replication_factor(ctx)
        configs = {c.name: c.value for c in t.configs}
        topic_id = _NO_ID
        code, message = 0, None
        try:
            if t.name in seen:
                raise TopicError(INVALID_REQUEST, f"topic {t.name!r} appears twice in one request")
            seen.add(t.name)
            if not may_create_topic(ctx, t.name):
                raise TopicError(TOPIC_AUTHORIZATION_FAILED, f"Create on topic {t.name!r} is not allowed")
            if is_internal(t.name):
                raise TopicError(INVALID_REQUEST, f"{t.name!r} is an internal topic the broker creates")
            if t.assignments:
                nodes = {int(b) for a in t.assignments for b in a.broker_ids}
                if nodes - {ctx.node_id}:
                    raise TopicError(INVALID_REPLICATION_FACTOR, f"assignment names unknown brokers {nodes}")
                num, replication = len(t.assignments), 1
            if rep is not None:
                if t.assignments:
                    raise TopicError(INVALID_REQUEST, "manual replica assignment is not supported yet")
                if request.validate_only:
                    raise TopicError(INVALID_REQUEST, "validate_only is not supported with replication yet")
                meta = await rep.create_topic(t.name, num, replication, configs)
                clean, topic_id = meta.configs, meta.topic_id
                # Answer once the partitions have leaders (bounded by the request's timeout): the topic is
                # created either way, so running out of time is not an error.
                await rep.await_partition_leaders(t.name, 0, remaining(deadline))
            elif request.validate_only:
                clean = ctx.registry.check_create(t.name, num, replication, configs)
            else:
                topic = ctx.registry.create(t.name, num, replication, configs)
                clean, topic_id = topic.configs, topic.topic_id
        except TopicError as exc:
            code, message = exc.error_code, str(exc)
            clean = {}
            ctx.metrics.record_error(code)
        cfgs = (
            ()
            if cfg_cls is None
            else tuple(
                build(
                    cfg_cls,
                    name=c.name,
                    value=c.value,
                    read_only=False,
                    config_source=int(c.source),
                    is_sensitive=False,
                )
                for c in effective_configs(clean, ctx.registry.broker_layers).values()
            )
        )
        results.append(
            build(
                result_cls,
                name=t.name,
                topic_id=topic_id,
                error_code=err(code),
                error_message=message,
                topic_config_error_code=0,
                num_partitions=num if code == 0 else -1,
                replication_factor=replication if code == 0 else -1,
                configs=cfgs if code == 0 else None,
            )
        )
    return build(response_type(ApiKey.CREATE_TOPICS, version), throttle_time=0, topics=tuple(results))


async def handle_delete_topics(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    version = header.api_version
    result_cls = nested(ApiKey.DELETE_TOPICS, version, "DeletableTopicResult")
    names: list[tuple[str | None, uuid.UUID | None]] = []
    if hasattr(request, "topic_names"):
        names = [(n, None) for n in request.topic_names]
    else:
        names = [(t.name, t.topic_id) for t in request.topics]
    by_id = {t.topic_id: t.name for t in ctx.registry.topics.values()}
    results = []
    for given, topic_id in names:
        name = given if given is not None or topic_id is None else by_id.get(topic_id)
        topic = ctx.registry.get(name) if name is not None else None
        code, message = 0, None
        tid = topic.topic_id if topic is not None else (topic_id or _NO_ID)
        try:
            if name is None:
                raise TopicError(UNKNOWN_TOPIC_OR_PARTITION, f"no topic has id {topic_id}")
            if denied := topic_denied(ctx, Operation.DELETE, name):
                raise TopicError(denied, f"Delete on topic {name!r} is not allowed")
            if is_internal(name):
                raise TopicError(INVALID_REQUEST, f"internal topic {name!r} cannot be deleted")
            if "replication" in ctx.extra:
                await ctx.extra["replication"].delete_topic(name)
            else:
                ctx.registry.delete(name)
        except TopicError as exc:
            code, message = exc.error_code, str(exc)
            ctx.metrics.record_error(code)
        results.append(
            build(result_cls, name=name, topic_id=tid, error_code=err(code), error_message=message)
        )
    return build(response_type(ApiKey.DELETE_TOPICS, version), throttle_time=0, responses=tuple(results))


async def handle_create_partitions(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    version = header.api_version
    result_cls = nested(ApiKey.CREATE_PARTITIONS, version, "CreatePartitionsTopicResult")
    deadline = deadline_of(request)
    results = []
    for t in request.topics:
        code, message = 0, None
        try:
            if denied := topic_denied(ctx, Operation.ALTER, t.name):
                raise TopicError(denied, f"Alter on topic {t.name!r} is not allowed")
            if is_internal(t.name):
                raise TopicError(INVALID_REQUEST, f"internal topic {t.name!r} cannot get partitions")
            topic = ctx.registry.get(t.name)
            if topic is None:
                raise TopicError(UNKNOWN_TOPIC_OR_PARTITION, f"topic {t.name!r} does not exist")
            if "replication" in ctx.extra and not request.validate_only:
                rep = ctx.extra["replication"]
                have = len(topic.partitions)
                await rep.add_partitions(t.name, int(t.count))
                await rep.await_partition_leaders(t.name, have, remaining(deadline))
            elif not request.validate_only:
                ctx.registry.add_partitions(t.name, int(t.count))
            elif int(t.count) <= len(topic.partitions):
                raise TopicError(37, f"new partition count {t.count} must exceed {len(topic.partitions)}")
        except TopicError as exc:
            code, message = exc.error_code, str(exc)
            ctx.metrics.record_error(code)
        results.append(build(result_cls, name=t.name, error_code=err(code), error_message=message))
    return build(response_type(ApiKey.CREATE_PARTITIONS, version), throttle_time=0, results=tuple(results))
