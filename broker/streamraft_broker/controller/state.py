"""Controller state machine: the metadata log's commands and the state every broker derives from it.

Commands are JSON objects (one per Raft entry). Applying is deterministic and idempotent per command, so
every broker replaying the controller log reaches the same topics and replica sets.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import Any

from streamraft_broker.controller.producer_ids import ALLOCATE_PRODUCER_IDS, ProducerIdState

CONTROLLER_GROUP = 1
_GROUP_BITS = 48


def group_id_for(topic_id: uuid.UUID, partition: int) -> int:
    """Stable Raft group id of a partition; never the controller's id."""
    digest = hashlib.sha256(topic_id.bytes + partition.to_bytes(4, "big")).digest()
    return 2 + int.from_bytes(digest[:8], "big") % ((1 << _GROUP_BITS) - 2)


def place_replicas(brokers: list[int], partitions: int, rf: int, start: int) -> list[list[int]]:
    """Round-robin placement: partition p's replicas start at broker (start + p), so replicas and first
    replicas (preferred leaders) spread evenly over the brokers."""
    assert 1 <= rf <= len(brokers), (rf, brokers)
    ordered = sorted(brokers)
    n = len(ordered)
    return [[ordered[(start + p + r) % n] for r in range(rf)] for p in range(partitions)]


@dataclass
class TopicMeta:
    name: str
    topic_id: uuid.UUID
    replicas: list[list[int]]
    configs: dict[str, str]

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


@dataclass(frozen=True)
class Change:
    """What one applied command changed: kind is created, deleted or extended (new partitions from
    ``first_new``); None-returning applies changed nothing."""

    kind: str
    topic: TopicMeta
    first_new: int = 0


class ControllerState:
    def __init__(self) -> None:
        self.topics: dict[str, TopicMeta] = {}
        self.producer_ids = ProducerIdState()

    def apply(self, data: bytes) -> Change | None:
        cmd: Any = json.loads(data)
        op = cmd.get("op") if isinstance(cmd, dict) else None
        if op == "create_topic":
            name = str(cmd["name"])
            if name in self.topics:
                return None  # a second create of the same name lost the race: the first one stands
            meta = TopicMeta(
                name,
                uuid.UUID(cmd["id"]),
                [[int(b) for b in rs] for rs in cmd["replicas"]],
                {str(k): str(v) for k, v in cmd["configs"].items()},
            )
            self.topics[name] = meta
            return Change("created", meta)
        if op == "delete_topic":
            gone = self.topics.pop(str(cmd["name"]), None)
            return None if gone is None else Change("deleted", gone)
        if op == "add_partitions":
            found = self.topics.get(str(cmd["name"]))
            if found is None:
                return None
            first_new = len(found.replicas)
            found.replicas.extend([int(b) for b in rs] for rs in cmd["replicas"])
            return Change("extended", found, first_new)
        if op == ALLOCATE_PRODUCER_IDS:
            self.producer_ids.apply(cmd)
            return None
        raise ValueError(f"unknown controller command {data[:100]!r}")
