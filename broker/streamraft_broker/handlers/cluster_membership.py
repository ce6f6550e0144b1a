"""BrokerRegistration (62) and UnregisterBroker (64), answered by the controller's Raft leader: a broker
registers itself, and a decommission is forwarded here (see replication.membership)."""

from __future__ import annotations

from typing import Any

from streamraft_broker.controller.state import CONTROLLER_GROUP, BrokerReg
from streamraft_broker.handlers.context import BrokerContext, err
from streamraft_broker.protocol.codec import build, response_type
from streamraft_broker.protocol.header import RequestHeader
from streamraft_broker.protocol.versions import ApiKey
from streamraft_broker.replication.membership import (
    BROKER_ID_NOT_REGISTERED,
    INVALID_REQUEST,
    KAFKA_LISTENER,
    NAMED_LISTENER_PREFIX,
    NOT_CONTROLLER,
    RAFT_LISTENER,
    MembershipError,
)

MAX_BROKER_ID = 1_000_000


def _registration(request: Any) -> BrokerReg:
    listeners = {str(x.name): x for x in request.listeners}
    kafka, raft = listeners.get(KAFKA_LISTENER), listeners.get(RAFT_LISTENER)
    if kafka is None or raft is None:
        raise ValueError(f"listeners {sorted(listeners)} must include {KAFKA_LISTENER} and {RAFT_LISTENER}")
    if not 1 <= int(request.broker_id) <= MAX_BROKER_ID:
        raise ValueError(f"broker id {int(request.broker_id)} is outside 1..{MAX_BROKER_ID}")
    if request.incarnation_id is None:
        raise ValueError("incarnation id is required")
    return BrokerReg(
        int(request.broker_id),
        str(kafka.host),
        int(kafka.port),
        f"{raft.host}:{int(raft.port)}",
        None if request.rack is None else str(request.rack),
        str(request.incarnation_id),
        listeners={
            name[len(NAMED_LISTENER_PREFIX) :]: f"{x.host}:{int(x.port)}"
            for name, x in listeners.items()
            if name.startswith(NAMED_LISTENER_PREFIX)
        },
    )


async def handle_broker_registration(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    cls = response_type(ApiKey.BROKER_REGISTRATION, header.api_version)
    rep = ctx.extra.get("replication")
    code = 0
    if rep is None:
        code = INVALID_REQUEST
    elif not rep.runtime.is_leader(CONTROLLER_GROUP):
        code = NOT_CONTROLLER
    else:
        try:
            await rep.membership.register(_registration(request))
        except ValueError:
            code = INVALID_REQUEST
        except MembershipError:
            code = NOT_CONTROLLER
    return build(cls, throttle_time=0, error_code=err(code), broker_epoch=-1)


async def handle_unregister_broker(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    """Starts a decommission (replicas move off, then the broker leaves the metadata); answers once the
    controller log records it as decommissioning."""
    cls = response_type(ApiKey.UNREGISTER_BROKER, header.api_version)
    rep = ctx.extra.get("replication")
    if rep is None:
        return build(cls, throttle_time=0, error_code=err(INVALID_REQUEST), error_message="not replicated")
    if not rep.runtime.is_leader(CONTROLLER_GROUP):
        return build(cls, throttle_time=0, error_code=err(NOT_CONTROLLER), error_message="not the controller")
    try:
        await rep.membership.decommission(int(request.broker_id))
    except MembershipError as exc:
        code = {404: BROKER_ID_NOT_REGISTERED, 409: INVALID_REQUEST}.get(exc.status, NOT_CONTROLLER)
        return build(cls, throttle_time=0, error_code=err(code), error_message=exc.message)
    return build(cls, throttle_time=0, error_code=err(0), error_message=None)
