"""Cluster membership in the controller log: broker registration, placement inputs, decommission.

Registration. Every broker keeps a registration in the controller log: {id, kafka address, raft address,
rack, incarnation id}. The incarnation id is a UUID written to ``DATA/raft/incarnation`` the first time the
broker starts on an empty disk, so a broker restarted with a wiped disk registers a new one. A broker
proposes its registration through the controller's Raft leader: directly when it is that leader, else with
a Kafka BrokerRegistration (API 62) request to the leader's Kafka address (``membership_rpc``), retried
every ``RETRY_S`` until the registration it wants is applied; it checks again whenever the controller log
changes, so a changed address (a restart with other ports) is registered again. Raft addresses travel as a
listener named ``RAFT``; the Kafka address as ``PLAINTEXT``.

Metadata and DescribeCluster list registered brokers that are not decommissioned; before the first
registration is applied they fall back to the static ``--cluster-members`` list. Every broker tells its
Raft transport a registered broker's raft address, so a broker missing from ``--cluster-members`` (it
only needs to list the existing brokers, plus itself) can join: the controller leader adds every
registered broker to the controller group as a learner, and placement may then give it replicas.

Placement spreads replicas over registered, active (not decommissioning) brokers, alternating racks
(``--rack`` / STREAMRAFT_RACK) so a partition's replicas sit in different racks when there are enough.

Decommission (used by the Kubernetes operator before shrinking a StatefulSet), on the admin HTTP server
(the metrics port) of any broker:

- ``POST /admin/brokers/<id>/decommission`` -> 202 ``{"id": 4, "state": "decommissioning",
  "replicas_left": 7}`` once the controller log records the broker as decommissioning (placement stops
  using it, and the controller leader starts moving each of its replicas to another broker, one move per
  partition, through ``replication.reassign``). When no partition lists it any more, the controller
  marks it ``decommissioned``: it leaves Metadata and the controller group. Repeating the POST is safe
  (202 while moving, 200 ``{"state": "decommissioned", "replicas_left": 0}`` when done). A decommissioned
  broker stays out while it keeps its disk; started again on an empty disk (a new incarnation id) it
  registers as a new, active broker. Errors (JSON
  ``{"error": ...}``): 404 unknown broker, 409 a controller voter (the first three ids) or too few other
  active brokers to hold its partitions' replication factor, 503 no controller reachable.
  A non-controller broker forwards the request as a Kafka UnregisterBroker (API 64) to the controller.
- ``GET /admin/brokers`` -> ``{"controller": 1, "brokers": [{"id": 1, "kafka": "h:p", "raft": "h:p",
  "rack": null, "incarnation": "...", "state": "active", "replicas": 12}, ...]}`` (this broker's applied
  view of the controller log; decommissioned brokers stay listed with state ``decommissioned``).

A broker restarted on an empty disk registers its new incarnation (the controller counts it in
``previous_incarnations``) and rejoins its Raft groups through ``replication.rejoin``: it votes and counts
toward no quorum until each group's leader has demoted it to learner, it has caught up, and the leader has
promoted it back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kio.schema.broker_registration.v0 import request as reg_req
from kio.schema.broker_registration.v0 import response as reg_resp
from kio.schema.types import BrokerId
from kio.schema.unregister_broker.v0 import request as unreg_req
from kio.static.primitive import i16, u16
from streamraft_consensus.runtime.errors import ConsensusError

from streamraft_broker.admin import AdminError, AdminRequest, AdminResponse
from streamraft_broker.controller.commands import (
    DecommissionBroker,
    Reassign,
    UnregisterBroker,
    encode,
)
from streamraft_broker.controller.state import (
    BROKER_ACTIVE,
    BROKER_DECOMMISSIONED,
    BROKER_DECOMMISSIONING,
    CONTROLLER_GROUP,
    BrokerReg,
)
from streamraft_broker.log.fileio import atomic_write
from streamraft_broker.replication import broker_proof, membership_rpc

if TYPE_CHECKING:
    from streamraft_broker.replication.service import ReplicationService

log = logging.getLogger(__name__)

RETRY_S = 0.5
IDLE_CHECK_S = 5.0
DUTY_INTERVAL_S = 0.5
PROPOSE_TIMEOUT_S = 5.0
RAFT_LISTENER = "RAFT"
KAFKA_LISTENER = "PLAINTEXT"
NAMED_LISTENER_PREFIX = "listener."
"""Registration entries of the broker's named Kafka listeners (``listener.SASL_SSL``); a prefix no
Kafka listener name can carry, so none collides with the two above."""
NOT_CONTROLLER = 41
INVALID_REQUEST = 42
DUPLICATE_BROKER_REGISTRATION = 101
BROKER_ID_NOT_REGISTERED = 102
INCONSISTENT_CLUSTER_ID = 104
MAX_RACK_CHARS = 255


def load_incarnation(raft_dir: Path) -> tuple[str, bool]:
    """This disk's incarnation id, and whether it was just created (the disk held none)."""
    path = raft_dir / "incarnation"
    if path.exists():
        text = path.read_text().strip()
        return str(uuid.UUID(text)), False
    raft_dir.mkdir(parents=True, exist_ok=True)
    value = str(uuid.uuid4())
    atomic_write(path, (value + "\n").encode())  # durable: a lost id would look like a wiped disk
    return value, True


def _retired(have: BrokerReg, want: BrokerReg) -> bool:
    """A decommissioned broker stays out until it comes back with a new disk (a new incarnation)."""
    return have.state == BROKER_DECOMMISSIONED and have.incarnation == want.incarnation


class MembershipError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class RegistrationRefused(Exception):
    """A BrokerRegistration the controller will not record; ``code`` is the Kafka error to answer."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def _addresses(reg: BrokerReg) -> tuple[str, int, str]:
    return reg.kafka_host, reg.kafka_port, reg.raft_address


class Membership:
    def __init__(self, service: ReplicationService, rack: str | None) -> None:
        if rack is not None and not 0 < len(rack) <= MAX_RACK_CHARS:
            raise ValueError(f"rack {rack!r} must be 1..{MAX_RACK_CHARS} characters")
        self.service = service
        self.rack = rack
        self.incarnation, self.fresh_disk = load_incarnation(service.raft_dir)
        self.changed = asyncio.Event()
        """Set whenever the controller log applies a membership or move command."""

    # ------------------------------------------------------------------ this broker's registration

    def wanted(self) -> BrokerReg:
        me = self.service.members[self.service.node_id]
        return BrokerReg(
            me.node_id,
            me.kafka_host,
            me.kafka_port,
            me.raft_address,
            self.rack,
            self.incarnation,
            listeners=dict(self.service.listener_endpoints),
        )

    async def registrar(self) -> None:
        """Keep this broker's registration in the controller log up to date (runs for the broker's life)."""
        while True:
            want = self.wanted()
            have = self.service.state.brokers.get(want.node_id)
            if have is not None and (have.same_endpoint(want) or _retired(have, want)):
                self.changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.changed.wait(), IDLE_CHECK_S)
                continue
            try:
                await self._register(want)
            except (membership_rpc.ControllerUnreachable, MembershipError) as exc:
                log.debug("event=register_retry node=%d reason=%s", want.node_id, exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), RETRY_S)
            self.changed.clear()

    async def _register(self, reg: BrokerReg) -> None:
        if self.service.runtime.is_leader(CONTROLLER_GROUP):
            await self.register(reg)
            return
        host, port = self.service.controller_address()
        listeners = (
            reg_req.Listener(
                name=KAFKA_LISTENER, host=reg.kafka_host, port=u16(reg.kafka_port), security_protocol=i16(0)
            ),
            reg_req.Listener(
                name=RAFT_LISTENER,
                host=reg.raft_address.rpartition(":")[0],
                port=u16(int(reg.raft_address.rpartition(":")[2])),
                security_protocol=i16(0),
            ),
            *(
                reg_req.Listener(
                    name=NAMED_LISTENER_PREFIX + name,
                    host=address.rpartition(":")[0],
                    port=u16(int(address.rpartition(":")[2])),
                    security_protocol=i16(0),
                )
                for name, address in sorted(reg.listeners.items())
            ),
        )
        body = reg_req.BrokerRegistrationRequest(
            broker_id=BrokerId(reg.node_id),
            cluster_id=self.service.cluster_id,
            incarnation_id=uuid.UUID(reg.incarnation),
            listeners=listeners,
            features=(),
            rack=reg.rack,
        )
        answer: reg_resp.BrokerRegistrationResponse = await membership_rpc.call(host, port, 62, 0, body)
        if answer.error_code != 0:
            raise MembershipError(503, f"controller answered error {int(answer.error_code)}")

    # ------------------------------------------------------------------ controller leader side

    def as_configured(self, reg: BrokerReg) -> bool:
        """``reg`` puts a ``--cluster-members`` broker exactly at its configured addresses (what a broker on
        a PLAINTEXT listener, User:ANONYMOUS, may still register when an authorizer is on)."""
        member = self.service.members.get(reg.node_id)
        if member is None:
            return False
        return (member.kafka_host, member.kafka_port, member.raft_address) == _addresses(reg)

    def admit(self, reg: BrokerReg, cluster_id: str) -> None:
        """Controller leader: raises RegistrationRefused unless a BrokerRegistration received over the
        Kafka port may change the controller log. Clients reach that port too, so without authentication
        a registration must be consistent with what the cluster knows:

        - the cluster id is this cluster's (Kafka: INCONSISTENT_CLUSTER_ID);
        - a new id is a configured member (``--cluster-members``), or joining is allowed
          (``allow_broker_join``): else a fake broker would receive replicas and Raft traffic;
        - an id already registered keeps either its incarnation (a restart, maybe on other ports) or its
          addresses (a restart on an empty disk); a new incarnation at other addresses is someone else
          claiming the id (Kafka: DUPLICATE_BROKER_REGISTRATION) and would make the address flap.
        """
        if cluster_id != self.service.cluster_id:
            raise RegistrationRefused(
                INCONSISTENT_CLUSTER_ID, f"cluster id {cluster_id!r} is not {self.service.cluster_id!r}"
            )
        have = self.service.state.brokers.get(reg.node_id)
        if have is None:
            if reg.node_id not in self.service.members and not self.service.allow_broker_join:
                raise RegistrationRefused(
                    INVALID_REQUEST,
                    f"broker {reg.node_id} is not in --cluster-members and allow_broker_join is off",
                )
            return
        if have.incarnation != reg.incarnation and _addresses(have) != _addresses(reg):
            raise RegistrationRefused(
                DUPLICATE_BROKER_REGISTRATION,
                f"broker {reg.node_id} is registered at {_addresses(have)} with another incarnation",
            )

    async def register(self, reg: BrokerReg) -> None:
        """Controller leader: record ``reg`` (no-op if the log already holds it)."""
        have = self.service.state.brokers.get(reg.node_id)
        if have is not None and (have.same_endpoint(reg) or _retired(have, reg)):
            return
        if have is not None and have.incarnation != reg.incarnation:
            log.warning(
                "event=broker_new_incarnation node=%d old=%s new=%s (restarted on an empty disk?)",
                reg.node_id,
                have.incarnation,
                reg.incarnation,
            )
        await self.propose(encode(reg.command()))

    async def propose(self, command: bytes) -> None:
        if not self.service.runtime.is_leader(CONTROLLER_GROUP):
            raise MembershipError(503, f"node {self.service.node_id} is not the controller")
        try:
            await asyncio.wait_for(self.service.runtime.propose(CONTROLLER_GROUP, command), PROPOSE_TIMEOUT_S)
        except (ConsensusError, TimeoutError) as exc:
            raise MembershipError(503, f"controller proposal failed: {exc!r}") from None

    def decommission_check(self, node: int) -> None:
        state = self.service.state
        reg = state.brokers.get(node)
        if reg is None:
            raise MembershipError(404, f"broker {node} is not registered")
        if reg.state != BROKER_ACTIVE:
            return
        if node in self.service.controller_voters:
            raise MembershipError(
                409, f"broker {node} is a controller voter {self.service.controller_voters}; cannot remove it"
            )
        others = [b for b in state.placeable_brokers() if b != node]
        need = max((len(t.replicas[p]) for t, p in self._partitions_on(node)), default=0)
        if need > len(others):
            raise MembershipError(
                409,
                f"broker {node} holds partitions with {need} replicas but only {len(others)} other brokers",
            )

    def _partitions_on(self, node: int) -> list[tuple[Any, int]]:
        state = self.service.state
        return [(state.topics[name], p) for name, p in state.replicas_on(node)]

    async def decommission(self, node: int) -> None:
        """Controller leader: mark ``node`` decommissioning (the duty loop then moves its replicas)."""
        self.decommission_check(node)
        if self.service.state.brokers[node].state == BROKER_ACTIVE:
            await self.propose(encode(DecommissionBroker(node)))

    async def duties(self) -> None:
        """While this broker leads the controller: add registered brokers to the controller group as
        learners, start moves off decommissioning brokers, and retire them once they hold nothing."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), DUTY_INTERVAL_S)
            if not self.service.runtime.is_leader(CONTROLLER_GROUP):
                continue
            try:
                await self._duty_step()
            except (MembershipError, ConsensusError, TimeoutError, ValueError) as exc:
                log.info("event=membership_duty_retry reason=%s", exc)

    async def _duty_step(self) -> None:
        runtime = self.service.runtime
        conf = runtime.conf_state(CONTROLLER_GROUP)
        members = set(conf.voters) | set(conf.learners)
        for node, reg in sorted(self.service.state.brokers.items()):
            if reg.state != BROKER_DECOMMISSIONED and node not in members:
                log.info("event=controller_learner_added node=%d", node)
                await asyncio.wait_for(runtime.add_learner(CONTROLLER_GROUP, node), PROPOSE_TIMEOUT_S)
                return
            if reg.state == BROKER_DECOMMISSIONED and node in conf.learners:
                await asyncio.wait_for(runtime.remove_member(CONTROLLER_GROUP, node), PROPOSE_TIMEOUT_S)
                return
        for node, reg in sorted(self.service.state.brokers.items()):
            if reg.state == BROKER_DECOMMISSIONING:
                await self._drain(node)

    async def _drain(self, node: int) -> None:
        holding = self._partitions_on(node)
        if not holding:
            log.info("event=broker_decommissioned node=%d", node)
            await self.propose(encode(UnregisterBroker(node)))
            return
        load = self._load()
        for meta, p in holding:
            if p in meta.targets:
                continue  # a move is already under way; a target still naming node is the admin's choice
            current = meta.replicas[p]
            replacement = self._replacement(current, node, load)
            if replacement is None:
                log.warning("event=decommission_stuck node=%d topic=%s partition=%d", node, meta.name, p)
                continue
            target = [replacement if b == node else b for b in current]
            load[replacement] = load.get(replacement, 0) + 1
            log.info(
                "event=decommission_move node=%d topic=%s partition=%d target=%s", node, meta.name, p, target
            )
            await self.propose(encode(Reassign(meta.name, p, tuple(target))))

    def _load(self) -> dict[int, int]:
        load: dict[int, int] = {}
        for t in self.service.state.topics.values():
            for p, rs in enumerate(t.replicas):
                for b in set(rs) | set(t.targets.get(p, ())):
                    load[b] = load.get(b, 0) + 1
        return load

    def _replacement(self, current: list[int], leaving: int, load: dict[int, int]) -> int | None:
        state = self.service.state
        candidates = [b for b in state.placeable_brokers() if b not in current]
        if not candidates:
            return None
        racks = state.racks()
        kept_racks = {racks.get(b) for b in current if b != leaving}
        # Prefer a rack the partition does not use yet, then the least loaded broker, then the lowest id.
        return min(candidates, key=lambda b: (racks.get(b) in kept_racks, load.get(b, 0), b))

    # ------------------------------------------------------------------ admin HTTP routes

    def install_routes(self, metrics: Any) -> None:
        metrics.admin.route("GET", "/admin/brokers", self._get_brokers, replace=True)
        metrics.admin.route(
            "POST", "/admin/brokers/{id}/decommission", self._post_decommission, timeout_s=30.0, replace=True
        )

    def describe(self) -> dict[str, Any]:
        state = self.service.state
        load = self._load()
        brokers = [
            {**reg.as_json(), "replicas": load.get(node, 0)} for node, reg in sorted(state.brokers.items())
        ]
        return {"controller": self.service.controller_id(), "brokers": brokers}

    async def _get_brokers(self, _request: AdminRequest) -> AdminResponse:
        return AdminResponse(self.describe())

    async def _post_decommission(self, request: AdminRequest) -> AdminResponse:
        node = request.int_param("id")
        try:
            if self.service.runtime.is_leader(CONTROLLER_GROUP):
                await self.decommission(node)
            else:
                await self._forward_decommission(node)
        except MembershipError as exc:
            raise AdminError(exc.status, exc.message) from None
        except membership_rpc.ControllerUnreachable as exc:
            raise AdminError(503, f"controller unreachable: {exc}") from None
        await self._wait_applied(node)
        reg = self.service.state.brokers.get(node)
        state = reg.state if reg is not None else BROKER_DECOMMISSIONING
        left = len(self.service.state.replicas_on(node))
        status = 200 if state == BROKER_DECOMMISSIONED else 202
        return AdminResponse({"id": node, "state": state, "replicas_left": left}, status=status)

    async def _wait_applied(self, node: int) -> None:
        """Until this broker has applied the decommission (bounded): the answer then shows it."""
        deadline = time.monotonic() + PROPOSE_TIMEOUT_S
        while time.monotonic() < deadline:
            reg = self.service.state.brokers.get(node)
            if reg is not None and reg.state != BROKER_ACTIVE:
                return
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), 0.2)

    async def _forward_decommission(self, node: int) -> None:
        self.decommission_check(node)  # answers 404/409 here without a round trip when already known
        host, port = self.service.controller_address()
        body = unreg_req.UnregisterBrokerRequest(broker_id=BrokerId(node))
        proof = broker_proof.client_id(
            self.service.node_id, self.incarnation, broker_proof.unregister_message(node)
        )
        answer = await membership_rpc.call(host, port, 64, 0, body, client_id=proof)
        code = int(answer.error_code)
        if code == BROKER_ID_NOT_REGISTERED:
            raise MembershipError(404, answer.error_message or f"broker {node} is not registered")
        if code == INVALID_REQUEST:
            raise MembershipError(409, answer.error_message or f"broker {node} cannot be decommissioned")
        if code != 0:
            raise MembershipError(503, answer.error_message or f"controller answered error {code}")
