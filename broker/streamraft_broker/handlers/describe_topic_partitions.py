"""DescribeTopicPartitions (API 75, KIP-966): Metadata's topic and partition view, paged. Kafka 4's
``kafka-topics --describe`` and Admin.describeTopics use it when the broker advertises it.

As Kafka's DescribeTopicPartitionsRequestHandler: no topics named means every topic this principal may
Describe (others are left out); named topics it may not Describe answer TOPIC_AUTHORIZATION_FAILED (whether
or not they exist), unknown ones UNKNOWN_TOPIC_OR_PARTITION. Topics are answered in name order from the
cursor's topic (its partitions from the cursor's index), at most ``min(ResponsePartitionLimit,
max.request.partition.size.limit)`` partitions per response; ``NextCursor`` names the first partition left
out. A cursor whose topic is not among the named topics, or with a negative partition, is INVALID_REQUEST
for every topic. Raft has no ISR or ELR: every replica is in sync (as Metadata answers) and the
eligible-leader lists are empty, as Kafka answers when ELR is off."""

from __future__ import annotations

import asyncio
from typing import Any

from streamraft_broker.handlers.authz import may_topic, operations
from streamraft_broker.handlers.context import BrokerContext, err
from streamraft_broker.handlers.partition_view import partition_count, partition_view
from streamraft_broker.protocol.codec import build, nested, response_type
from streamraft_broker.protocol.header import RequestHeader
from streamraft_broker.protocol.versions import ApiKey
from streamraft_broker.security.acl import TOPIC_AUTHORIZATION_FAILED, Operation, Resource
from streamraft_broker.topics.internal import is_internal
from streamraft_broker.topics.registry import UNKNOWN_TOPIC_OR_PARTITION, Topic

INVALID_REQUEST = 42
MAX_PARTITIONS_PER_RESPONSE = 2000
"""Kafka's max.request.partition.size.limit default: the most partitions one response carries."""
_API = ApiKey.DESCRIBE_TOPIC_PARTITIONS


def _partition(ctx: BrokerContext, version: int, topic: Topic, index: int) -> Any:
    part_cls = nested(_API, version, "DescribeTopicPartitionsResponsePartition")
    return build(part_cls, **partition_view(ctx, topic, index).wire_fields())


def _topic(
    ctx: BrokerContext, version: int, name: str, *, code: int, topic: Topic | None, parts: tuple[Any, ...]
) -> Any:
    topic_cls = nested(_API, version, "DescribeTopicPartitionsResponseTopic")
    return build(
        topic_cls,
        error_code=err(code),
        name=name,
        topic_id=topic.topic_id if topic is not None and not code else None,
        is_internal=is_internal(name) or (topic is not None and topic.internal),
        partitions=parts,
        topic_authorized_operations=operations(ctx, Resource.topic(name), True) if not code else -2147483648,
    )


async def handle_describe_topic_partitions(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    version = header.api_version
    cls = response_type(_API, version)
    cursor = request.cursor
    start_name = str(cursor.topic_name) if cursor is not None else ""
    named = [str(t.name) for t in request.topics]
    every = not named
    names = sorted({n for n in (list(ctx.registry.topics) if every else named) if n >= start_name})
    problem = None
    if cursor is not None and not every and start_name not in names:
        problem = f"the cursor's topic {start_name!r} is not among the requested topics"
    elif cursor is not None and int(cursor.partition_index) < 0:
        problem = f"the cursor's partition {int(cursor.partition_index)} is negative"
    if problem is not None:
        ctx.metrics.record_error(INVALID_REQUEST)
        return build(
            cls,
            throttle_time=0,
            topics=tuple(
                _topic(ctx, version, n, code=INVALID_REQUEST, topic=None, parts=())
                for n in sorted(set(named))
            ),
            next_cursor=None,
        )
    refused = [] if every else [n for n in names if not may_topic(ctx, Operation.DESCRIBE, n)]
    allowed = [n for n in names if n not in refused and (not every or may_topic(ctx, Operation.DESCRIBE, n))]
    remaining = max(1, min(int(request.response_partition_limit), MAX_PARTITIONS_PER_RESPONSE))
    entries: list[tuple[str, int, Topic | None, tuple[int, ...]]] = []
    next_cursor: tuple[str, int] | None = None
    page: list[tuple[Topic, int]] = []
    for name in allowed:
        topic = ctx.registry.get(name)
        if remaining == 0:
            # Everything before this topic fit exactly: the next page starts at its beginning.
            next_cursor = (name, 0)
            break
        if topic is None:
            if not every:
                entries.append((name, UNKNOWN_TOPIC_OR_PARTITION, None, ()))
            continue
        first = int(cursor.partition_index) if cursor is not None and name == start_name else 0
        count = partition_count(ctx, topic)
        upper = min(count, first + remaining)
        indexes = tuple(range(first, upper))
        entries.append((name, 0, topic, indexes))
        page.extend((topic, i) for i in indexes)
        if upper < count:
            next_cursor = (name, upper)
            break
        remaining -= len(indexes)
    rep = ctx.extra.get("replication")
    if rep is not None and page:
        # As Metadata: name the leader an election in progress is about to produce, not a dead one.
        await rep.await_live_leaders([(t.name, i) for t, i in page])
    topics: list[Any] = []
    for n, (name, code, topic, indexes) in enumerate(entries):
        if n and n % 500 == 0:
            await asyncio.sleep(0)  # thousands of small topics must not hold every other client
        parts = tuple(_partition(ctx, version, topic, i) for i in indexes) if topic is not None else ()
        topics.append(_topic(ctx, version, name, code=code, topic=topic, parts=parts))
    topics += [
        _topic(ctx, version, n, code=TOPIC_AUTHORIZATION_FAILED, topic=None, parts=()) for n in refused
    ]
    cursor_cls = nested(_API, version, "Cursor")
    return build(
        cls,
        throttle_time=0,
        topics=tuple(topics),
        next_cursor=build(cursor_cls, topic_name=next_cursor[0], partition_index=next_cursor[1])
        if next_cursor is not None
        else None,
    )
