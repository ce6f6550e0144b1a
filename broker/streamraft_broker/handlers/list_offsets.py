"""ListOffsets: earliest (-2), latest (-1), max timestamp (-3), earliest local (-4), latest tiered (-5), or
the first offset at/after a timestamp."""

from __future__ import annotations

import asyncio
from typing import Any

from streamraft_broker.handlers.authz import topic_denied
from streamraft_broker.handlers.context import BrokerContext, err
from streamraft_broker.handlers.transactions import txn_index
from streamraft_broker.protocol.codec import build, nested, response_type
from streamraft_broker.protocol.header import RequestHeader
from streamraft_broker.protocol.versions import ApiKey
from streamraft_broker.security.acl import Operation
from streamraft_broker.topics.partition import Partition

UNKNOWN_TOPIC_OR_PARTITION = 3
NOT_LEADER_OR_FOLLOWER = 6
LATEST = -1
READ_COMMITTED = 1
EARLIEST = -2
MAX_TIMESTAMP = -3
YIELD_EVERY = 500
"""Partitions answered between two yields to the event loop (a request may name tens of thousands)."""
EARLIEST_LOCAL = -4
"""v8+: the first offset in local storage: the log start, as nothing here is tiered."""
LATEST_TIERED = -5
"""v9+: the last offset in tiered storage: none here (Kafka answers -1 without remote storage)."""
EARLIEST_PENDING_UPLOAD = -6
"""v11+ (KIP-1023): the first offset not yet in tiered storage: Kafka answers -1 without remote storage."""


def lookup(partition: Partition, timestamp: int) -> tuple[int, int]:
    """(offset, timestamp) for one ListOffsets query. A timestamp after every record's matches nothing:
    Kafka answers offset -1 with timestamp -1 (clients' offsets_for_times then give None)."""
    if timestamp == LATEST:
        return partition.high_watermark, -1
    if timestamp in (EARLIEST, EARLIEST_LOCAL):
        return partition.log_start_offset, -1
    if timestamp in (LATEST_TIERED, EARLIEST_PENDING_UPLOAD):
        return -1, -1
    if timestamp == MAX_TIMESTAMP:
        found = partition.max_timestamp()
        return found if found is not None else (-1, -1)
    found = partition.offset_for_timestamp(timestamp)
    if found is None:
        return -1, -1
    return found


async def handle_list_offsets(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    version = header.api_version
    part_cls = nested(ApiKey.LIST_OFFSETS, version, "ListOffsetsPartitionResponse")
    topic_cls = nested(ApiKey.LIST_OFFSETS, version, "ListOffsetsTopicResponse")
    topics = []
    answered = 0
    for t in request.topics:
        parts = []
        for p in t.partitions:
            answered += 1
            if answered % YIELD_EVERY == 0:
                await asyncio.sleep(0)
            partition = ctx.registry.partition(t.name, int(p.partition_index))
            rep = ctx.extra.get("replication")
            code = topic_denied(ctx, Operation.DESCRIBE, t.name)
            if code:
                partition = None
            elif partition is None:
                code = UNKNOWN_TOPIC_OR_PARTITION
            elif rep is not None and not rep.leader_ready(t.name, int(p.partition_index)):
                # As in Kafka, only the leader answers; and a new leader only once it has applied what
                # earlier leaders committed, or "latest" could go back (a restarted broker rebuilds its
                # partition logs from the Raft log).
                code = NOT_LEADER_OR_FOLLOWER
            if partition is None or code:
                ctx.metrics.record_error(code)
                parts.append(build(part_cls, partition_index=p.partition_index, error_code=err(code)))
                continue
            offset, ts = lookup(partition, int(p.timestamp))
            if int(p.timestamp) == LATEST and int(getattr(request, "isolation_level", 0)) == READ_COMMITTED:
                index = txn_index(ctx, t.name, int(p.partition_index))
                if index is not None:
                    offset = index.last_stable_offset(partition.high_watermark)
            parts.append(
                build(
                    part_cls,
                    partition_index=p.partition_index,
                    error_code=err(0),
                    timestamp=ts,
                    offset=offset,
                    leader_epoch=partition.leader_epoch,
                )
            )
        topics.append(build(topic_cls, name=t.name, partitions=tuple(parts)))
    return build(response_type(ApiKey.LIST_OFFSETS, version), throttle_time=0, topics=tuple(topics))
