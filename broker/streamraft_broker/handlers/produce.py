"""Produce: append each partition's record bytes untouched (never decoded) and answer with offsets."""

from __future__ import annotations

import logging
from typing import Any

from streamraft_broker.handlers.context import BrokerContext, err
from streamraft_broker.producer.service import DuplicateBatchError
from streamraft_broker.protocol.codec import build, nested, response_type
from streamraft_broker.protocol.header import RequestHeader
from streamraft_broker.protocol.versions import ApiKey
from streamraft_broker.records.batch import iter_batches

log = logging.getLogger(__name__)

UNKNOWN_TOPIC_OR_PARTITION = 3
CORRUPT_MESSAGE = 2
MESSAGE_TOO_LARGE = 10
INVALID_REQUIRED_ACKS = 21
INVALID_RECORD = 87
TRANSACTIONAL_ID_AUTHORIZATION_FAILED = 53
UNKNOWN_SERVER_ERROR = -1


def _append(
    ctx: BrokerContext, topic_name: str, index: int, records: bytes | None
) -> tuple[int, int, int, int]:
    """Returns (error_code, base_offset, log_append_time, log_start_offset)."""
    partition = ctx.registry.partition(topic_name, index)
    if partition is None:
        return UNKNOWN_TOPIC_OR_PARTITION, -1, -1, -1
    if not records:
        return INVALID_RECORD, -1, -1, partition.log_start_offset
    topic = ctx.registry.get(topic_name)
    assert topic is not None
    max_bytes = int(topic.configs.get("max.message.bytes", "1048588"))
    if len(records) > max_bytes + 61:
        return MESSAGE_TOO_LARGE, -1, -1, partition.log_start_offset
    before_write = None
    if ctx.producers is not None:
        before_write = ctx.producers.before_write_hook(topic_name, index)
    try:
        info = partition.append(records, before_write=before_write)
    except DuplicateBatchError as dup:
        # A retried idempotent batch already in the log: answer as the first time, write nothing.
        return 0, dup.base_offset, -1, partition.log_start_offset
    except ValueError as exc:
        code = getattr(exc, "error_code", None)
        if code is None:
            raise
        log.info("produce rejected", extra={"topic": topic_name, "partition": index, "error": str(exc)})
        return int(code), -1, -1, partition.log_start_offset
    ctx.metrics.record_produce(topic_name, len(records), int(getattr(info, "records_count", 0)))
    return 0, info.base_offset, info.log_append_time, info.log_start_offset


async def _replicated(
    ctx: BrokerContext, topic_name: str, index: int, records: bytes | None
) -> tuple[int, int, int, int]:
    """Answered once the batch is committed by the partition's Raft group (acks=1 gets that too)."""
    if not records:
        return INVALID_RECORD, -1, -1, -1
    topic = ctx.registry.get(topic_name)
    if topic is not None and len(records) > int(topic.configs.get("max.message.bytes", "1048588")) + 61:
        return MESSAGE_TOO_LARGE, -1, -1, -1
    code, base, append_time, start = await ctx.extra["replication"].produce(topic_name, index, records)
    if code == 0:
        # Headers only (the batches were validated on their way into the Raft log): no record decoded.
        count = sum(h.records_count for _, h in iter_batches(records))
        ctx.metrics.record_produce(topic_name, len(records), count)
    return int(code), int(base), int(append_time), int(start)


async def handle_produce(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    version = header.api_version
    acks = int(request.acks)
    results: list[Any] = []
    part_cls = nested(ApiKey.PRODUCE, version, "PartitionProduceResponse")
    topic_cls = nested(ApiKey.PRODUCE, version, "TopicProduceResponse")
    for topic in request.topic_data:
        parts = []
        for pd in topic.partition_data:
            if acks not in (0, 1, -1):
                code, base, append_time, start = INVALID_REQUIRED_ACKS, -1, -1, -1
            elif request.transactional_id is not None:
                code, base, append_time, start = TRANSACTIONAL_ID_AUTHORIZATION_FAILED, -1, -1, -1
            elif "replication" in ctx.extra:
                code, base, append_time, start = await _replicated(ctx, topic.name, int(pd.index), pd.records)
            else:
                code, base, append_time, start = _append(ctx, topic.name, int(pd.index), pd.records)
            if code:
                ctx.metrics.record_error(code)
            parts.append(
                build(
                    part_cls,
                    index=pd.index,
                    error_code=err(code),
                    base_offset=base,
                    log_append_time=append_time,
                    log_start_offset=start,
                    record_errors=(),
                    error_message=None,
                )
            )
        results.append(build(topic_cls, name=topic.name, partition_responses=tuple(parts)))
    if acks == 0:
        # With acks=0 the client reads no response; writing one would desynchronise its correlation ids.
        return None
    return build(response_type(ApiKey.PRODUCE, version), responses=tuple(results), throttle_time=0)
