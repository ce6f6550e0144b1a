"""FindCoordinator in replicated mode: a group's coordinator is the Raft leader of its `__consumer_offsets`
partition (replication.group_offsets); single-node mode keeps handlers.cluster's answer (this node)."""

from __future__ import annotations

from typing import Any

from kio.schema.errors import ErrorCode

from streamraft_broker.handlers.authz import group_denied
from streamraft_broker.handlers.cluster import handle_find_coordinator as single_node_find_coordinator
from streamraft_broker.handlers.context import BrokerContext, endpoint_of
from streamraft_broker.handlers.groups import replicated_groups
from streamraft_broker.protocol.codec import build, nested, response_type
from streamraft_broker.protocol.header import RequestHeader
from streamraft_broker.protocol.versions import ApiKey
from streamraft_broker.security.acl import Operation

COORDINATOR_GROUP = 0


async def handle_find_coordinator(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    replicated = replicated_groups(ctx)
    if replicated is None:
        return await single_node_find_coordinator(ctx, header, request)
    version = header.api_version
    cls = response_type(ApiKey.FIND_COORDINATOR, version)
    key_type = int(getattr(request, "key_type", COORDINATOR_GROUP))

    def answer(key: str) -> dict[str, Any]:
        if key_type != COORDINATOR_GROUP:
            # No transaction coordinator in replicated mode yet (handlers.transactions): said plainly.
            found: Any = ErrorCode.coordinator_not_available
            message: str | None = "transactions are not supported with --replication raft yet"
        elif denied := group_denied(ctx, Operation.DESCRIBE, key):
            found, message = ErrorCode(denied), f"Describe on group {key!r} is not allowed"
        else:
            found = replicated.coordinator_node(key)
            message = None
        if isinstance(found, ErrorCode):
            return {"node_id": -1, "host": "", "port": -1, "error_code": found, "error_message": message}
        return {
            "node_id": found.node_id,
            "host": endpoint_of(ctx, found.node_id, found.kafka_host, found.kafka_port)[0],
            "port": endpoint_of(ctx, found.node_id, found.kafka_host, found.kafka_port)[1],
            "error_code": ErrorCode.none,
            "error_message": None,
        }

    if version >= 4:
        coord_cls = nested(ApiKey.FIND_COORDINATOR, version, "Coordinator")
        coords = tuple(build(coord_cls, key=k, **answer(str(k))) for k in request.coordinator_keys)
        return build(cls, throttle_time=0, coordinators=coords)
    return build(cls, throttle_time=0, **answer(str(request.key)))
