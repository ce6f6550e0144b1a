"""Producer-id blocks in the controller log, as KRaft's AllocateProducerIds does: the command "next block
for broker N" is applied in log order on every broker, so blocks never overlap, and replaying the log after
a restart continues after the last block ever granted (a broker's unused rest of a block is skipped)."""

from __future__ import annotations

from dataclasses import dataclass, field

ALLOCATE_PRODUCER_IDS = "allocate_producer_ids"
MAX_BLOCK_SIZE = 1_000_000
MAX_PRODUCER_ID = (1 << 63) - 1


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

    def grant(self, broker: int, request_id: str, size: int) -> ProducerIdBlock:
        """Applies an ``AllocateProducerIds`` command (``controller.commands``): the next block."""
        if not 1 <= size <= MAX_BLOCK_SIZE:
            raise ValueError(f"producer-id block size {size} not in 1..{MAX_BLOCK_SIZE}")
        if self.next_id + size > MAX_PRODUCER_ID:
            raise ValueError("producer ids exhausted")
        block = ProducerIdBlock(broker, request_id, self.next_id, size)
        self.next_id += size
        self.last_grant[broker] = block
        return block
