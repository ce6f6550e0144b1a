"""BrokerRegistration (62) and UnregisterBroker (64), answered by the controller's Raft leader: a broker
registers itself, and a decommission is forwarded here (see replication.membership).

Both arrive on the Kafka port, which clients reach too. With an authorizer, registering needs
ClusterAction on the Cluster and unregistering Alter (as in Kafka). Always: a registration must pass
``Membership.admit`` (no unknown ids, no flapping of a registered broker's address), and an unregister
must carry a registered broker's proof (``replication.broker_proof``) unless an authorizer allowed it."""

from __future__ import annotations

import logging
from typing import Any

from streamraft_broker.controller.state import CONTROLLER_GROUP, BrokerReg
from streamraft_broker.handlers.authz import cluster_denied, may_cluster
from streamraft_broker.handlers.context import BrokerContext, err
from streamraft_broker.protocol.codec import build, response_type
from streamraft_broker.protocol.header import RequestHeader
from streamraft_broker.protocol.versions import ApiKey
from streamraft_broker.replication import broker_proof
from streamraft_broker.replication.membership import (
    BROKER_ID_NOT_REGISTERED,
    INVALID_REQUEST,
    KAFKA_LISTENER,
    NAMED_LISTENER_PREFIX,
    NOT_CONTROLLER,
    RAFT_LISTENER,
    MembershipError,
    RegistrationRefused,
)
from streamraft_broker.security.acl import CLUSTER_AUTHORIZATION_FAILED, Operation

log = logging.getLogger(__name__)

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


def _may_unregister(ctx: BrokerContext, rep: Any, header: RequestHeader, node: int) -> bool:
    """A broker forwarding an admin decommission proves itself; with an authorizer, Alter on the cluster
    (Kafka's rule) also suffices. Without one, a plain client never may."""
    message = broker_proof.unregister_message(node)
    if broker_proof.sender(header.client_id, rep.state.brokers, message) is not None:
        return True
    return ctx.authorizer.enabled and may_cluster(ctx, Operation.ALTER)


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
            reg = _registration(request)
            # With an authorizer: ClusterAction, or a configured member at its configured addresses.
            if not rep.membership.as_configured(reg):
                code = cluster_denied(ctx, Operation.CLUSTER_ACTION)
            if code:
                return build(cls, throttle_time=0, error_code=err(code), broker_epoch=-1)
            rep.membership.admit(reg, str(request.cluster_id))
            await rep.membership.register(reg)
        except ValueError:
            code = INVALID_REQUEST
        except RegistrationRefused as exc:
            log.warning("event=registration_refused node=%d reason=%s", int(request.broker_id), exc)
            code = exc.code
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
    if not _may_unregister(ctx, rep, header, int(request.broker_id)):
        return build(
            cls,
            throttle_time=0,
            error_code=err(CLUSTER_AUTHORIZATION_FAILED),
            error_message="unregistering a broker needs Alter on the cluster or a registered broker's proof",
        )
    try:
        await rep.membership.decommission(int(request.broker_id))
    except MembershipError as exc:
        code = {404: BROKER_ID_NOT_REGISTERED, 409: INVALID_REQUEST}.get(exc.status, NOT_CONTROLLER)
        return build(cls, throttle_time=0, error_code=err(code), error_message=exc.message)
    return build(cls, throttle_time=0, error_code=err(0), error_message=None)
