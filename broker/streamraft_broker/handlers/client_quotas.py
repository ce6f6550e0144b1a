"""DescribeClientQuotas (48) and AlterClientQuotas (49): what ``kafka-configs --entity-type users|clients``
(and ``ips``) and the Admin clients' ``describeClientQuotas``/``alterClientQuotas`` send.

Replicated, a change is one ``alter_client_quotas`` command in the controller log: the controller's leader
proposes it; any other broker forwards the request there (Kafka's admin clients send it to any broker), and
every broker describes and enforces its own applied copy. Single node, the command goes to the data
directory's quota file before the answer.
"""

from __future__ import annotations

import sys
from types import ModuleType
from typing import Any

from streamraft_broker.controller.commands import AlterClientQuotas, encode
from streamraft_broker.controller.state import CONTROLLER_GROUP
from streamraft_broker.handlers.authz import cluster_denied
from streamraft_broker.handlers.context import BrokerContext, err
from streamraft_broker.protocol.codec import build, nested, request_type, response_type
from streamraft_broker.protocol.header import RequestHeader
from streamraft_broker.protocol.versions import ApiKey
from streamraft_broker.quotas.entities import (
    INVALID_REQUEST,
    Alteration,
    QuotaError,
    check_op,
    make_entity,
)
from streamraft_broker.security.acl import Operation

NOT_CONTROLLER = 41
UNKNOWN_SERVER_ERROR = -1
_FORWARD_VERSION = 1
MAX_ENTRIES = 10_000
"""Alterations in one request (one controller command): a bound on what one request can make the
controller log carry at once."""


def _request_module(api_key: int, version: int) -> ModuleType:
    return sys.modules[request_type(api_key, version).__module__]


async def handle_describe_client_quotas(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    version = header.api_version
    cls = response_type(ApiKey.DESCRIBE_CLIENT_QUOTAS, version)
    entry_cls = nested(ApiKey.DESCRIBE_CLIENT_QUOTAS, version, "EntryData")
    entity_cls = nested(ApiKey.DESCRIBE_CLIENT_QUOTAS, version, "EntityData")
    value_cls = nested(ApiKey.DESCRIBE_CLIENT_QUOTAS, version, "ValueData")
    if denied := cluster_denied(ctx, Operation.DESCRIBE_CONFIGS):
        # Kafka: DescribeConfigs on the cluster.
        return build(
            cls, throttle_time=0, error_code=err(denied), error_message="not authorized", entries=None
        )
    if ctx.quotas is None:
        return build(
            cls,
            throttle_time=0,
            error_code=err(INVALID_REQUEST),
            error_message="no client quotas here",
            entries=None,
        )
    components = [(str(c.entity_type), int(c.match_type), c.match) for c in request.components]
    try:
        found = ctx.quotas.quotas.describe(components, bool(request.strict))
    except QuotaError as exc:
        ctx.metrics.record_error(exc.error_code)
        return build(
            cls, throttle_time=0, error_code=err(exc.error_code), error_message=str(exc), entries=None
        )
    entries = tuple(
        build(
            entry_cls,
            entity=tuple(build(entity_cls, entity_type=t, entity_name=n) for t, n in entity),
            values=tuple(build(value_cls, key=k, value=v) for k, v in sorted(values.items())),
        )
        for entity, values in found
    )
    return build(cls, throttle_time=0, error_code=err(0), error_message=None, entries=entries)


def _alteration(entry: Any) -> Alteration:
    entity = make_entity((str(c.entity_type), c.entity_name) for c in entry.entity)
    ops: dict[str, float | None] = {}
    for op in entry.ops:
        key = str(op.key)
        if key in ops:
            raise QuotaError(INVALID_REQUEST, f"quota key {key!r} appears more than once for one entity")
        ops[key] = check_op(entity, key, None if op.remove else float(op.value))
    return Alteration(entity, tuple(ops.items()))


async def handle_alter_client_quotas(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    if denied := cluster_denied(ctx, Operation.ALTER_CONFIGS):
        # Kafka: AlterConfigs on the cluster, answered per entry.
        return _alter_response(
            header.api_version, [(denied, "not authorized", e.entity) for e in request.entries]
        )
    rep = ctx.extra.get("replication")
    if (
        rep is not None
        and not rep.runtime.is_leader(CONTROLLER_GROUP)
        and header.client_id != _forwarded_client_id()
    ):
        return await _forward(ctx, rep, header, request)
    outcomes: list[tuple[int, str | None]] = []
    valid: list[tuple[int, Alteration]] = []
    for i, entry in enumerate(request.entries):
        try:
            if len(request.entries) > MAX_ENTRIES:
                raise QuotaError(
                    INVALID_REQUEST, f"{len(request.entries)} entries; at most {MAX_ENTRIES} per request"
                )
            valid.append((i, _alteration(entry)))
            outcomes.append((0, None))
        except QuotaError as exc:
            outcomes.append((exc.error_code, str(exc)))
    if valid and not request.validate_only:
        try:
            await _commit(ctx, rep, AlterClientQuotas(tuple(a for _, a in valid)))
        except QuotaError as exc:
            for i, _ in valid:
                outcomes[i] = (exc.error_code, str(exc))
    for code, _ in outcomes:
        if code:
            ctx.metrics.record_error(code)
    return _alter_response(
        header.api_version,
        [(code, msg, e.entity) for (code, msg), e in zip(outcomes, request.entries, strict=True)],
    )


def _alter_response(version: int, results: list[tuple[int, str | None, Any]]) -> Any:
    entry_cls = nested(ApiKey.ALTER_CLIENT_QUOTAS, version, "EntryData")
    entity_cls = nested(ApiKey.ALTER_CLIENT_QUOTAS, version, "EntityData")
    entries = tuple(
        build(
            entry_cls,
            error_code=err(code),
            error_message=message,
            entity=tuple(
                build(entity_cls, entity_type=c.entity_type, entity_name=c.entity_name) for c in entity
            ),
        )
        for code, message, entity in results
    )
    return build(response_type(ApiKey.ALTER_CLIENT_QUOTAS, version), throttle_time=0, entries=entries)


async def _commit(ctx: BrokerContext, rep: Any, command: AlterClientQuotas) -> None:
    if rep is None:
        if ctx.quotas is None or ctx.quotas.store is None:
            raise QuotaError(INVALID_REQUEST, "client quotas cannot be stored on this broker")
        try:
            ctx.quotas.store.apply(command)
        except OSError as exc:
            raise QuotaError(UNKNOWN_SERVER_ERROR, f"writing the client quotas failed: {exc}") from None
        return
    from streamraft_consensus.runtime.errors import ConsensusError  # noqa: PLC0415

    if not rep.runtime.is_leader(CONTROLLER_GROUP):
        raise QuotaError(NOT_CONTROLLER, f"node {ctx.node_id} is not the controller")
    try:
        await rep.runtime.propose(CONTROLLER_GROUP, encode(command))
    except ConsensusError as exc:
        raise QuotaError(NOT_CONTROLLER, f"controller proposal failed: {exc}") from None


def _forwarded_client_id() -> str:
    from streamraft_broker.replication.membership_rpc import CLIENT_ID  # noqa: PLC0415

    return CLIENT_ID.decode()


async def _forward(ctx: BrokerContext, rep: Any, header: RequestHeader, request: Any) -> Any:
    """Sends the request to the controller's leader (as KRaft brokers forward it) and answers with its
    response in the client's version; every entry fails with NOT_CONTROLLER when that cannot be done."""
    from streamraft_broker.replication.membership_rpc import ControllerUnreachable, call  # noqa: PLC0415

    mod = _request_module(ApiKey.ALTER_CLIENT_QUOTAS, _FORWARD_VERSION)
    body = build(
        request_type(ApiKey.ALTER_CLIENT_QUOTAS, _FORWARD_VERSION),
        validate_only=bool(request.validate_only),
        entries=tuple(
            build(
                mod.EntryData,
                entity=tuple(
                    build(mod.EntityData, entity_type=c.entity_type, entity_name=c.entity_name)
                    for c in e.entity
                ),
                ops=tuple(build(mod.OpData, key=o.key, value=o.value, remove=o.remove) for o in e.ops),
            )
            for e in request.entries
        ),
    )
    try:
        host, port = rep.controller_address()
        answer = await call(host, port, ApiKey.ALTER_CLIENT_QUOTAS, _FORWARD_VERSION, body)
        results = [(int(e.error_code), e.error_message, e.entity) for e in answer.entries]
        if len(results) != len(request.entries):
            raise ControllerUnreachable(f"{len(results)} answers for {len(request.entries)} entries")
    except ControllerUnreachable as exc:
        message = f"forwarding to the controller failed: {exc}"
        results = [(NOT_CONTROLLER, message, e.entity) for e in request.entries]
    for code, _, _ in results:
        if code:
            ctx.metrics.record_error(code)
    return _alter_response(header.api_version, results)
