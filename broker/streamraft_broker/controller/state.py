"""Controller state machine: the metadata log's commands and the state every broker derives from it.

Commands are JSON objects (one per Raft entry). Applying is deterministic and idempotent per command, so
every broker replaying the controller log reaches the same topics, replica sets and broker registrations.

Membership commands (see ``streamraft_broker.replication.membership``): ``register_broker`` (addresses,
rack, incarnation), ``decommission_broker`` (state -> decommissioning), ``unregister_broker`` (state ->
decommissioned: gone from Metadata). Replica moves (``replication.reassign``): ``reassign`` records a
partition's target replicas (or cancels), ``reassigned`` records the final replicas once the partition's
leader has moved the Raft group there.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from streamraft_broker.controller.producer_ids import ALLOCATE_PRODUCER_IDS, ProducerIdState

CONTROLLER_GROUP = 1
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

    def same_endpoint(self, other: BrokerReg) -> bool:
        return (self.kafka_host, self.kafka_port, self.raft_address, self.rack, self.incarnation) == (
            other.kafka_host,
            other.kafka_port,
            other.raft_address,
            other.rack,
            other.incarnation,
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

    def group(self, partition: int) -> int:
        return group_id_for(self.topic_id, partition)


def create_topic_command(
    name: str, topic_id: uuid.UUID, replicas: list[list[int]], configs: dict[str, str]
) -> bytes:
    return json.dumps(
        {"op": "create_topic", "name": name, "id": str(topic_id), "replicas": replicas, "configs": configs},
        sort_keys=True,
    ).encode()


def delete_topic_command(name: str) -> bytes:
    return json.dumps({"op": "delete_topic", "name": name}, sort_keys=True).encode()


def add_partitions_command(name: str, replicas: list[list[int]]) -> bytes:
    return json.dumps({"op": "add_partitions", "name": name, "replicas": replicas}, sort_keys=True).encode()


def register_broker_command(reg: BrokerReg) -> bytes:
    return json.dumps(
        {
            "op": "register_broker",
            "id": reg.node_id,
            "kafka_host": reg.kafka_host,
            "kafka_port": reg.kafka_port,
            "raft": reg.raft_address,
            "rack": reg.rack,
            "incarnation": reg.incarnation,
        },
        sort_keys=True,
    ).encode()


def broker_state_command(node_id: int, state: str) -> bytes:
    assert state in (BROKER_DECOMMISSIONING, BROKER_DECOMMISSIONED), state
    op = "decommission_broker" if state == BROKER_DECOMMISSIONING else "unregister_broker"
    return json.dumps({"op": op, "id": node_id}, sort_keys=True).encode()


def reassign_command(name: str, partition: int, target: list[int] | None) -> bytes:
    """Start (or with ``target`` None cancel) moving a partition to ``target``."""
    return json.dumps(
        {"op": "reassign", "name": name, "partition": partition, "target": target}, sort_keys=True
    ).encode()


def reassigned_command(name: str, partition: int, replicas: list[int]) -> bytes:
    return json.dumps(
        {"op": "reassigned", "name": name, "partition": partition, "replicas": replicas}, sort_keys=True
    ).encode()


@dataclass(frozen=True)
class Change:
    """What one applied command changed: kind is created, deleted or extended (new partitions from
    ``first_new``), broker (a registration or broker state changed), target (a move started or was
    cancelled) or reassigned (a move finished); None-returning applies changed nothing."""

    kind: str
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
        self.deleted_topics: set[str] = set()
        """Names deleted and not created again since. A broker whose copy of this state lags knows fewer
        topics than exist, so "absent from ``topics``" never means deleted; only this set does."""

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
        cmd: Any = json.loads(data)
        op = cmd.get("op") if isinstance(cmd, dict) else None
        if op == "create_topic":
            name = str(cmd["name"])
            if name in self.topics:
                return None  # a second create of the same name lost the race: the first one stands
            replicas = [[int(b) for b in rs] for rs in cmd["replicas"]]
            meta = TopicMeta(
                name,
                uuid.UUID(cmd["id"]),
                replicas,
                {str(k): str(v) for k, v in cmd["configs"].items()},
                origin=[list(rs) for rs in replicas],
            )
            self.topics[name] = meta
            self.deleted_topics.discard(name)
            return Change("created", meta)
        if op == "delete_topic":
            gone = self.topics.pop(str(cmd["name"]), None)
            if gone is None:
                return None
            self.deleted_topics.add(gone.name)
            return Change("deleted", gone)
        if op == "add_partitions":
            found = self.topics.get(str(cmd["name"]))
            if found is None:
                return None
            first_new = len(found.replicas)
            added = [[int(b) for b in rs] for rs in cmd["replicas"]]
            found.replicas.extend(added)
            found.origin.extend(list(rs) for rs in added)
            return Change("extended", found, first_new)
        if op in ("register_broker", "decommission_broker", "unregister_broker"):
            return self._apply_broker(op, cmd)
        if op in ("reassign", "reassigned"):
            return self._apply_move(op, cmd)
        if op == ALLOCATE_PRODUCER_IDS:
            self.producer_ids.apply(cmd)
            return None
        raise ValueError(f"unknown controller command {data[:100]!r}")

    def _apply_broker(self, op: str, cmd: Any) -> Change | None:
        node = int(cmd["id"])
        old = self.brokers.get(node)
        if op == "register_broker":
            reg = BrokerReg(
                node,
                str(cmd["kafka_host"]),
                int(cmd["kafka_port"]),
                str(cmd["raft"]),
                None if cmd.get("rack") is None else str(cmd["rack"]),
                str(cmd["incarnation"]),
            )
            if old is not None:
                if old.same_endpoint(reg):
                    return None
                # A decommissioned broker that registers again comes back as a new, empty broker.
                reg.state = BROKER_ACTIVE if old.state == BROKER_DECOMMISSIONED else old.state
                reg.previous_incarnations = old.previous_incarnations + (old.incarnation != reg.incarnation)
            self.brokers[node] = reg
            return Change("broker", broker=reg)
        if old is None:
            return None
        old.state = BROKER_DECOMMISSIONING if op == "decommission_broker" else BROKER_DECOMMISSIONED
        return Change("broker", broker=old)

    def _apply_move(self, op: str, cmd: Any) -> Change | None:
        meta = self.topics.get(str(cmd["name"]))
        index = int(cmd["partition"])
        if meta is None or not 0 <= index < len(meta.replicas):
            return None
        if op == "reassign":
            target = cmd["target"]
            if target is None:
                if meta.targets.pop(index, None) is None:
                    return None
            else:
                meta.targets[index] = [int(b) for b in target]
            return Change("target", meta, partition=index)
        final = [int(b) for b in cmd["replicas"]]
        before = meta.replicas[index]
        meta.replicas[index] = final
        if sorted(meta.targets.get(index, [])) == sorted(final):
            del meta.targets[index]
        return Change("reassigned", meta, partition=index, before=before)
