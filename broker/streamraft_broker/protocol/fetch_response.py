"""Hand-encoded Fetch response (v4 to v18) whose record sections may be file slices sent by sendfile.

kio would need the record bytes in memory; here the framing is written as bytes and each partition's
records are left as opaque chunks, so the size prefix can count file bytes that are never read into Python.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from streamraft_broker.protocol.header import response_header, write_uvarint


class SizedChunk(Protocol):
    @property
    def size(self) -> int: ...


Chunk = bytes | SizedChunk


@dataclass(slots=True)
class FetchPartitionResult:
    partition: int
    error_code: int = 0
    high_watermark: int = -1
    last_stable_offset: int = -1
    log_start_offset: int = -1
    records: list[Chunk] = field(default_factory=list)
    aborted_transactions: list[tuple[int, int]] = field(default_factory=list)
    """(producer id, first offset) of aborted transactions in the fetched range (read_committed only)."""
    current_leader: tuple[int, int] | None = None
    """(leader id, leader epoch) beside NOT_LEADER_OR_FOLLOWER from v16 (KIP-951's CurrentLeader, tag 1)."""

    @property
    def records_size(self) -> int:
        return sum(len(c) if isinstance(c, bytes) else c.size for c in self.records)


@dataclass(frozen=True, slots=True)
class NodeEndpoint:
    """A broker a CurrentLeader hint names (the response's NodeEndpoints, tag 0, from v16)."""

    node_id: int
    host: str
    port: int
    rack: str | None


@dataclass(slots=True)
class FetchTopicResult:
    name: str
    partitions: list[FetchPartitionResult]
    topic_id: uuid.UUID | None = None
    """Written instead of the name from v13 (KIP-516)."""


_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_I64 = struct.Struct(">q")


def _string(value: str, flexible: bool) -> bytes:
    raw = value.encode("utf-8")
    return (write_uvarint(len(raw) + 1) if flexible else _I16.pack(len(raw))) + raw


def _array_len(n: int, flexible: bool) -> bytes:
    return write_uvarint(n + 1) if flexible else _I32.pack(n)


def encode_fetch_response(
    version: int,
    correlation_id: int,
    topics: Sequence[FetchTopicResult],
    *,
    throttle_ms: int = 0,
    error_code: int = 0,
    session_id: int = 0,
    node_endpoints: Sequence[NodeEndpoint] = (),
) -> list[Chunk]:
    """Return the whole frame (size prefix first) as a list of byte strings and record chunks."""
    # v14-v18 change only the request (follower fields) or add tagged fields: of those, only KIP-951's
    # CurrentLeader and NodeEndpoints concern consumers (DivergingEpoch and SnapshotId are for followers).
    assert 4 <= version <= 18, f"fetch response v{version} is not implemented"
    flexible = version >= 12
    parts: list[Chunk] = []
    head = bytearray(response_header(correlation_id, flexible=flexible))
    head += _I32.pack(throttle_ms)
    if version >= 7:
        head += _I16.pack(error_code) + _I32.pack(session_id)
    head += _array_len(len(topics), flexible)
    cur = head
    for topic in topics:
        if version >= 13:
            cur += (topic.topic_id or uuid.UUID(int=0)).bytes
        else:
            cur += _string(topic.name, flexible)
        cur += _array_len(len(topic.partitions), flexible)
        for p in topic.partitions:
            cur += _I32.pack(p.partition) + _I16.pack(p.error_code) + _I64.pack(p.high_watermark)
            cur += _I64.pack(p.last_stable_offset)
            if version >= 5:
                cur += _I64.pack(p.log_start_offset)
            cur += _array_len(len(p.aborted_transactions), flexible)
            for producer_id, first_offset in p.aborted_transactions:
                cur += _I64.pack(producer_id) + _I64.pack(first_offset)
                if flexible:
                    cur += b"\x00"  # aborted transaction tagged fields
            if version >= 11:
                cur += _I32.pack(-1)  # preferred read replica
            size = p.records_size
            cur += write_uvarint(size + 1) if flexible else _I32.pack(size)
            if p.records:
                parts.append(bytes(cur))
                parts.extend(p.records)
                cur = bytearray()
            if flexible and version >= 16 and p.current_leader is not None:
                leader = _I32.pack(p.current_leader[0]) + _I32.pack(p.current_leader[1]) + b"\x00"
                cur += write_uvarint(1) + write_uvarint(1) + write_uvarint(len(leader)) + leader
            elif flexible:
                cur += b"\x00"  # partition tagged fields
        if flexible:
            cur += b"\x00"  # topic tagged fields
    if flexible and version >= 16 and node_endpoints:
        body = bytearray(_array_len(len(node_endpoints), True))
        for node in node_endpoints:
            body += _I32.pack(node.node_id) + _string(node.host, True) + _I32.pack(node.port)
            body += b"\x00" if node.rack is None else _string(node.rack, True)
            body += b"\x00"  # endpoint tagged fields
        cur += write_uvarint(1) + write_uvarint(0) + write_uvarint(len(body)) + body
    elif flexible:
        cur += b"\x00"  # response tagged fields
    parts.append(bytes(cur))
    total = sum(len(c) if isinstance(c, bytes) else c.size for c in parts)
    parts.insert(0, _I32.pack(total))
    return parts


def set_throttle(parts: list[Chunk], version: int, throttle_ms: int) -> None:
    """Rewrites ``throttle_time_ms`` of a response ``encode_fetch_response`` built (it follows the header)."""
    head = parts[1]
    assert isinstance(head, bytes), "the first part after the size prefix holds the header"
    at = 4 + (1 if version >= 12 else 0)
    parts[1] = head[:at] + _I32.pack(throttle_ms) + head[at + 4 :]
