"""Byte-level checks against kafka-python's own RecordBatch v2 builder/reader, used offline as an oracle
(a record-batch implementation nobody here wrote)."""

from __future__ import annotations

import struct

import pytest
from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder
from streamraft_broker.records import (
    BATCH_HEADER_SIZE,
    Compression,
    SimpleRecord,
    TimestampType,
    build_batch,
    decode_records,
    parse_header,
    rewrite_for_append,
    validate_batch,
)

RecordSpec = tuple[int, bytes | None, bytes | None, list[tuple[str, bytes]]]

SPECS: list[RecordSpec] = [
    (1_700_000_000_000, b"key-0", b"value-0" * 40, []),
    (1_700_000_000_005, None, b"value-1" * 40, [("h1", b"x"), ("h2", b"")]),
    (1_700_000_000_003, b"key-2", None, []),
    (1_700_000_000_009, b"", b"value-3" * 40, [("trace", b"abc" * 10)]),
]


def _oracle_batch(compression: int, *, producer: tuple[int, int, int] = (-1, -1, -1)) -> bytes:
    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=compression,
        is_transactional=False,
        producer_id=producer[0],
        producer_epoch=producer[1],
        base_sequence=producer[2],
        batch_size=1 << 20,
    )
    for offset, (ts, key, value, headers) in enumerate(SPECS):
        assert builder.append(offset, timestamp=ts, key=key, value=value, headers=headers) is not None
    return bytes(builder.build())


def _our_records() -> list[SimpleRecord]:
    base_ts = SPECS[0][0]
    return [
        SimpleRecord(key, value, tuple(headers), i, ts - base_ts)
        for i, (ts, key, value, headers) in enumerate(SPECS)
    ]


@pytest.mark.parametrize("codec", list(Compression))
def test_oracle_batches_parse_validate_and_decode(codec: Compression) -> None:
    raw = _oracle_batch(int(codec), producer=(4242, 3, 17))
    oracle = DefaultRecordBatch(bytearray(raw))
    header = validate_batch(raw)
    assert header.size == len(raw) == oracle.size_in_bytes
    assert header.compression is codec
    assert header.crc == oracle.crc
    assert (header.producer_id, header.producer_epoch, header.base_sequence) == (4242, 3, 17)
    assert header.last_sequence == oracle.last_sequence == 20
    assert header.records_count == len(SPECS) == oracle.records_count
    assert header.last_offset_delta == oracle.last_offset_delta == len(SPECS) - 1
    assert header.base_timestamp == oracle.first_timestamp
    assert header.max_timestamp == oracle.max_timestamp == max(s[0] for s in SPECS)
    decoded = decode_records(raw)
    assert decoded == _our_records()


def test_uncompressed_build_is_byte_identical_to_the_oracle() -> None:
    ours = build_batch(
        _our_records(),
        timestamp_ms=SPECS[0][0],
        producer_id=4242,
        producer_epoch=3,
        base_sequence=17,
        partition_leader_epoch=0,  # kafka-python leaves the broker-owned epoch at 0
    )
    assert ours == _oracle_batch(0, producer=(4242, 3, 17))


@pytest.mark.parametrize("codec", list(Compression))
def test_oracle_reads_our_batches(codec: Compression) -> None:
    ours = build_batch(_our_records(), timestamp_ms=SPECS[0][0], compression=codec)
    oracle = DefaultRecordBatch(bytearray(ours))
    assert oracle.validate_crc()
    assert oracle.compression_type == int(codec)
    got = [(r.offset, r.timestamp, r.key, r.value, list(r.headers)) for r in oracle]
    assert got == [(i, ts, k, v, h) for i, (ts, k, v, h) in enumerate(SPECS)]


def test_rewrite_for_append_keeps_crc_valid_for_create_time() -> None:
    raw = bytearray(_oracle_batch(1))
    covered_before = bytes(raw[21:])
    rewrite_for_append(raw, 1_000_000_007, leader_epoch=9, log_append_time=None)
    assert bytes(raw[21:]) == covered_before  # baseOffset/epoch are outside the CRC: nothing recomputed
    oracle = DefaultRecordBatch(raw)
    assert oracle.validate_crc()
    assert oracle.base_offset == 1_000_000_007
    assert oracle.leader_epoch == 9
    assert [r.offset for r in oracle] == [1_000_000_007 + i for i in range(len(SPECS))]


def test_rewrite_for_log_append_time_sets_type_and_max_timestamp() -> None:
    raw = bytearray(_oracle_batch(0))
    rewrite_for_append(raw, 50, leader_epoch=1, log_append_time=1_800_000_000_000)
    header = validate_batch(raw)  # CRC recomputed
    assert header.timestamp_type is TimestampType.LOG_APPEND_TIME
    assert header.max_timestamp == 1_800_000_000_000
    assert header.base_timestamp == SPECS[0][0]
    oracle = DefaultRecordBatch(raw)
    assert oracle.validate_crc()
    assert {r.timestamp for r in oracle} == {1_800_000_000_000}


def test_rewrite_for_create_time_clears_a_client_log_append_time_bit() -> None:
    raw = bytearray(build_batch(_our_records(), timestamp_ms=5, timestamp_type=TimestampType.LOG_APPEND_TIME))
    rewrite_for_append(raw, 0, leader_epoch=0, log_append_time=None)
    header = validate_batch(raw)
    assert header.timestamp_type is TimestampType.CREATE_TIME


def test_header_offsets_match_the_kafka_layout() -> None:
    raw = bytearray(_oracle_batch(0, producer=(77, 5, 9)))
    struct.pack_into(">q", raw, 0, 123)
    struct.pack_into(">i", raw, 12, 456)
    header = parse_header(raw)
    assert (header.base_offset, header.partition_leader_epoch, header.magic) == (123, 456, 2)
    assert header.batch_length == len(raw) - 12
    assert (header.producer_id, header.producer_epoch, header.base_sequence) == (77, 5, 9)
    assert BATCH_HEADER_SIZE == 61


@pytest.mark.parametrize("codec", [Compression.NONE, Compression.GZIP, Compression.LZ4, Compression.ZSTD])
def test_aiokafka_builder_batches_validate_and_decode(codec: Compression) -> None:
    from aiokafka.record.default_records import DefaultRecordBatchBuilder as AioBuilder  # noqa: PLC0415

    builder = AioBuilder(2, int(codec), 0, 99, 1, 0, 1 << 20)
    for offset, (ts, key, value, headers) in enumerate(SPECS):
        assert builder.append(offset, ts, key, value, headers) is not None
    raw = bytes(builder.build())
    header = validate_batch(raw)
    assert header.compression is codec
    assert (header.producer_id, header.producer_epoch, header.records_count) == (99, 1, len(SPECS))
    assert decode_records(raw) == _our_records()
