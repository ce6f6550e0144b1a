"""Kafka's zigzag variable-length integers (protobuf style), used inside RecordBatch v2 records."""

from __future__ import annotations

from .errors import InvalidRecordError, KafkaErrorCode

_INT32_MIN = -(1 << 31)
_INT32_MAX = (1 << 31) - 1
_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1
# A zigzag varlong never needs more than 10 bytes; anything longer is corrupt input, not a big number.
_MAX_VARLONG_BYTES = 10
_MAX_VARINT_BYTES = 5


def _encode_unsigned(value: int, out: bytearray) -> None:
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def write_varint(value: int, out: bytearray) -> None:
    """Append a zigzag-encoded signed 32-bit integer."""
    if not _INT32_MIN <= value <= _INT32_MAX:
        raise ValueError(f"varint out of int32 range: {value}")
    _encode_unsigned(((value << 1) ^ (value >> 31)) & 0xFFFFFFFF, out)


def write_varlong(value: int, out: bytearray) -> None:
    """Append a zigzag-encoded signed 64-bit integer."""
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise ValueError(f"varlong out of int64 range: {value}")
    _encode_unsigned(((value << 1) ^ (value >> 63)) & 0xFFFFFFFFFFFFFFFF, out)


def _read_unsigned(buf: bytes | memoryview, pos: int, max_bytes: int) -> tuple[int, int]:
    result = 0
    shift = 0
    end = len(buf)
    for _ in range(max_bytes):
        if pos >= end:
            raise InvalidRecordError(KafkaErrorCode.CORRUPT_MESSAGE, "record truncated inside a varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
    raise InvalidRecordError(KafkaErrorCode.CORRUPT_MESSAGE, f"varint longer than {max_bytes} bytes")


def read_varint(buf: bytes | memoryview, pos: int) -> tuple[int, int]:
    """Decode a zigzag signed 32-bit integer at ``pos``; returns (value, next position)."""
    raw, pos = _read_unsigned(buf, pos, _MAX_VARINT_BYTES)
    if raw > 0xFFFFFFFF:
        raise InvalidRecordError(KafkaErrorCode.CORRUPT_MESSAGE, "varint exceeds 32 bits")
    return (raw >> 1) ^ -(raw & 1), pos


def read_varlong(buf: bytes | memoryview, pos: int) -> tuple[int, int]:
    """Decode a zigzag signed 64-bit integer at ``pos``; returns (value, next position)."""
    raw, pos = _read_unsigned(buf, pos, _MAX_VARLONG_BYTES)
    if raw > 0xFFFFFFFFFFFFFFFF:
        raise InvalidRecordError(KafkaErrorCode.CORRUPT_MESSAGE, "varlong exceeds 64 bits")
    return (raw >> 1) ^ -(raw & 1), pos
