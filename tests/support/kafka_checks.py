"""Checks shared by the real-client tests: exactly-once per partition, order, raw batch attributes."""

from __future__ import annotations

import struct
from collections.abc import Iterable

from kio.schema.fetch.v12.request import FetchPartition, FetchRequest, FetchTopic
from streamraft_broker.protocol.codec import build

from tests.support.wire import WireClient

COMPRESSION_CODES = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}


Record = tuple[int, int, bytes]


def assert_exactly_once_in_order(produced: Iterable[Record], consumed: Iterable[Record]) -> None:
    """(partition, offset, value) records: each produced one consumed once, offsets rising per partition."""
    produced_list = sorted(produced)
    consumed_list = list(consumed)
    seen: dict[tuple[int, int], bytes] = {}
    last: dict[int, int] = {}
    for partition, offset, value in consumed_list:
        assert (partition, offset) not in seen, f"partition {partition} offset {offset} consumed twice"
        seen[(partition, offset)] = value
        assert offset > last.get(partition, -1), (
            f"partition {partition}: offset {offset} after {last[partition]}"
        )
        last[partition] = offset
    assert sorted((p, o, v) for (p, o), v in seen.items()) == produced_list


def raw_batch_attributes(client: WireClient, topic: str, partition: int, offset: int = 0) -> list[int]:
    """Attributes of every stored batch from offset, fetched over the wire without any client decoding."""
    part = build(
        FetchPartition,
        partition=partition,
        current_leader_epoch=-1,
        fetch_offset=offset,
        last_fetched_epoch=-1,
        log_start_offset=-1,
        partition_max_bytes=50 * 1024 * 1024,
    )
    req = build(
        FetchRequest,
        replica_id=-1,
        max_wait=0,
        min_bytes=0,
        max_bytes=50 * 1024 * 1024,
        isolation_level=0,
        session_id=0,
        session_epoch=-1,
        topics=(build(FetchTopic, topic=topic, partitions=(part,)),),
        forgotten_topics_data=(),
        rack_id="",
    )
    resp = client.request(1, 12, req)
    records = resp.responses[0].partitions[0].records or b""
    attrs = []
    pos = 0
    while pos + 61 <= len(records):
        (length,) = struct.unpack_from(">i", records, pos + 8)
        (attr,) = struct.unpack_from(">h", records, pos + 21)
        attrs.append(attr)
        pos += 12 + length
    return attrs
