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


class ControllerState:
    def __init__(self) -> None:
        self.topics: dict[str, TopicMeta] = {}

    def apply(self, data: bytes) -> TopicMeta | None:
        """Apply one command; returns a newly created topic (None if nothing new)."""
        cmd: Any = json.loads(data)
        if not isinstance(cmd, dict) or cmd.get("op") != "create_topic":
            raise ValueError(f"unknown controller command {data[:100]!r}")
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
        return meta
