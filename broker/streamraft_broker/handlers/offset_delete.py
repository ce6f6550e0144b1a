"""OffsetDelete (API 47): a group coordinator forgets committed offsets of some partitions of a group
(``kafka-consumer-groups --delete-offsets``, AdminClient.deleteConsumerGroupOffsets).

As Kafka: Delete on the group (else GROUP_AUTHORIZATION_FAILED for the whole request), Read on each topic
(else TOPIC_AUTHORIZATION_FAILED for its partitions), partitions that do not exist answer
UNKNOWN_TOPIC_OR_PARTITION; the coordinator decides the rest (see GroupCoordinator.delete_offsets). Both
modes go through the group's coordinator, which persists the tombstones in ``__consumer_offsets``
(replicated through that partition's Raft group in replicated mode)."""

from __future__ import annotations

from typing import Any

from kio.schema.errors import ErrorCode

from streamraft_broker.handlers.authz import topic_denied
from streamraft_broker.handlers.context import BrokerContext
from streamraft_broker.handlers.groups import coordinator_for
from streamraft_broker.protocol.codec import build, nested, response_type
from streamraft_broker.protocol.header import RequestHeader
from streamraft_broker.protocol.versions import ApiKey
from streamraft_broker.security.acl import Operation


def _partition_exists(ctx: BrokerContext, topic: str, index: int) -> bool:
    rep = ctx.extra.get("replication")
    if rep is not None:
        return 0 <= index < int(rep.partition_count(topic))
    return ctx.registry.partition(topic, index) is not None


async def handle_offset_delete(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    version = header.api_version
    cls = response_type(ApiKey.OFFSET_DELETE, version)
    part_cls = nested(ApiKey.OFFSET_DELETE, version, "OffsetDeleteResponsePartition")
    topic_cls = nested(ApiKey.OFFSET_DELETE, version, "OffsetDeleteResponseTopic")
    group_id = str(request.group_id)
    coord = coordinator_for(ctx, group_id, Operation.DELETE)
    if isinstance(coord, ErrorCode):
        ctx.metrics.record_error(int(coord))
        return build(cls, error_code=coord, throttle_time=0, topics=())
    codes: dict[tuple[str, int], ErrorCode] = {}
    asked: list[tuple[str, int]] = []
    for t in request.topics:
        name = str(t.name)
        denied = topic_denied(ctx, Operation.READ, name)
        for p in t.partitions:
            key = (name, int(p.partition_index))
            if denied:
                codes[key] = ErrorCode(denied)
            elif not _partition_exists(ctx, *key):
                codes[key] = ErrorCode.unknown_topic_or_partition
            else:
                asked.append(key)
    group_error, results = await coord.delete_offsets(group_id, asked)
    if group_error != ErrorCode.none:
        ctx.metrics.record_error(int(group_error))
        return build(cls, error_code=group_error, throttle_time=0, topics=())
    codes.update({(r.topic, r.partition): r.error_code for r in results})
    topics = tuple(
        build(
            topic_cls,
            name=t.name,
            partitions=tuple(
                build(
                    part_cls,
                    partition_index=p.partition_index,
                    error_code=codes[(str(t.name), int(p.partition_index))],
                )
                for p in t.partitions
            ),
        )
        for t in request.topics
    )
    return build(cls, error_code=ErrorCode.none, throttle_time=0, topics=topics)
