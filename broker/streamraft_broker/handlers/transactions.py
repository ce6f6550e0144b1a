"""The transaction APIs of a single-node broker: InitProducerId with a transactional id,
AddPartitionsToTxn (v0-v3, the client form), AddOffsetsToTxn, TxnOffsetCommit and EndTxn. This node is every
transactional id's coordinator. Replicated mode has no transaction coordinator yet: FindCoordinator answers
COORDINATOR_NOT_AVAILABLE for transactional ids there, and these APIs answer the same."""

from __future__ import annotations

import logging
from typing import Any

from kio.schema.errors import ErrorCode

from streamraft_broker.handlers.authz import may, topic_denied
from streamraft_broker.handlers.context import BrokerContext, err
from streamraft_broker.handlers.groups import coordinator_for
from streamraft_broker.log import wall_clock_ms
from streamraft_broker.protocol.codec import build, nested, response_type
from streamraft_broker.protocol.header import RequestHeader
from streamraft_broker.protocol.versions import ApiKey
from streamraft_broker.security.acl import Operation, Resource
from streamraft_broker.transactions.coordinator import Offsets, TransactionCoordinator
from streamraft_broker.transactions.partition_index import PartitionTxnIndex
from streamraft_broker.transactions.service import TransactionService
from streamraft_broker.transactions.state import TxnError, TxnState

log = logging.getLogger(__name__)

OLD_FENCED_CODE_BELOW = {
    # Before these versions clients do not know PRODUCER_FENCED (KIP-588) and get INVALID_PRODUCER_EPOCH.
    ApiKey.INIT_PRODUCER_ID: 4,
    ApiKey.ADD_PARTITIONS_TO_TXN: 2,
    ApiKey.ADD_OFFSETS_TO_TXN: 2,
    ApiKey.END_TXN: 2,
    ApiKey.TXN_OFFSET_COMMIT: 3,
}


def service(ctx: BrokerContext) -> TransactionService | None:
    found: TransactionService | None = ctx.extra.get("transactions")
    return found


def txn_index(ctx: BrokerContext, topic: str, index: int) -> PartitionTxnIndex | None:
    """The partition's index of open/aborted transactions, when this broker runs transactions."""
    svc = service(ctx)
    return svc.index(topic, index) if svc is not None else None


def _code(exc: TxnError, api: ApiKey, version: int) -> ErrorCode:
    if exc.code == ErrorCode.producer_fenced and version < OLD_FENCED_CODE_BELOW[api]:
        return ErrorCode.invalid_producer_epoch
    return exc.code


def txn_denied(ctx: BrokerContext, transactional_id: str) -> bool:
    return not may(ctx, Operation.WRITE, Resource.transactional_id(transactional_id))


async def _coordinator(ctx: BrokerContext) -> TransactionCoordinator | ErrorCode:
    svc = service(ctx)
    if svc is None:
        return ErrorCode.coordinator_not_available
    return await svc.ensure_started()


async def init_transactional_producer_id(
    ctx: BrokerContext, header: RequestHeader, request: Any
) -> tuple[ErrorCode, int, int]:
    """InitProducerId for a request with a transactional id: (error, producer id, epoch)."""
    tid = str(request.transactional_id)
    if txn_denied(ctx, tid):
        return ErrorCode.transactional_id_authorization_failed, -1, -1
    coord = await _coordinator(ctx)
    if isinstance(coord, ErrorCode):
        return coord, -1, -1
    timeout = request.transaction_timeout
    timeout_ms = int(timeout.total_seconds() * 1000) if hasattr(timeout, "total_seconds") else int(timeout)
    try:
        pid, epoch = await coord.init_producer_id(
            tid,
            timeout_ms,
            int(getattr(request, "producer_id", -1)),
            int(getattr(request, "producer_epoch", -1)),
        )
    except TxnError as exc:
        return _code(exc, ApiKey.INIT_PRODUCER_ID, header.api_version), -1, -1
    return ErrorCode.none, pid, epoch


async def handle_add_partitions_to_txn(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    version = header.api_version
    part_cls = nested(ApiKey.ADD_PARTITIONS_TO_TXN, version, "AddPartitionsToTxnPartitionResult")
    topic_cls = nested(ApiKey.ADD_PARTITIONS_TO_TXN, version, "AddPartitionsToTxnTopicResult")
    tid = str(request.v3_and_below_transactional_id)
    wanted = [(str(t.name), int(p)) for t in request.v3_and_below_topics for p in t.partitions]
    codes: dict[tuple[str, int], ErrorCode] = {}
    failed: ErrorCode | None = None
    if txn_denied(ctx, tid):
        failed = ErrorCode.transactional_id_authorization_failed
    else:
        # Kafka: one refused partition fails the request; the others answer OPERATION_NOT_ATTEMPTED.
        for topic, index in wanted:
            if code := topic_denied(ctx, Operation.WRITE, topic):
                codes[(topic, index)] = err(code)
            elif ctx.registry.partition(topic, index) is None:
                codes[(topic, index)] = ErrorCode.unknown_topic_or_partition
        if codes:
            failed = ErrorCode.operation_not_attempted
    if failed is None:
        coord = await _coordinator(ctx)
        if isinstance(coord, ErrorCode):
            failed = coord
        else:
            try:
                coord.add_partitions(
                    tid,
                    int(request.v3_and_below_producer_id),
                    int(request.v3_and_below_producer_epoch),
                    set(wanted),
                )
            except TxnError as exc:
                failed = _code(exc, ApiKey.ADD_PARTITIONS_TO_TXN, version)
    by_topic: dict[str, list[Any]] = {}
    for topic, index in wanted:
        code = codes.get((topic, index), failed if failed is not None else ErrorCode.none)
        by_topic.setdefault(topic, []).append(
            build(part_cls, partition_index=index, partition_error_code=code)
        )
    results = tuple(build(topic_cls, name=t, results_by_partition=tuple(ps)) for t, ps in by_topic.items())
    return build(
        response_type(ApiKey.ADD_PARTITIONS_TO_TXN, version),
        throttle_time=0,
        error_code=ErrorCode.none,
        results_by_topic_v3_and_below=results,
        results_by_transaction=(),
    )


async def handle_add_offsets_to_txn(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    cls = response_type(ApiKey.ADD_OFFSETS_TO_TXN, header.api_version)
    tid = str(request.transactional_id)
    if txn_denied(ctx, tid):
        return build(cls, throttle_time=0, error_code=ErrorCode.transactional_id_authorization_failed)
    if not may(ctx, Operation.READ, Resource.group(str(request.group_id))):
        return build(cls, throttle_time=0, error_code=ErrorCode.group_authorization_failed)
    coord = await _coordinator(ctx)
    if isinstance(coord, ErrorCode):
        return build(cls, throttle_time=0, error_code=coord)
    try:
        coord.add_offsets(tid, int(request.producer_id), int(request.producer_epoch), str(request.group_id))
    except TxnError as exc:
        return build(
            cls, throttle_time=0, error_code=_code(exc, ApiKey.ADD_OFFSETS_TO_TXN, header.api_version)
        )
    return build(cls, throttle_time=0, error_code=ErrorCode.none)


async def handle_txn_offset_commit(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    version = header.api_version
    part_cls = nested(ApiKey.TXN_OFFSET_COMMIT, version, "TxnOffsetCommitResponsePartition")
    topic_cls = nested(ApiKey.TXN_OFFSET_COMMIT, version, "TxnOffsetCommitResponseTopic")
    tid = str(request.transactional_id)
    group = str(request.group_id)
    offsets: Offsets = {
        (str(t.name), int(p.partition_index)): (
            int(p.committed_offset),
            int(getattr(p, "committed_leader_epoch", -1)),
            p.committed_metadata or "",
        )
        for t in request.topics
        for p in t.partitions
    }
    code = ErrorCode.none
    if txn_denied(ctx, tid):
        code = ErrorCode.transactional_id_authorization_failed
    elif not may(ctx, Operation.READ, Resource.group(group)):
        code = ErrorCode.group_authorization_failed
    elif any(topic_denied(ctx, Operation.READ, t) for t, _ in offsets):
        code = ErrorCode.topic_authorization_failed
    else:
        coord = await _coordinator(ctx)
        if isinstance(coord, ErrorCode):
            code = coord
        elif (refused := _group_member_refused(ctx, group, request)) is not None:
            code = refused
        else:
            try:
                coord.txn_offset_commit(
                    tid, int(request.producer_id), int(request.producer_epoch), group, offsets
                )
            except TxnError as exc:
                code = _code(exc, ApiKey.TXN_OFFSET_COMMIT, version)
    topics = tuple(
        build(
            topic_cls,
            name=t.name,
            partitions=tuple(
                build(part_cls, partition_index=p.partition_index, error_code=code) for p in t.partitions
            ),
        )
        for t in request.topics
    )
    return build(response_type(ApiKey.TXN_OFFSET_COMMIT, version), throttle_time=0, topics=topics)


def _group_member_refused(ctx: BrokerContext, group: str, request: Any) -> ErrorCode | None:
    """KIP-447 (v3+): the group's verdict on the committing consumer's member id, generation and instance
    id (ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID), as Kafka's group coordinator gives it
    before the offsets join the transaction; None when the member may commit. Older versions carry no
    identity (generation -1, no member), which the group accepts."""
    groups = coordinator_for(ctx, group)
    if isinstance(groups, ErrorCode):
        return groups
    code = groups.validate_txn_offset_commit(
        group,
        int(getattr(request, "generation_id", -1)),
        str(getattr(request, "member_id", "") or ""),
        getattr(request, "group_instance_id", None),
    )
    return None if code == ErrorCode.none else code


async def handle_end_txn(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    cls = response_type(ApiKey.END_TXN, header.api_version)
    tid = str(request.transactional_id)
    if txn_denied(ctx, tid):
        return build(cls, throttle_time=0, error_code=ErrorCode.transactional_id_authorization_failed)
    coord = await _coordinator(ctx)
    if isinstance(coord, ErrorCode):
        return build(cls, throttle_time=0, error_code=coord)
    try:
        await coord.end_txn(
            tid, int(request.producer_id), int(request.producer_epoch), bool(request.committed)
        )
    except TxnError as exc:
        return build(cls, throttle_time=0, error_code=_code(exc, ApiKey.END_TXN, header.api_version))
    except (OSError, ValueError) as exc:
        # A marker could not be written: the transaction stays in Prepare*, and the client's retry (or the
        # coordinator's periodic recovery) writes the markers again.
        log.warning("EndTxn for %r failed writing markers: %s", tid, exc)
        return build(cls, throttle_time=0, error_code=ErrorCode.coordinator_load_in_progress)
    return build(cls, throttle_time=0, error_code=ErrorCode.none)


async def handle_describe_transactions(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    """DescribeTransactions (kafka-transactions.sh describe): each id's state as the coordinator has it."""
    version = header.api_version
    state_cls = nested(ApiKey.DESCRIBE_TRANSACTIONS, version, "TransactionState")
    topic_cls = nested(ApiKey.DESCRIBE_TRANSACTIONS, version, "TopicData")
    svc = service(ctx)
    states = []
    for raw_id in request.transactional_ids:
        tid = str(raw_id)
        meta = svc.coordinator.metadata(tid) if svc is not None else None
        code = ErrorCode.none
        if not may(ctx, Operation.DESCRIBE, Resource.transactional_id(tid)):
            code = ErrorCode.transactional_id_authorization_failed
        elif svc is None:
            code = ErrorCode.coordinator_not_available
        elif meta is None:
            code = ErrorCode.transactional_id_not_found
        if meta is None or code != ErrorCode.none:
            states.append(
                build(
                    state_cls,
                    error_code=code,
                    transactional_id=tid,
                    transaction_state="",
                    transaction_timeout=0,
                    transaction_start_time=-1,
                    producer_id=-1,
                    producer_epoch=-1,
                    topics=(),
                )
            )
            continue
        by_topic: dict[str, list[int]] = {}
        for topic, index in sorted(meta.partitions):
            if not topic_denied(ctx, Operation.DESCRIBE, topic):
                by_topic.setdefault(topic, []).append(index)
        states.append(
            build(
                state_cls,
                error_code=code,
                transactional_id=tid,
                transaction_state=meta.state.value,
                transaction_timeout=meta.timeout_ms,
                transaction_start_time=meta.start_ms,
                producer_id=meta.producer_id,
                producer_epoch=meta.epoch,
                topics=tuple(build(topic_cls, topic=t, partitions=tuple(ps)) for t, ps in by_topic.items()),
            )
        )
    return build(
        response_type(ApiKey.DESCRIBE_TRANSACTIONS, version),
        throttle_time=0,
        transaction_states=tuple(states),
    )


async def handle_list_transactions(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    """ListTransactions (kafka-transactions.sh list): the ids this node coordinates that the principal may
    Describe, filtered by state, producer id and (v1) minimum running time. None in replicated mode."""
    version = header.api_version
    state_cls = nested(ApiKey.LIST_TRANSACTIONS, version, "TransactionState")
    known = {s.value for s in TxnState}
    wanted_states = {str(s) for s in request.state_filters}
    wanted_pids = {int(p) for p in request.producer_id_filters}
    min_duration = int(getattr(request, "duration_filter", -1))
    svc = service(ctx)
    now = wall_clock_ms()
    listed = []
    for meta in svc.coordinator.transactions() if svc is not None else ():
        if wanted_states and meta.state.value not in wanted_states:
            continue
        if wanted_pids and meta.producer_id not in wanted_pids:
            continue
        if min_duration >= 0 and (meta.start_ms < 0 or now - meta.start_ms < min_duration):
            continue
        if not may(ctx, Operation.DESCRIBE, Resource.transactional_id(meta.transactional_id)):
            continue
        listed.append(
            build(
                state_cls,
                transactional_id=meta.transactional_id,
                producer_id=meta.producer_id,
                transaction_state=meta.state.value,
            )
        )
    return build(
        response_type(ApiKey.LIST_TRANSACTIONS, version),
        throttle_time=0,
        error_code=ErrorCode.none,
        unknown_state_filters=tuple(sorted(wanted_states - known)),
        transaction_states=tuple(listed),
    )
