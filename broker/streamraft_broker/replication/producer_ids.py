"""Producer ids that are unique across the cluster without coordination: each broker allocates from its
own range (node id << 44), so two producers initialised on different brokers never share an id — a shared
id would make one producer's batches look like duplicates of the other's on every replica."""

from __future__ import annotations

from pathlib import Path

from streamraft_broker.producer.ids import ProducerIdAllocator

RANGE_BITS = 44
MAX_NODE_ID = (1 << (63 - RANGE_BITS)) - 1


def node_unique_allocator(path: Path, node_id: int) -> ProducerIdAllocator:
    if not 1 <= node_id <= MAX_NODE_ID:
        raise ValueError(f"node id {node_id} outside 1..{MAX_NODE_ID} (producer-id ranges)")
    alloc = ProducerIdAllocator(path)
    floor = node_id << RANGE_BITS
    # Before any id is handed out: move the (persisted-on-first-use) block start into this node's range.
    if alloc._block_end < floor:
        alloc._next = alloc._block_end = floor
    return alloc
