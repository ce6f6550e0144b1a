"""Hypothesis round trips of records through build_batch/decode_records, the varint codec and the
kafka-python reader."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from kafka.record.default_records import DefaultRecordBatch
from streamraft_broker.records import (
    Compression,
    SimpleRecord,
    TimestampType,
    build_batch,
    decode_records,
    parse_header,
    rewrite_for_append,
    validate_batch,
)
from streamraft_broker.records.batch import assign_for_append
from streamraft_broker.records.varint import read_varint, read_varlong, write_varint, write_varlong

_maybe_bytes = st.one_of(st.none(), st.binary(max_size=64))
_record = st.builds(
    SimpleRecord,
    key=_maybe_bytes,
    value=_maybe_bytes,
    headers=st.lists(st.tuples(st.text(max_size=8), st.binary(max_size=16)), max_size=3).map(tuple),
    offset_delta=st.just(0),
    timestamp_delta=st.integers(min_value=-(10**6), max_value=10**9),
)


@settings(max_examples=120, deadline=None)
@given(
    records=st.lists(_record, min_size=1, max_size=20),
    codec=st.sampled_from(list(Compression)),
    base_ts=st.integers(min_value=0, max_value=2**41),
    producer=st.tuples(st.integers(-1, 2**40), st.integers(-1, 2**15 - 1), st.integers(-1, 2**31 - 1)),
)
def test_build_then_decode_round_trips(
    records: list[SimpleRecord], codec: Compression, base_ts: int, producer: tuple[int, int, int]
) -> None:
    raw = build_batch(
        records,
        timestamp_ms=base_ts,
        compression=codec,
        producer_id=producer[0],
        producer_epoch=producer[1],
        base_sequence=producer[2],
    )
    header = validate_batch(raw)
    assert header.records_count == len(records)
    assert header.max_timestamp == base_ts + max(r.timestamp_delta for r in records)
    expected = [SimpleRecord(r.key, r.value, r.headers, i, r.timestamp_delta) for i, r in enumerate(records)]
    assert decode_records(raw) == expected
    oracle = list(DefaultRecordBatch(bytearray(raw)))
    assert [(o.key, o.value, o.timestamp) for o in oracle] == [
        (r.key, r.value, base_ts + r.timestamp_delta) for r in records
    ]


@given(st.integers(min_value=-(2**31), max_value=2**31 - 1))
def test_varint_round_trip(value: int) -> None:
    out = bytearray()
    write_varint(value, out)
    assert read_varint(bytes(out), 0) == (value, len(out))


@given(st.integers(min_value=-(2**63), max_value=2**63 - 1))
def test_varlong_round_trip(value: int) -> None:
    out = bytearray()
    write_varlong(value, out)
    assert len(out) <= 10
    assert read_varlong(bytes(out), 0) == (value, len(out))


@settings(max_examples=100, deadline=None)
@given(
    count=st.integers(1, 5),
    client_lat=st.booleans(),
    base_offset=st.integers(0, 2**62),
    epoch=st.integers(-1, 2**31 - 1),
    append_time=st.one_of(st.none(), st.integers(0, 2**45)),
)
def test_assign_for_append_matches_rewrite_for_append(
    count: int, client_lat: bool, base_offset: int, epoch: int, append_time: int | None
) -> None:
    ts_type = TimestampType.LOG_APPEND_TIME if client_lat else TimestampType.CREATE_TIME
    raw = build_batch([SimpleRecord(b"k", b"v" * 9)] * count, timestamp_ms=1000, timestamp_type=ts_type)
    slow, fast = bytearray(raw), bytearray(raw)
    rewrite_for_append(slow, base_offset, leader_epoch=epoch, log_append_time=append_time)
    header = assign_for_append(
        fast, 0, parse_header(raw), base_offset, leader_epoch=epoch, log_append_time=append_time
    )
    assert fast == slow
    assert header == validate_batch(fast)
