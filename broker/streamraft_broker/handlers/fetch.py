"""Fetch: whole batches up to the high watermark (read_committed: the last stable offset, with the aborted
transactions of the range), long-polling on min_bytes/max_wait, zero-copy capable."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from streamraft_broker.handlers.authz import topic_denied
from streamraft_broker.handlers.context import BrokerContext, RawResponse
from streamraft_broker.handlers.leader_hints import leader_hint, node_addresses
from streamraft_broker.handlers.transactions import txn_index
from streamraft_broker.protocol.fetch_response import (
    FetchPartitionResult,
    FetchTopicResult,
    NodeEndpoint,
    encode_fetch_response,
)
from streamraft_broker.protocol.header import RequestHeader
from streamraft_broker.security.acl import Operation

NOT_LEADER_OR_FOLLOWER = 6
OFFSET_OUT_OF_RANGE = 1
UNKNOWN_TOPIC_OR_PARTITION = 3
UNKNOWN_TOPIC_ID = 100
KAFKA_STORAGE_ERROR = 56
READ_COMMITTED = 1
MAX_WAIT_CAP_S = 30.0  # a client asking for longer is still answered; it simply polls again


def _max_wait_s(request: Any) -> float:
    wait = request.max_wait
    seconds = wait.total_seconds() if hasattr(wait, "total_seconds") else int(wait) / 1000
    return float(min(max(seconds, 0.0), MAX_WAIT_CAP_S))


def _collect(ctx: BrokerContext, request: Any, max_bytes: int) -> tuple[list[FetchTopicResult], int]:
    topics: list[FetchTopicResult] = []
    total = 0
    read_committed = int(getattr(request, "isolation_level", 0)) == READ_COMMITTED
    for ft in request.topics:
        results: list[FetchPartitionResult] = []
        name = _topic_name(ctx, ft)
        if name is None:
            # v13+ names topics by id; an id no topic has (deleted, recreated, never existed) is answered
            # per partition, as Kafka does, so the consumer refreshes its metadata.
            for fp in ft.partitions:
                results.append(FetchPartitionResult(int(fp.partition), error_code=UNKNOWN_TOPIC_ID))
            topics.append(FetchTopicResult("", results, topic_id=ft.topic_id))
            continue
        denied = topic_denied(ctx, Operation.READ, name)
        for fp in ft.partitions:
            partition = ctx.registry.partition(name, int(fp.partition))
            if denied:
                results.append(FetchPartitionResult(int(fp.partition), error_code=denied))
                continue
            if partition is None:
                results.append(FetchPartitionResult(int(fp.partition), error_code=UNKNOWN_TOPIC_OR_PARTITION))
                continue
            rep = ctx.extra.get("replication")
            if rep is not None and rep.storage_failed(name, int(fp.partition)):
                # Its log is being re-opened from disk after a storage error here.
                results.append(FetchPartitionResult(int(fp.partition), error_code=KAFKA_STORAGE_ERROR))
                continue
            hwm = partition.high_watermark
            start = partition.log_start_offset
            # read_committed reads only below the last stable offset (Kafka: the fetch's upper bound). Only
            # such fetches consult the transaction index; read_uncommitted ones are told LSO = HW, as before.
            index = txn_index(ctx, name, int(fp.partition)) if read_committed else None
            lso = index.last_stable_offset(hwm) if index is not None else hwm
            upper = lso
            res = FetchPartitionResult(
                int(fp.partition), high_watermark=hwm, last_stable_offset=lso, log_start_offset=start
            )
            offset = int(fp.fetch_offset)
            if offset < start or offset > hwm:
                res.error_code = OFFSET_OUT_OF_RANGE
                rep = ctx.extra.get("replication")
                if offset > hwm and rep is not None and not rep.caught_up(name, int(fp.partition)):
                    # A replica still applying committed batches (a new leader) cannot tell "past the end"
                    # from "not applied yet": a retriable error keeps consumers from resetting offsets.
                    res.error_code = NOT_LEADER_OR_FOLLOWER
                    if (hint := leader_hint(ctx, name, int(fp.partition))) is not None:
                        res.current_leader = (hint.leader_id, hint.leader_epoch)
            elif offset < upper and total < max_bytes:
                budget = min(int(fp.partition_max_bytes), max_bytes - total)
                # Only the first non-empty partition may exceed the budget, so a big batch never stalls.
                chunks = partition.read(offset, budget, min_one_message=(total == 0), max_offset=upper)
                res.records = chunks
                total += res.records_size
                if read_committed and index is not None and chunks:
                    res.aborted_transactions = [
                        (a.producer_id, a.first_offset) for a in index.aborted_in(offset, upper)
                    ]
            results.append(res)
        topics.append(FetchTopicResult(name, results, topic_id=getattr(ft, "topic_id", None)))
    return topics, total


def _topic_name(ctx: BrokerContext, ft: Any) -> str | None:
    """The topic a request entry names: by name up to v12, by topic id from v13 (None: no such id)."""
    name = getattr(ft, "topic", None)
    if name is not None:
        return str(name)
    topic_id = getattr(ft, "topic_id", None)
    for topic in ctx.registry.topics.values():
        if topic.topic_id == topic_id:
            return str(topic.name)
    return None


async def handle_fetch(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    max_bytes = int(getattr(request, "max_bytes", 0x7FFFFFFF))
    min_bytes = int(request.min_bytes)
    quota_limit = ctx.quotas.fetch_byte_limit() if ctx.quotas is not None else None
    if quota_limit is not None:
        max_bytes = min(max_bytes, quota_limit)
        min_bytes = min(min_bytes, max_bytes)
    deadline = time.monotonic() + _max_wait_s(request)
    while True:
        # Grab the wake-up events before reading, so an append in between is never missed.
        events = {
            id(p): p.data_event()
            for ft in request.topics
            if (name := _topic_name(ctx, ft)) is not None and not topic_denied(ctx, Operation.READ, name)
            for fp in ft.partitions
            if (p := ctx.registry.partition(name, int(fp.partition))) is not None
        }
        topics, total = _collect(ctx, request, max_bytes)
        remaining = deadline - time.monotonic()
        if total >= min_bytes or remaining <= 0 or not events or ctx.shutting_down.is_set():
            break
        waiters = [asyncio.ensure_future(e.wait()) for e in [*events.values(), ctx.shutting_down]]
        try:
            await asyncio.wait(waiters, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()
    throttle_ms = ctx.quotas.record_fetch(total) if ctx.quotas is not None else 0
    if throttle_ms > 0:
        topics = []  # Kafka answers a throttled fetch empty; the consumer fetches the same offsets again
    for t in topics:
        for res in t.partitions:
            if res.records:
                ctx.metrics.record_fetch(t.name, res.records_size)
            if res.error_code:
                ctx.metrics.record_error(res.error_code)
    hinted = {res.current_leader[0] for t in topics for res in t.partitions if res.current_leader is not None}
    endpoints = [NodeEndpoint(a.node_id, a.host, a.port, a.rack) for a in node_addresses(ctx, hinted)]
    parts = encode_fetch_response(
        header.api_version,
        header.correlation_id,
        topics,
        session_id=0,
        throttle_ms=throttle_ms,
        node_endpoints=endpoints,
    )
    return RawResponse(parts)
