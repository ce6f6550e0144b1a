"""Controller state machine: the metadata log's commands and the state every broker derives from it.

Commands are the typed, versioned dataclasses of ``controller.commands`` (one JSON entry per Raft entry,
read by ``commands.decode``; ``apply`` dispatches on their type). Applying is deterministic and idempotent
per command, so every broker replaying the controller log reaches the same topics, replica sets and broker
registrations.

Membership commands (see ``streamraft_broker.replication.membership``): ``register_broker`` (addresses,
rack, incarnation), ``decommission_broker`` (state -> decommissioning), ``unregister_broker`` (state ->
decommissioned: gone from Metadata). ACLs (``security.acl``): ``create_acls`` / ``delete_acls`` name
the exact bindings; each is validated when applied. Replica moves (``replication.reassign``):
``reassign`` records a partition's target replicas (or cancels), ``reassigned`` records the final
replicas once the partition's leader has moved the Raft group there. Client quotas
(``streamraft_broker.quotas.entities``): ``alter_client_quotas`` sets or removes quota keys of
user/client-id/ip entities, validated as it applies. SCRAM credentials (``security.credentials``):
``upsert_scram_credential`` (user, mechanism, salt, StoredKey, ServerKey, iterations) and
``delete_scram_credential``, so every broker authenticates every user.

Snapshots: ``ControllerState.to_snapshot()`` is the whole state as versioned JSON, so the controller group's
Raft log can be compacted; ``changes_between`` is what a broker must do when a snapshot replaces its state.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from streamraft_broker.controller.commands import (
    AddPartitions,
    AllocateProducerIds,
    AlterBrokerConfigs,
    AlterClientQuotas,
    AlterConfigs,
    Command,
    CreateAcls,
    CreateTopic,
    DecommissionBroker,
    DeleteAcls,
    DeleteRecords,
    DeleteScramCredential,
    DeleteTopic,
    InvalidCommand,
    Reassign,
    Reassigned,
    RegisterBroker,
    UnregisterBroker,
    UpsertScramCredential,
    decode,
)
from streamraft_broker.controller.producer_ids import ProducerIdBlock, ProducerIdState
from streamraft_broker.controller.validation import validate_command
from streamraft_broker.quotas.entities import ClientQuotas
from streamraft_broker.security.acl import AclSet
from streamraft_broker.security.credentials import ScramCredentials
from streamraft_broker.topics.broker_configs import entities_from_json, entities_to_json

CONTROLLER_GROUP = 1
SNAPSHOT_VERSION = 1
"""Version of ``ControllerState.to_snapshot()``'s format; a broker refuses snapshots of any other."""
_GROUP_BITS = 48


def group_id_for(topic_id: uuid.UUID, partition: int) -> int:
    """Stable Raft group id of a partition; never the controller's id."""
    digest = hashlib.sha256(topic_id.bytes + partition.to_bytes(4, "big")).digest()
    return 2 + int.from_bytes(digest[:8], "big") % ((1 << _GROUP_BITS) - 2)


def rack_alternating(brokers: list[int], racks: dict[int, str | None]) -> list[int]:
    """Brokers ordered so that neighbours sit in different racks where possible (Kafka's rack-aware
    order): racks in name order, taking one broker from each in turn. Without racks: sorted ids."""
    by_rack: dict[str, list[int]] = {}
    for b in sorted(brokers):
        by_rack.setdefault(racks.get(b) or "", []).append(b)
    if len(by_rack) <= 1:
        return sorted(brokers)
    queues = [by_rack[r] for r in sorted(by_rack)]
    out: list[int] = []
    while len(out) < len(brokers):
        for q in queues:
            if q:
                out.append(q.pop(0))
    return out


def place_replicas(
    brokers: list[int], partitions: int, rf: int, start: int, racks: dict[int, str | None] | None = None
) -> list[list[int]]:
    """Round-robin placement over the rack-alternating broker order: partition p's replicas start at
    broker (start + p), so replicas and first replicas (preferred leaders) spread evenly over the brokers,
    and consecutive replicas of a partition land in different racks when racks are set."""
    assert 1 <= rf <= len(brokers), (rf, brokers)
    ordered = rack_alternating(brokers, racks or {})
    n = len(ordered)
    return [[ordered[(start + p + r) % n] for r in range(rf)] for p in range(partitions)]


BROKER_ACTIVE = "active"
BROKER_DECOMMISSIONING = "decommissioning"
BROKER_DECOMMISSIONED = "decommissioned"


@dataclass
class BrokerReg:
    """A broker's registration in the controller log."""

    node_id: int
    kafka_host: str
    kafka_port: int
    raft_address: str
    rack: str | None
    incarnation: str
    state: str = BROKER_ACTIVE
    previous_incarnations: int = 0
    """How many times this id registered with another incarnation id (a restart with an empty disk)."""
    listeners: dict[str, str] = field(default_factory=dict)
    """Advertised HOST:PORT of each of the broker's Kafka listeners, by listener name (clients of a
    listener are told every broker's endpoint on that listener)."""

    def same_endpoint(self, other: BrokerReg) -> bool:
        return (
            self.kafka_host,
            self.kafka_port,
            self.raft_address,
            self.rack,
            self.incarnation,
            self.listeners,
        ) == (
            other.kafka_host,
            other.kafka_port,
            other.raft_address,
            other.rack,
            other.incarnation,
            other.listeners,
        )

    def command(self) -> RegisterBroker:
        """The controller command registering this broker's endpoints."""
        return RegisterBroker(
            self.node_id,
            self.kafka_host,
            self.kafka_port,
            self.raft_address,
            self.rack,
            self.incarnation,
            dict(self.listeners),
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.node_id,
            "kafka": f"{self.kafka_host}:{self.kafka_port}",
            "raft": self.raft_address,
            "rack": self.rack,
            "incarnation": self.incarnation,
            "state": self.state,
        }


@dataclass
class TopicMeta:
    name: str
    topic_id: uuid.UUID
    replicas: list[list[int]]
    configs: dict[str, str]
    origin: list[list[int]] = field(default_factory=list)
    """Each partition's replicas when it was created: its Raft group's bootstrap configuration, which a
    replica added later starts from so replaying the group's membership changes gives the true one."""
    targets: dict[int, list[int]] = field(default_factory=dict)
    """Partitions being moved -> their target replicas."""
    log_start: dict[int, int] = field(default_factory=dict)
    """Partition -> the log start DeleteRecords moved it to: every replica hides the records before it (and
    drops them, at the batch boundary at or before it, through a partition snapshot as retention does)."""

    def group(self, partition: int) -> int:
        return group_id_for(self.topic_id, partition)


@dataclass(frozen=True)
class Change:
    """What one applied command changed: kind is created, deleted or extended (new partitions from
    ``first_new``), broker (a registration or broker state changed), target (a move started or was
    cancelled) or reassigned (a move finished); None-returning applies changed nothing."""

    kind: str
    """Also records_deleted: DeleteRecords moved some partitions' log start (see TopicMeta.log_start);
    configs: the topic's config overrides changed; broker_configs: the dynamic broker configs changed."""
    topic: TopicMeta | None = None
    first_new: int = 0
    broker: BrokerReg | None = None
    partition: int = -1
    before: list[int] = field(default_factory=list)
    """For "reassigned": the replicas before the move."""


class ControllerState:
    def __init__(self) -> None:
        self.topics: dict[str, TopicMeta] = {}
        self.producer_ids = ProducerIdState()
        self.brokers: dict[int, BrokerReg] = {}
        self.scram = ScramCredentials()
        self.deleted_topics: set[str] = set()
        """Names deleted and not created again since. A broker whose copy of this state lags knows fewer
        topics than exist, so "absent from ``topics``" never means deleted; only this set does."""
        self.acls = AclSet()
        self.client_quotas = ClientQuotas()
        self.broker_configs: dict[str, dict[str, str]] = {}
        """Dynamic broker configs by entity ("" cluster-wide, else a broker id), as validated when set."""

    def to_snapshot(self) -> bytes:
        """Everything this state holds, as JSON. Topics and brokers keep their order (the order of the log
        that built them), so a restored state iterates exactly like the one that was saved."""
        doc: dict[str, Any] = {
            "version": SNAPSHOT_VERSION,
            "topics": [_topic_json(t) for t in self.topics.values()],
            "brokers": [_broker_json(b) for b in self.brokers.values()],
            "deleted_topics": sorted(self.deleted_topics),
            "acls": self.acls.to_json(),
            "scram_credentials": self.scram.to_json(),
            "producer_ids": {
                "next_id": self.producer_ids.next_id,
                "last_grant": [
                    {"broker": b.broker, "request": b.request_id, "start": b.start, "size": b.size}
                    for b in self.producer_ids.last_grant.values()
                ],
            },
            "client_quotas": self.client_quotas.to_json(),
        }
        if self.broker_configs:  # only when set: a snapshot from before they existed stays byte-identical
            doc["broker_configs"] = entities_to_json(self.broker_configs)
        return json.dumps(doc, sort_keys=True).encode()

    @classmethod
    def from_snapshot(cls, data: bytes) -> ControllerState:
        """The state ``to_snapshot`` saved. Raises ValueError naming what is wrong with ``data``."""
        try:
            doc: Any = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"controller snapshot is not valid JSON: {exc}") from None
        except RecursionError:
            raise ValueError("controller snapshot is not valid JSON: nested too deeply") from None
        if not isinstance(doc, dict) or "version" not in doc:
            raise ValueError("controller snapshot has no version field")
        if doc["version"] != SNAPSHOT_VERSION:
            raise ValueError(
                f"controller snapshot version {doc['version']!r} is not supported "
                f"(this broker reads version {SNAPSHOT_VERSION})"
            )
        state = cls()
        field_name = "topics"
        try:
            for t in doc["topics"]:
                meta = _topic_from_json(t)
                state.topics[meta.name] = meta
            field_name = "brokers"
            for b in doc["brokers"]:
                reg = _broker_from_json(b)
                state.brokers[reg.node_id] = reg
            field_name = "deleted_topics"
            state.deleted_topics = {str(n) for n in doc["deleted_topics"]}
            field_name = "acls"
            # Snapshots taken before ACLs existed have none.
            state.acls = AclSet.from_json(doc.get("acls", []))
            field_name = "scram_credentials"
            # Absent from snapshots written before SCRAM credentials existed.
            state.scram = ScramCredentials.from_json(doc.get("scram_credentials", {}))
            field_name = "producer_ids"
            pids = doc["producer_ids"]
            state.producer_ids.next_id = int(pids["next_id"])
            for g in pids["last_grant"]:
                block = ProducerIdBlock(int(g["broker"]), str(g["request"]), int(g["start"]), int(g["size"]))
                state.producer_ids.last_grant[block.broker] = block
            field_name = "client_quotas"
            # Absent from snapshots taken before client quotas existed: none were set then.
            state.client_quotas = ClientQuotas.from_json(doc.get("client_quotas", []))
            field_name = "broker_configs"
            # Absent from snapshots taken before dynamic broker configs existed: none were set then.
            state.broker_configs = entities_from_json(doc.get("broker_configs", {}))
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:  # int(Infinity)
            raise ValueError(f"controller snapshot field {field_name!r} is malformed: {exc!r}") from None
        return state

    def placeable_brokers(self) -> list[int]:
        """Registered brokers that may receive new replicas."""
        return sorted(n for n, b in self.brokers.items() if b.state == BROKER_ACTIVE)

    def racks(self) -> dict[int, str | None]:
        return {n: b.rack for n, b in self.brokers.items()}

    def replicas_on(self, node: int) -> list[tuple[str, int]]:
        """(topic, partition) whose current or target replicas include ``node``."""
        return [
            (t.name, p)
            for t in self.topics.values()
            for p, rs in enumerate(t.replicas)
            if node in rs or node in t.targets.get(p, ())
        ]

    def apply(self, data: bytes) -> Change | None:
        """Apply one committed controller-log entry. An entry that does not decode to a command
        (``controller.commands.decode``) or fails validation raises InvalidCommand (a ValueError) and
        leaves the state unchanged, the same on every broker: the caller logs and skips it."""
        try:
            command = decode(data)
            existing = self.topics.get(command.name) if isinstance(command, AddPartitions) else None
            validate_command(command, None if existing is None else len(existing.replicas))
        except ValueError as exc:  # InvalidCommand
            raise InvalidCommand(f"controller command rejected: {exc}"[:500]) from None
        return self.apply_command(command)

    def apply_command(self, command: Command) -> Change | None:
        """Apply one decoded and validated command (``apply`` does both first)."""
        match command:
            case CreateTopic(name, topic_id, replicas, configs):
                if name in self.topics:
                    return None  # a second create of the same name lost the race: the first one stands
                meta = TopicMeta(
                    name,
                    topic_id,
                    [list(rs) for rs in replicas],
                    dict(configs),
                    origin=[list(rs) for rs in replicas],
                )
                self.topics[name] = meta
                self.deleted_topics.discard(name)
                return Change("created", meta)
            case DeleteTopic(name):
                gone = self.topics.pop(name, None)
                if gone is None:
                    return None
                self.deleted_topics.add(gone.name)
                return Change("deleted", gone)
            case AddPartitions(name, replicas):
                found = self.topics.get(name)
                if found is None:
                    return None
                first_new = len(found.replicas)
                found.replicas.extend(list(rs) for rs in replicas)
                found.origin.extend(list(rs) for rs in replicas)
                return Change("extended", found, first_new)
            case DeleteRecords(name, topic_id, log_start):
                found = self.topics.get(name)
                if found is None or found.topic_id != topic_id:
                    return None  # the topic went (or was created again) since the request
                moved = False
                for p, offset in log_start.items():
                    if 0 <= p < len(found.replicas) and offset > found.log_start.get(p, 0):
                        found.log_start[p] = offset
                        moved = True
                return Change("records_deleted", found) if moved else None
            case AlterConfigs(name, topic_id, configs):
                found = self.topics.get(name)
                if found is None or found.topic_id != topic_id:
                    return None
                found.configs = dict(configs)
                return Change("configs", found)
            case AlterBrokerConfigs(entity, configs):
                if self.broker_configs.get(entity, {}) == configs:
                    return None
                if configs:
                    self.broker_configs[entity] = dict(configs)
                else:
                    self.broker_configs.pop(entity, None)
                return Change("broker_configs")
            case RegisterBroker():
                return self._register(command)
            case DecommissionBroker(node_id) | UnregisterBroker(node_id):
                old = self.brokers.get(node_id)
                if old is None:
                    return None
                old.state = (
                    BROKER_DECOMMISSIONING
                    if isinstance(command, DecommissionBroker)
                    else BROKER_DECOMMISSIONED
                )
                return Change("broker", broker=old)
            case Reassign(name, partition, target):
                moving = self._partition(name, partition)
                if moving is None:
                    return None
                if target is None:
                    if moving.targets.pop(partition, None) is None:
                        return None
                else:
                    moving.targets[partition] = list(target)
                return Change("target", moving, partition=partition)
            case Reassigned(name, partition, replicas):
                moving = self._partition(name, partition)
                if moving is None:
                    return None
                final = list(replicas)
                before = moving.replicas[partition]
                moving.replicas[partition] = final
                if sorted(moving.targets.get(partition, [])) == sorted(final):
                    del moving.targets[partition]
                return Change("reassigned", moving, partition=partition, before=before)
            case AllocateProducerIds(broker, request_id, size):
                self.producer_ids.grant(broker, request_id, size)
                return None
            case CreateAcls(bindings):
                self.acls.add(bindings)  # AclError (a ValueError) past MAX_ACLS: nothing changes
                return None
            case DeleteAcls(bindings):
                self.acls.remove(bindings)
                return None
            case AlterClientQuotas(alterations):
                self.client_quotas.apply(alterations)  # all or nothing: an invalid command raises ValueError
                return None
            case UpsertScramCredential() | DeleteScramCredential():
                self.scram.apply(command)
                return None

    def _register(self, cmd: RegisterBroker) -> Change | None:
        reg = BrokerReg(
            cmd.node_id,
            cmd.kafka_host,
            cmd.kafka_port,
            cmd.raft_address,
            cmd.rack,
            cmd.incarnation,
            listeners=dict(cmd.listeners),
        )
        old = self.brokers.get(cmd.node_id)
        if old is not None:
            if old.same_endpoint(reg):
                return None
            # A decommissioned broker that registers again comes back as a new, empty broker.
            reg.state = BROKER_ACTIVE if old.state == BROKER_DECOMMISSIONED else old.state
            reg.previous_incarnations = old.previous_incarnations + (old.incarnation != reg.incarnation)
        self.brokers[cmd.node_id] = reg
        return Change("broker", broker=reg)

    def _partition(self, name: str, index: int) -> TopicMeta | None:
        """The topic when it has partition ``index``."""
        meta = self.topics.get(name)
        if meta is None or not 0 <= index < len(meta.replicas):
            return None
        return meta


def _topic_json(t: TopicMeta) -> dict[str, Any]:
    return {
        "name": t.name,
        "id": str(t.topic_id),
        "replicas": t.replicas,
        "configs": t.configs,
        "origin": t.origin,
        # JSON object keys are strings; the partition index is restored as an int.
        "targets": {str(p): rs for p, rs in t.targets.items()},
        "log_start": {str(p): o for p, o in t.log_start.items()},
    }


def _topic_from_json(t: Any) -> TopicMeta:
    meta = TopicMeta(
        str(t["name"]),
        uuid.UUID(t["id"]),
        [[int(b) for b in rs] for rs in t["replicas"]],
        {str(k): str(v) for k, v in t["configs"].items()},
        origin=[[int(b) for b in rs] for rs in t["origin"]],
        targets={int(p): [int(b) for b in rs] for p, rs in t["targets"].items()},
        # Absent from snapshots written before DeleteRecords existed.
        log_start={int(p): int(o) for p, o in t.get("log_start", {}).items()},
    )
    # Hosting a partition reads its origin; a target names an existing partition.
    if len(meta.origin) != len(meta.replicas) or any(not 0 <= p < len(meta.replicas) for p in meta.targets):
        raise ValueError(f"topic {meta.name!r}: origin or targets do not match its partitions")
    return meta


def _broker_json(b: BrokerReg) -> dict[str, Any]:
    return {
        "id": b.node_id,
        "kafka_host": b.kafka_host,
        "kafka_port": b.kafka_port,
        "raft": b.raft_address,
        "rack": b.rack,
        "incarnation": b.incarnation,
        "state": b.state,
        "previous_incarnations": b.previous_incarnations,
        "listeners": b.listeners,
    }


def _broker_from_json(b: Any) -> BrokerReg:
    state = str(b["state"])
    if state not in (BROKER_ACTIVE, BROKER_DECOMMISSIONING, BROKER_DECOMMISSIONED):
        raise ValueError(f"unknown broker state {state!r}")
    return BrokerReg(
        int(b["id"]),
        str(b["kafka_host"]),
        int(b["kafka_port"]),
        str(b["raft"]),
        None if b["rack"] is None else str(b["rack"]),
        str(b["incarnation"]),
        state=state,
        previous_incarnations=int(b["previous_incarnations"]),
        listeners={str(k): str(v) for k, v in b.get("listeners", {}).items()},
    )


def changes_between(old: ControllerState, new: ControllerState) -> list[Change]:
    """What a broker holding ``old`` must act on when a snapshot replaces it with ``new``, as the Changes
    applying the commands in between would have reported: registrations first (the transport must know a
    broker's address before a group needs it), then deleted, created and extended topics, then partitions
    whose replicas or target moved. A topic whose id differs is deleted and created again. In log order of
    ``new``, so every broker acting on the same pair does the same."""
    changes = [
        Change("broker", broker=reg) for node, reg in new.brokers.items() if old.brokers.get(node) != reg
    ]
    if old.broker_configs != new.broker_configs:
        changes.append(Change("broker_configs"))
    for name, meta in old.topics.items():
        now = new.topics.get(name)
        if now is None or now.topic_id != meta.topic_id:
            changes.append(Change("deleted", meta))
    moves: list[Change] = []
    for name, meta in new.topics.items():
        was = old.topics.get(name)
        if was is None or was.topic_id != meta.topic_id:
            changes.append(Change("created", meta))
            continue
        if len(meta.replicas) > len(was.replicas):
            changes.append(Change("extended", meta, len(was.replicas)))
        if meta.log_start != was.log_start:
            changes.append(Change("records_deleted", meta))
        if meta.configs != was.configs:
            changes.append(Change("configs", meta))
        for p, (before, now_replicas) in enumerate(zip(was.replicas, meta.replicas, strict=False)):
            if now_replicas != before:
                moves.append(Change("reassigned", meta, partition=p, before=before))
            elif meta.targets.get(p) != was.targets.get(p):
                moves.append(Change("target", meta, partition=p))
    return changes + moves
