"""DeleteRecords (API 21): move partitions' log start forward; consumers then start at the new log start.

Single node: the partition log moves its start (persisted) and deletes the segments wholly before it.
Replicated: the partition's leader checks the offsets and commits the new log starts through the controller
log (forwarding to the controller's leader when it is not that broker): every replica then hides the
records before the new start and drops the Raft entries wholly before it through a snapshot, as retention
does (see ReplicationService.delete_records). The answer's low_watermark is the new log start.
"""

from __future__ import annotations

from typing import Any

from streamraft_broker.controller.commands import DeleteRecords, encode
from streamraft_broker.controller.state import CONTROLLER_GROUP
from streamraft_broker.handlers.context import BrokerContext, err
from streamraft_broker.protocol.codec import build, nested, response_type
from streamraft_broker.protocol.header import RequestHeader
from streamraft_broker.protocol.versions import ApiKey
from streamraft_broker.replication.membership_rpc import CLIENT_ID
from streamraft_broker.topics.registry import UNKNOWN_TOPIC_OR_PARTITION, TopicError

OFFSET_OUT_OF_RANGE = 1
NOT_LEADER_OR_FOLLOWER = 6
TO_HIGH_WATERMARK = -1
"""Kafka's offset meaning "delete everything up to the high watermark"."""


def _target(ctx: BrokerContext, name: str, index: int, offset: int) -> tuple[int, int]:
    """(error code, offset to move the log start to) after the checks the partition's leader makes."""
    partition = ctx.registry.partition(name, index)
    if partition is None:
        return UNKNOWN_TOPIC_OR_PARTITION, -1
    rep = ctx.extra.get("replication")
    if rep is not None and not rep.leader_ready(name, index):
        return NOT_LEADER_OR_FOLLOWER, -1
    hw = partition.high_watermark
    if offset == TO_HIGH_WATERMARK:
        offset = hw
    if not 0 <= offset <= hw:
        return OFFSET_OUT_OF_RANGE, -1
    return 0, offset


async def handle_delete_records(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    version = header.api_version
    part_cls = nested(ApiKey.DELETE_RECORDS, version, "DeleteRecordsPartitionResult")
    topic_cls = nested(ApiKey.DELETE_RECORDS, version, "DeleteRecordsTopicResult")
    rep = ctx.extra.get("replication")
    # A partition leader forwards the offsets it checked to the controller's leader (the trust the
    # controller already gives brokers' AlterPartition and BrokerRegistration calls on this listener).
    forwarded = (
        rep is not None and header.client_id == CLIENT_ID.decode() and rep.runtime.is_leader(CONTROLLER_GROUP)
    )
    topics = []
    for t in request.topics:
        results: dict[int, tuple[int, int]] = {}
        moves: dict[int, int] = {}
        for p in t.partitions:
            index, offset = int(p.partition_index), int(p.offset)
            if forwarded:
                code, target = (0, offset) if offset >= 0 else (OFFSET_OUT_OF_RANGE, -1)
            else:
                code, target = _target(ctx, t.name, index, offset)
            results[index] = (code, target)
            if code == 0:
                moves[index] = target
        if moves:
            try:
                if rep is None:
                    for index, target in moves.items():
                        partition = ctx.registry.partition(t.name, index)
                        assert partition is not None, (t.name, index)
                        partition.delete_records_before(target)
                elif forwarded:
                    meta = rep.state.topics.get(t.name)
                    if meta is None:
                        raise TopicError(UNKNOWN_TOPIC_OR_PARTITION, f"topic {t.name!r} does not exist")
                    await rep._propose_metadata(encode(DeleteRecords(t.name, meta.topic_id, moves)))
                else:
                    await rep.delete_records(t.name, moves)
            except (TopicError, ValueError) as exc:
                code = int(getattr(exc, "error_code", OFFSET_OUT_OF_RANGE))
                results.update({index: (code, -1) for index in moves})
        parts = []
        for index, (code, target) in results.items():
            if code:
                ctx.metrics.record_error(code)
            partition = ctx.registry.partition(t.name, index)
            if code == 0 and partition is not None and not forwarded:
                low = partition.log_start_offset
            else:
                low = target if code == 0 else -1
            parts.append(build(part_cls, partition_index=index, low_watermark=low, error_code=err(code)))
        topics.append(build(topic_cls, name=t.name, partitions=tuple(parts)))
    return build(response_type(ApiKey.DELETE_RECORDS, version), throttle_time=0, topics=tuple(topics))
