"""CreateAcls (30), DescribeAcls (29), DeleteAcls (31): Kafka's ACL admin APIs over ``ctx.authorizer``'s
store. As in Kafka, they answer SECURITY_DISABLED when no authorizer is configured; creating and deleting
need Alter on the cluster (or come forwarded by a broker that checked it: replication.acls), describing
needs Describe. In a replicated cluster any broker answers: changes go through the controller log."""

from __future__ import annotations

from typing import Any

from streamraft_broker.controller.state import CONTROLLER_GROUP
from streamraft_broker.handlers.authz import cluster_denied
from streamraft_broker.handlers.context import BrokerContext, err
from streamraft_broker.protocol.codec import build, nested, response_type
from streamraft_broker.protocol.header import RequestHeader
from streamraft_broker.protocol.versions import ApiKey
from streamraft_broker.replication import broker_proof
from streamraft_broker.replication.acls import forward_message
from streamraft_broker.security.acl import (
    CREATE_ACLS,
    DELETE_ACLS,
    SECURITY_DISABLED,
    AclBinding,
    AclError,
    AclFilter,
    Operation,
    validate_binding,
)
from streamraft_broker.security.acl_store import AclStore

UNKNOWN_SERVER_ERROR = -1
NOT_CONTROLLER = 41
_DISABLED = "no authorizer is configured on this broker (set authorizer.class.name)"


def _store(ctx: BrokerContext) -> AclStore | None:
    store: AclStore | None = ctx.extra.get("acl_store")
    return store if ctx.authorizer.enabled else None


def _failure(exc: Exception) -> tuple[int, str]:
    """The error code and message for a store that could not apply a change (NOT_CONTROLLER off the
    controller's leader, INVALID_REQUEST over the binding limit)."""
    return int(getattr(exc, "error_code", UNKNOWN_SERVER_ERROR)), str(exc)


def _change_denied(ctx: BrokerContext, header: RequestHeader, op: str, items: list[Any]) -> int:
    """0 when this request may change ACLs: Alter on the cluster, or forwarded by a broker that checked it
    (see replication.acls) to this broker as the controller's leader (never forwarded a second time)."""
    rep = ctx.extra.get("replication")
    message = forward_message(op, items)
    if rep is None or not items or broker_proof.sender(header.client_id, rep.state.brokers, message) is None:
        return cluster_denied(ctx, Operation.ALTER)
    return 0 if rep.runtime.is_leader(CONTROLLER_GROUP) else NOT_CONTROLLER


async def handle_create_acls(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    version = header.api_version
    result_cls = nested(ApiKey.CREATE_ACLS, version, "AclCreationResult")
    store = _store(ctx)
    parsed: list[AclBinding | AclError] = []
    for c in request.creations:
        try:
            parsed.append(
                validate_binding(
                    int(c.resource_type),
                    str(c.resource_name),
                    int(getattr(c, "resource_pattern_type", 3)),
                    str(c.principal),
                    str(c.host),
                    int(c.operation),
                    int(c.permission_type),
                )
            )
        except AclError as exc:
            parsed.append(exc)
    valid = [b for b in parsed if isinstance(b, AclBinding)]
    denied = _change_denied(ctx, header, CREATE_ACLS, valid)
    outcomes: list[tuple[int, str | None]] = []
    for item in parsed:
        if store is None:
            outcomes.append((SECURITY_DISABLED, _DISABLED))
        elif denied:
            outcomes.append((denied, "Alter on the cluster is required to create ACLs (or the controller)"))
        elif isinstance(item, AclError):
            outcomes.append((item.error_code, str(item)))
        else:
            outcomes.append((0, None))
    if store is not None and not denied and valid:
        try:
            await store.create(valid)
        except Exception as exc:  # any store failure is answered for every binding it held
            code, message = _failure(exc)
            outcomes = [(code, message) if o == (0, None) else o for o in outcomes]
    results = tuple(build(result_cls, error_code=err(c), error_message=m) for c, m in outcomes)
    return build(response_type(ApiKey.CREATE_ACLS, version), throttle_time=0, results=results)


def _filter(f: Any) -> AclFilter:
    return AclFilter.parse(
        int(f.resource_type_filter),
        f.resource_name_filter,
        int(getattr(f, "pattern_type_filter", 3)),
        f.principal_filter,
        f.host_filter,
        int(f.operation),
        int(f.permission_type),
    )


async def handle_describe_acls(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    version = header.api_version
    cls = response_type(ApiKey.DESCRIBE_ACLS, version)
    store = _store(ctx)
    code, message, found = 0, None, []
    if store is None:
        code, message = SECURITY_DISABLED, _DISABLED
    elif denied := cluster_denied(ctx, Operation.DESCRIBE):
        code, message = denied, "Describe on the cluster is required to describe ACLs"
    else:
        try:
            found = store.current().matching(_filter(request))
        except AclError as exc:
            code, message = exc.error_code, str(exc)
    by_resource: dict[tuple[int, str, int], list[AclBinding]] = {}
    for b in found:
        by_resource.setdefault((int(b.resource_type), b.name, int(b.pattern_type)), []).append(b)
    resource_cls = nested(ApiKey.DESCRIBE_ACLS, version, "DescribeAclsResource")
    acl_cls = nested(ApiKey.DESCRIBE_ACLS, version, "AclDescription")
    resources = tuple(
        build(
            resource_cls,
            resource_type=rtype,
            resource_name=name,
            pattern_type=ptype,
            acls=tuple(
                build(
                    acl_cls,
                    principal=b.principal,
                    host=b.host,
                    operation=int(b.operation),
                    permission_type=int(b.permission),
                )
                for b in bindings
            ),
        )
        for (rtype, name, ptype), bindings in by_resource.items()
    )
    return build(cls, throttle_time=0, error_code=err(code), error_message=message, resources=resources)


async def handle_delete_acls(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    version = header.api_version
    result_cls = nested(ApiKey.DELETE_ACLS, version, "DeleteAclsFilterResult")
    match_cls = nested(ApiKey.DELETE_ACLS, version, "DeleteAclsMatchingAcl")
    store = _store(ctx)
    parsed: list[AclFilter | AclError] = []
    for f in request.filters:
        try:
            parsed.append(_filter(f))
        except AclError as exc:
            parsed.append(exc)
    valid = [f for f in parsed if isinstance(f, AclFilter)]
    denied = _change_denied(ctx, header, DELETE_ACLS, valid)
    per_filter: list[tuple[int, str | None, list[AclBinding]]] = []
    for item in parsed:
        if store is None:
            per_filter.append((SECURITY_DISABLED, _DISABLED, []))
        elif denied:
            per_filter.append(
                (denied, "Alter on the cluster is required to delete ACLs (or the controller)", [])
            )
        elif isinstance(item, AclError):
            per_filter.append((item.error_code, str(item), []))
        else:
            per_filter.append((0, None, store.current().matching(item)))
    doomed = list(dict.fromkeys(b for _c, _m, matched in per_filter for b in matched))
    if store is not None and doomed:
        try:
            await store.delete(doomed)
        except Exception as exc:
            code, message = _failure(exc)
            per_filter = [(code, message, []) if c == 0 else (c, m, []) for c, m, _ in per_filter]
    results = tuple(
        build(
            result_cls,
            error_code=err(code),
            error_message=message,
            matching_acls=tuple(
                build(
                    match_cls,
                    error_code=err(0),
                    error_message=None,
                    resource_type=int(b.resource_type),
                    resource_name=b.name,
                    pattern_type=int(b.pattern_type),
                    principal=b.principal,
                    host=b.host,
                    operation=int(b.operation),
                    permission_type=int(b.permission),
                )
                for b in matched
            ),
        )
        for code, message, matched in per_filter
    )
    return build(response_type(ApiKey.DELETE_ACLS, version), throttle_time=0, filter_results=results)
