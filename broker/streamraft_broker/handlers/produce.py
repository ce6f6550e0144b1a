"""Produce: append each partition's record bytes untouched (never decoded) and answer with offsets."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from streamraft_broker.handlers import transactions
from streamraft_broker.handlers.authz import produce_refused
from streamraft_broker.handlers.context import BrokerContext, err
from streamraft_broker.handlers.leader_hints import leader_hint, node_addresses
from streamraft_broker.producer.service import DuplicateBatchError
from streamraft_broker.protocol.codec import build, nested, response_type
from streamraft_broker.protocol.header import RequestHeader
from streamraft_broker.protocol.versions import ApiKey
from streamraft_broker.records.batch import iter_batches

log = logging.getLogger(__name__)
REQUEST_TIMED_OUT = 7
NOT_LEADER_OR_FOLLOWER = 6

UNKNOWN_TOPIC_OR_PARTITION = 3
CORRUPT_MESSAGE = 2
MESSAGE_TOO_LARGE = 10
INVALID_REQUIRED_ACKS = 21
INVALID_RECORD = 87
TRANSACTIONAL_ID_AUTHORIZATION_FAILED = 53
UNKNOWN_SERVER_ERROR = -1
KAFKA_STORAGE_ERROR = 56
YIELD_EVERY = 500
"""Partition answers built between two yields to the event loop (a request may hold tens of thousands)."""


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
    max_bytes = ctx.registry.max_message_bytes(topic)
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
    except OSError as exc:
        # Disk full or an I/O error (a LogStorageError, or a segment roll that could not create its files):
        # nothing of the batch is readable; the client retries and the log works again once the disk does.
        log.warning(
            "event=produce_storage_error topic=%s partition=%d errno=%s error=%r",
            topic_name,
            index,
            exc.errno,
            str(exc),
        )
        return KAFKA_STORAGE_ERROR, -1, -1, partition.log_start_offset
    ctx.metrics.record_produce(topic_name, len(records), int(getattr(info, "records_count", 0)))
    return 0, info.base_offset, info.log_append_time, info.log_start_offset


Outcome = tuple[int, int, int, int]


def _begin_replicated(
    ctx: BrokerContext, topic_name: str, index: int, records: bytes | None, acks: int
) -> Outcome | Coroutine[Any, Any, Outcome]:
    """Proposes the batch to the partition's Raft group now; what it returns to await is answered once the
    batch is committed (acks=all) or written to the leader's log (acks=1; see ReplicationService)."""
    if not records:
        return INVALID_RECORD, -1, -1, -1
    topic = ctx.registry.get(topic_name)
    if topic is not None and len(records) > ctx.registry.max_message_bytes(topic) + 61:
        return MESSAGE_TOO_LARGE, -1, -1, -1
    pending = ctx.extra["replication"].begin_produce(topic_name, index, records, acks)
    return _committed(ctx, topic_name, records, pending)


async def _committed(
    ctx: BrokerContext, topic_name: str, records: bytes, pending: Coroutine[Any, Any, Outcome]
) -> Outcome:
    code, base, append_time, start = await pending
    if code == 0:
        # Headers only (the batches were validated on their way into the Raft log): no record decoded.
        count = sum(h.records_count for _, h in iter_batches(records))
        ctx.metrics.record_produce(topic_name, len(records), count)
    return int(code), int(base), int(append_time), int(start)


async def handle_produce(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    """Every partition's batch is appended (or, replicated, proposed) before the first wait: the partitions
    of one request commit concurrently, and a pipelined connection's requests reach each partition's log
    in the order they arrived (nothing here awaits before the last proposal)."""
    version = header.api_version
    acks = int(request.acks)
    part_cls = nested(ApiKey.PRODUCE, version, "PartitionProduceResponse")
    topic_cls = nested(ApiKey.PRODUCE, version, "TopicProduceResponse")
    replicated = "replication" in ctx.extra
    txn_refused = 0
    if request.transactional_id is not None and (
        transactions.service(ctx) is None or transactions.txn_denied(ctx, str(request.transactional_id))
    ):
        # Transactional batches go through the idempotent path; only a broker with a transaction
        # coordinator (single node) takes them, and only from a principal that may Write the id.
        txn_refused = TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    planned: list[tuple[str, list[tuple[int, Outcome | Coroutine[Any, Any, Outcome]]]]] = []
    for topic in request.topic_data:
        outcomes: list[tuple[int, Outcome | Coroutine[Any, Any, Outcome]]] = []
        refused = produce_refused(ctx, topic.name)
        for pd in topic.partition_data:
            outcome: Outcome | Coroutine[Any, Any, Outcome]
            if acks not in (0, 1, -1):
                outcome = INVALID_REQUIRED_ACKS, -1, -1, -1
            elif refused:
                outcome = refused, -1, -1, -1
            elif txn_refused:
                outcome = txn_refused, -1, -1, -1
            elif replicated:
                outcome = _begin_replicated(ctx, topic.name, int(pd.index), pd.records, acks)
            else:
                outcome = _append(ctx, topic.name, int(pd.index), pd.records)
            outcomes.append((int(pd.index), outcome))
        planned.append((topic.name, outcomes))
    results: list[Any] = []
    hinted: set[int] = set()
    answered = 0
    for name, outcomes in planned:
        parts = []
        for index, outcome in outcomes:
            answered += 1
            if answered % YIELD_EVERY == 0:
                await asyncio.sleep(0)  # every batch is proposed by now: waiting here reorders nothing
            code, base, append_time, start = outcome if isinstance(outcome, tuple) else await outcome
            if code == 0 and base < 0 and acks != 0:
                # A success must name the batch's offset (clients record it as the write's position); one
                # without is never sent: the producer retries the batch and gets its offsets then.
                log.error("event=produce_ack_without_offset topic=%s partition=%d", name, index)
                code = REQUEST_TIMED_OUT
            if code:
                ctx.metrics.record_error(code)
            # v10+ (KIP-951): a NOT_LEADER_OR_FOLLOWER answer names the leader, as Kafka does.
            hint = leader_hint(ctx, name, index) if code == NOT_LEADER_OR_FOLLOWER and version >= 10 else None
            extra: dict[str, Any] = {}
            if hint is not None:
                hinted.add(hint.leader_id)
                leader_cls = nested(ApiKey.PRODUCE, version, "LeaderIdAndEpoch")
                extra["current_leader"] = leader_cls(leader_id=hint.leader_id, leader_epoch=hint.leader_epoch)
            parts.append(
                build(
                    part_cls,
                    index=index,
                    error_code=err(code),
                    base_offset=base,
                    log_append_time=append_time,
                    log_start_offset=start,
                    record_errors=(),
                    error_message=None,
                    **extra,
                )
            )
        results.append(build(topic_cls, name=name, partition_responses=tuple(parts)))
    if ctx.quotas is not None:
        ctx.quotas.record_produce(acks)  # the connection puts the throttle time in and mutes
    if acks == 0:
        # With acks=0 the client reads no response; writing one would desynchronise its correlation ids.
        return None
    endpoints: tuple[Any, ...] = ()
    if hinted:
        endpoint_cls = nested(ApiKey.PRODUCE, version, "NodeEndpoint")
        endpoints = tuple(
            endpoint_cls(node_id=a.node_id, host=a.host, port=a.port, rack=a.rack)
            for a in node_addresses(ctx, hinted)
        )
    return build(
        response_type(ApiKey.PRODUCE, version),
        responses=tuple(results),
        throttle_time=0,
        node_endpoints=endpoints,
    )
