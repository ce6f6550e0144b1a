"""Fetch: whole batches up to the high watermark (read_committed: the last stable offset, with the aborted
transactions of the range), long-polling on min_bytes/max_wait, zero-copy capable."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from streamraft_broker.handlers.authz import topic_denied
from streamraft_broker.handlers.context import BrokerContext, RawResponse
from streamraft_broker.handlers.transactions import txn_index
from streamraft_broker.protocol.fetch_response import (
    FetchPartitionResult,
    FetchTopicResult,
    encode_fetch_response,
)
from streamraft_broker.protocol.header import RequestHeader
from streamraft_broker.security.acl import Operation

NOT_LEADER_OR_FOLLOWER = 6
OFFSET_OUT_OF_RANGE = 1
UNKNOWN_TOPIC_OR_PARTITION = 3
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
        denied = topic_denied(ctx, Operation.READ, ft.topic)
        for fp in ft.partitions:
            partition = ctx.registry.partition(ft.topic, int(fp.partition))
            if denied:
                results.append(FetchPartitionResult(int(fp.partition), error_code=denied))
                continue
            if partition is None:
                results.append(FetchPartitionResult(int(fp.partition), error_code=UNKNOWN_TOPIC_OR_PARTITION))
                continue
            rep = ctx.extra.get("replication")
            if rep is not None and rep.storage_failed(ft.topic, int(fp.partition)):
                # Its log is being re-opened from disk after a storage error here.
                results.append(FetchPartitionResult(int(fp.partition), error_code=KAFKA_STORAGE_ERROR))
                continue
            hwm = partition.high_watermark
            start = partition.log_start_offset
            # read_committed reads only below the last stable offset (Kafka: the fetch's upper bound). Only
            # such fetches consult the transaction index; read_uncommitted ones are told LSO = HW, as before.
            index = txn_index(ctx, ft.topic, int(fp.partition)) if read_committed else None
            lso = index.last_stable_offset(hwm) if index is not None else hwm
            upper = lso
            res = FetchPartitionResult(
                int(fp.partition), high_watermark=hwm, last_stable_offset=lso, log_start_offset=start
            )
            offset = int(fp.fetch_offset)
            if offset < start or offset > hwm:
                res.error_code = OFFSET_OUT_OF_RANGE
                rep = ctx.extra.get("replication")
                if offset > hwm and rep is not None and not rep.caught_up(ft.topic, int(fp.partition)):
                    # A replica still applying committed batches (a new leader) cannot tell "past the end"
                    # from "not applied yet": a retriable error keeps consumers from resetting offsets.
                    res.error_code = NOT_LEADER_OR_FOLLOWER
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
        topics.append(FetchTopicResult(ft.topic, results))
    return topics, total


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
            for fp in ft.partitions
            if (p := ctx.registry.partition(ft.topic, int(fp.partition))) is not None
            and not topic_denied(ctx, Operation.READ, ft.topic)
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
    parts = encode_fetch_response(
        header.api_version, header.correlation_id, topics, session_id=0, throttle_ms=throttle_ms
    )
    return RawResponse(parts)
