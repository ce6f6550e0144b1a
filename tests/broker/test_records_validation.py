"""Validation of untrusted batches: every rejection carries the right Kafka error code and says why."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from streamraft_broker.records import (
    InvalidRecordError,
    KafkaErrorCode,
    SimpleRecord,
    build_batch,
    compute_crc,
    iter_batches,
    validate_batch,
    validate_produce_batch,
)


def _batch(n: int = 3) -> bytearray:
    return bytearray(build_batch([SimpleRecord(b"k", b"value %d" % i) for i in range(n)], timestamp_ms=1000))


def _fix_crc(raw: bytearray) -> None:
    struct.pack_into(">I", raw, 17, compute_crc(raw, 0, len(raw)))


def _code(exc: pytest.ExceptionInfo[InvalidRecordError]) -> int:
    return exc.value.error_code


def test_valid_batch_passes() -> None:
    raw = _batch()
    assert validate_produce_batch(raw, 0, max_batch_bytes=1 << 20).records_count == 3


@pytest.mark.parametrize("magic", [0, 1])
def test_old_magic_is_unsupported_for_message_format(magic: int) -> None:
    raw = _batch()
    raw[16] = magic
    with pytest.raises(InvalidRecordError, match="magic") as exc:
        validate_batch(raw)
    assert _code(exc) == KafkaErrorCode.UNSUPPORTED_FOR_MESSAGE_FORMAT


def test_unknown_magic_is_corrupt() -> None:
    raw = _batch()
    raw[16] = 3
    with pytest.raises(InvalidRecordError, match="magic 3") as exc:
        validate_batch(raw)
    assert _code(exc) == KafkaErrorCode.CORRUPT_MESSAGE


def test_length_beyond_buffer_is_corrupt() -> None:
    raw = _batch()
    with pytest.raises(InvalidRecordError, match="only") as exc:
        validate_batch(raw[:-1])
    assert _code(exc) == KafkaErrorCode.CORRUPT_MESSAGE
    struct.pack_into(">i", raw, 8, 20)
    with pytest.raises(InvalidRecordError, match="minimum"):
        validate_batch(raw)


def test_crc_mismatch_is_corrupt_and_names_both_values() -> None:
    raw = _batch()
    raw[-1] ^= 0x01
    with pytest.raises(InvalidRecordError, match="CRC-32C") as exc:
        validate_batch(raw)
    assert _code(exc) == KafkaErrorCode.CORRUPT_MESSAGE


def test_record_count_beyond_offset_delta_is_corrupt() -> None:
    raw = _batch(3)
    struct.pack_into(">i", raw, 57, 4)
    _fix_crc(raw)
    with pytest.raises(InvalidRecordError, match="lastOffsetDelta") as exc:
        validate_batch(raw)
    assert _code(exc) == KafkaErrorCode.CORRUPT_MESSAGE


def test_record_count_impossible_for_size_is_corrupt() -> None:
    raw = _batch(3)
    struct.pack_into(">i", raw, 23, 999)  # lastOffsetDelta
    struct.pack_into(">i", raw, 57, 900)
    _fix_crc(raw)
    with pytest.raises(InvalidRecordError, match="claims 900 records") as exc:
        validate_batch(raw)
    assert _code(exc) == KafkaErrorCode.CORRUPT_MESSAGE


def test_produce_requires_dense_offsets() -> None:
    raw = _batch(3)
    struct.pack_into(">i", raw, 23, 5)  # a gap a producer never makes
    _fix_crc(raw)
    validate_batch(raw)  # fine for a stored (compacted) batch
    with pytest.raises(InvalidRecordError, match="dense") as exc:
        validate_produce_batch(raw, 0, max_batch_bytes=1 << 20)
    assert _code(exc) == KafkaErrorCode.INVALID_RECORD


def test_produce_rejects_empty_batch() -> None:
    raw = _batch(1)
    struct.pack_into(">i", raw, 57, 0)
    _fix_crc(raw)
    with pytest.raises(InvalidRecordError, match="empty") as exc:
        validate_produce_batch(raw, 0, max_batch_bytes=1 << 20)
    assert _code(exc) == KafkaErrorCode.INVALID_RECORD


def test_produce_rejects_batch_over_max_message_bytes() -> None:
    raw = _batch(3)
    with pytest.raises(InvalidRecordError, match=r"max\.message\.bytes") as exc:
        validate_produce_batch(raw, 0, max_batch_bytes=len(raw) - 1)
    assert _code(exc) == KafkaErrorCode.MESSAGE_TOO_LARGE
    assert validate_produce_batch(raw, 0, max_batch_bytes=len(raw)).size == len(raw)


def test_iter_batches_walks_concatenated_batches_and_rejects_partial_tail() -> None:
    a, b = _batch(2), _batch(5)
    assert [(p, h.records_count) for p, h in iter_batches(bytes(a + b))] == [(0, 2), (len(a), 5)]
    with pytest.raises(InvalidRecordError):
        list(iter_batches(bytes(a + b[:30])))


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_any_single_bit_flip_in_the_covered_region_is_detected(data: st.DataObject) -> None:
    raw = _batch(4)
    index = data.draw(st.integers(min_value=17, max_value=len(raw) - 1))  # CRC field and everything after
    bit = data.draw(st.integers(min_value=0, max_value=7))
    raw[index] ^= 1 << bit
    with pytest.raises(InvalidRecordError) as exc:
        validate_batch(raw)
    assert _code(exc) == KafkaErrorCode.CORRUPT_MESSAGE


@settings(max_examples=200, deadline=None)
@given(junk=st.binary(min_size=0, max_size=300))
def test_garbage_never_crashes_the_validator(junk: bytes) -> None:
    try:
        validate_batch(junk)
    except InvalidRecordError as exc:
        assert exc.error_code in {int(c) for c in KafkaErrorCode}
        assert str(exc)
