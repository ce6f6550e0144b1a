"""Producer-id blocks in the controller log, as KRaft's AllocateProducerIds does: the command "next block
for broker N" is applied in log order on every broker, so blocks never overlap, and replaying the log after
a restart continues after the last block ever granted (a broker's unused rest of a block is skipped)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

ALLOCATE_PRODUCER_IDS = "allocate_producer_ids"
MAX_BLOCK_SIZE = 1_000_000
MAX_PRODUCER_ID = (1 << 63) - 1


def allocate_producer_ids_command(broker: int, request_id: str, size: int) -> bytes:
    """``request_id`` lets the proposer tell its own grant from an earlier one to the same broker."""
    assert 1 <= size <= MAX_BLOCK_SIZE, size
    return json.dumps(
        {"op": ALLOCATE_PRODUCER_IDS, "broker": broker, "request": request_id, "size": size}, sort_keys=True
    ).encode()


@dataclass(frozen=True)
class ProducerIdBlock:
    broker: int
    request_id: str
    start: int
    size: int


@dataclass
class ProducerIdState:
    next_id: int = 0
    last_grant: dict[int, ProducerIdBlock] = field(default_factory=dict)
    """Per broker, the latest block granted to it."""

    def apply(self, cmd: Any) -> ProducerIdBlock:
        broker, size = int(cmd["broker"]), int(cmd["size"])
        if not 1 <= size <= MAX_BLOCK_SIZE:
            raise ValueError(f"producer-id block size {size} not in 1..{MAX_BLOCK_SIZE}")
        if self.next_id + size > MAX_PRODUCER_ID:
            raise ValueError("producer ids exhausted")
        block = ProducerIdBlock(broker, str(cmd["request"]), self.next_id, size)
        self.next_id += size
        self.last_grant[broker] = block
        return block
