"""RecordBatch v2 (magic 2) at the byte level: header parsing, validation and in-place rewriting.

Layout (big-endian), offsets into the batch:
    0 baseOffset int64 | 8 batchLength int32 | 12 partitionLeaderEpoch int32 | 16 magic int8 | 17 crc uint32
    21 attributes int16 | 23 lastOffsetDelta int32 | 27 baseTimestamp int64 | 35 maxTimestamp int64
    43 producerId int64 | 51 producerEpoch int16 | 53 baseSequence int32 | 57 recordsCount int32 | 61 records
batchLength counts the bytes after itself (total size - 12); the CRC-32C covers attributes..end.

Only header fields are ever touched here: produce and fetch never decode or re-encode the records.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from enum import IntEnum

import crc32c

from .errors import InvalidRecordError, KafkaErrorCode

BATCH_HEADER_SIZE = 61
# baseOffset + batchLength: the part of the header that is not counted by batchLength.
LOG_OVERHEAD = 12
MAGIC_V2 = 2

BASE_OFFSET_OFFSET = 0
LENGTH_OFFSET = 8
PARTITION_LEADER_EPOCH_OFFSET = 12
MAGIC_OFFSET = 16
CRC_OFFSET = 17
ATTRIBUTES_OFFSET = 21
LAST_OFFSET_DELTA_OFFSET = 23
BASE_TIMESTAMP_OFFSET = 27
MAX_TIMESTAMP_OFFSET = 35
PRODUCER_ID_OFFSET = 43
RECORDS_COUNT_OFFSET = 57

COMPRESSION_MASK = 0x07
TIMESTAMP_TYPE_MASK = 0x08
TRANSACTIONAL_MASK = 0x10
CONTROL_MASK = 0x20
DELETE_HORIZON_MASK = 0x40

NO_TIMESTAMP = -1
NO_PRODUCER_ID = -1
NO_SEQUENCE = -1

# The smallest possible record: length, attributes, timestampDelta, offsetDelta, keyLength, valueLength and
# headerCount, one byte each. Used to reject record counts an uncompressed batch cannot possibly hold.
MIN_RECORD_SIZE = 7

_HEADER = struct.Struct(">qiibIhiqqqhii")
_MAGIC = struct.Struct(">b")
_LENGTH = struct.Struct(">i")
_OFFSET_EPOCH = struct.Struct(">q")
_EPOCH = struct.Struct(">i")
_ATTRIBUTES = struct.Struct(">h")
_TIMESTAMP = struct.Struct(">q")
_CRC = struct.Struct(">I")
assert _HEADER.size == BATCH_HEADER_SIZE


class Compression(IntEnum):
    """Compression codec ids stored in attribute bits 0-2."""

    NONE = 0
    GZIP = 1
    SNAPPY = 2
    LZ4 = 3
    ZSTD = 4


class TimestampType(IntEnum):
    """Attribute bit 3: how maxTimestamp (and record timestamps) were assigned."""

    CREATE_TIME = 0
    LOG_APPEND_TIME = 1


@dataclass(frozen=True, slots=True)
class BatchHeader:
    """The 61-byte RecordBatch v2 header."""

    base_offset: int
    batch_length: int
    partition_leader_epoch: int
    magic: int
    crc: int
    attributes: int
    last_offset_delta: int
    base_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    records_count: int

    @property
    def compression(self) -> Compression:
        try:
            return Compression(self.attributes & COMPRESSION_MASK)
        except ValueError:
            raise InvalidRecordError(
                KafkaErrorCode.CORRUPT_MESSAGE, f"unknown compression codec id {self.attributes & 7}"
            ) from None

    @property
    def timestamp_type(self) -> TimestampType:
        if self.attributes & TIMESTAMP_TYPE_MASK:
            return TimestampType.LOG_APPEND_TIME
        return TimestampType.CREATE_TIME

    @property
    def is_transactional(self) -> bool:
        return bool(self.attributes & TRANSACTIONAL_MASK)

    @property
    def is_control(self) -> bool:
        return bool(self.attributes & CONTROL_MASK)

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.last_offset_delta

    @property
    def next_offset(self) -> int:
        return self.base_offset + self.last_offset_delta + 1

    @property
    def last_sequence(self) -> int:
        """Sequence of the last record, wrapping at int32 like Kafka; -1 when the batch has no sequence."""
        if self.base_sequence == NO_SEQUENCE:
            return NO_SEQUENCE
        return (self.base_sequence + self.last_offset_delta) & 0x7FFFFFFF

    @property
    def size(self) -> int:
        """Total bytes of the batch including the 12-byte offset/length prefix."""
        return self.batch_length + LOG_OVERHEAD


def parse_header(buf: bytes | bytearray | memoryview, pos: int = 0) -> BatchHeader:
    """Parse the v2 header at ``pos``; checks only that 61 bytes are there (validate_batch does the rest)."""
    if pos < 0 or len(buf) - pos < BATCH_HEADER_SIZE:
        raise InvalidRecordError(
            KafkaErrorCode.CORRUPT_MESSAGE,
            f"record batch header truncated at position {pos}: {max(len(buf) - pos, 0)} of "
            f"{BATCH_HEADER_SIZE} bytes",
        )
    return BatchHeader(*_HEADER.unpack_from(buf, pos))


def read_size_and_magic(buf: bytes | bytearray | memoryview, pos: int) -> tuple[int, int]:
    """Total size and magic of the batch at ``pos`` (same prefix layout for every magic); no validation."""
    (length,) = _LENGTH.unpack_from(buf, pos + LENGTH_OFFSET)
    (magic,) = _MAGIC.unpack_from(buf, pos + MAGIC_OFFSET)
    return length + LOG_OVERHEAD, magic


def _check_prefix(buf: bytes | bytearray | memoryview, pos: int) -> int:
    """Validate magic and length so the batch can be sliced; returns its total size."""
    remaining = len(buf) - pos
    if remaining < MAGIC_OFFSET + 1:
        raise InvalidRecordError(
            KafkaErrorCode.CORRUPT_MESSAGE,
            f"record batch truncated at position {pos}: {remaining} bytes is less than a batch prefix",
        )
    size, magic = read_size_and_magic(buf, pos)
    if magic in (0, 1):
        raise InvalidRecordError(
            KafkaErrorCode.UNSUPPORTED_FOR_MESSAGE_FORMAT,
            f"message format magic {magic} at position {pos} is not supported; only magic 2 record batches",
        )
    if magic != MAGIC_V2:
        raise InvalidRecordError(
            KafkaErrorCode.CORRUPT_MESSAGE, f"invalid record batch magic {magic} at position {pos}"
        )
    if size < BATCH_HEADER_SIZE:
        raise InvalidRecordError(
            KafkaErrorCode.CORRUPT_MESSAGE,
            f"record batch at position {pos} declares batchLength {size - LOG_OVERHEAD}, "
            f"smaller than the {BATCH_HEADER_SIZE - LOG_OVERHEAD}-byte minimum",
        )
    if size > remaining:
        raise InvalidRecordError(
            KafkaErrorCode.CORRUPT_MESSAGE,
            f"record batch at position {pos} declares {size} bytes but only {remaining} remain",
        )
    return size


def compute_crc(buf: bytes | bytearray | memoryview, pos: int, size: int) -> int:
    """CRC-32C over attributes..end of the batch at ``pos`` with total ``size``."""
    view = buf if isinstance(buf, memoryview) else memoryview(buf)
    return int(crc32c.crc32c(view[pos + ATTRIBUTES_OFFSET : pos + size]))


def validate_batch(buf: bytes | bytearray | memoryview, pos: int = 0) -> BatchHeader:
    """Validate size, magic, CRC and count/offset-delta sanity of the batch at ``pos``; returns its header.

    This is the check for any stored batch (including compacted ones, whose record count may be lower than
    lastOffsetDelta + 1). Produce requests get the stricter validate_produce_batch.
    """
    return _validate_after_prefix(buf, pos, _check_prefix(buf, pos))


def _validate_after_prefix(buf: bytes | bytearray | memoryview, pos: int, size: int) -> BatchHeader:
    header = BatchHeader(*_HEADER.unpack_from(buf, pos))
    crc = compute_crc(buf, pos, size)
    if crc != header.crc:
        raise InvalidRecordError(
            KafkaErrorCode.CORRUPT_MESSAGE,
            f"record batch at position {pos} (base offset {header.base_offset}) failed CRC-32C: "
            f"stored {header.crc:#010x}, computed {crc:#010x}",
        )
    if header.attributes & COMPRESSION_MASK > Compression.ZSTD:
        raise InvalidRecordError(
            KafkaErrorCode.CORRUPT_MESSAGE,
            f"record batch at position {pos} uses unknown compression codec id {header.attributes & 7}",
        )
    if header.records_count < 0 or header.last_offset_delta < 0:
        raise InvalidRecordError(
            KafkaErrorCode.CORRUPT_MESSAGE,
            f"record batch at position {pos} has negative recordsCount {header.records_count} or "
            f"lastOffsetDelta {header.last_offset_delta}",
        )
    if header.records_count > header.last_offset_delta + 1:
        raise InvalidRecordError(
            KafkaErrorCode.CORRUPT_MESSAGE,
            f"record batch at position {pos} holds {header.records_count} records but lastOffsetDelta "
            f"{header.last_offset_delta} leaves room for only {header.last_offset_delta + 1}",
        )
    if (
        header.attributes & COMPRESSION_MASK == Compression.NONE
        and header.records_count * MIN_RECORD_SIZE > size - BATCH_HEADER_SIZE
    ):
        raise InvalidRecordError(
            KafkaErrorCode.CORRUPT_MESSAGE,
            f"uncompressed record batch at position {pos} claims {header.records_count} records in "
            f"{size - BATCH_HEADER_SIZE} bytes",
        )
    return header


def validate_produce_batch(
    buf: bytes | bytearray | memoryview, pos: int, *, max_batch_bytes: int
) -> BatchHeader:
    """validate_batch plus the rules for a batch fresh from a producer: at least one record, dense offset
    deltas (recordsCount == lastOffsetDelta + 1) and the topic's max.message.bytes."""
    size = _check_prefix(buf, pos)
    if size > max_batch_bytes:
        raise InvalidRecordError(
            KafkaErrorCode.MESSAGE_TOO_LARGE,
            f"record batch at position {pos} is {size} bytes, "
            f"larger than max.message.bytes {max_batch_bytes}",
        )
    header = _validate_after_prefix(buf, pos, size)
    if header.records_count == 0:
        raise InvalidRecordError(KafkaErrorCode.INVALID_RECORD, f"record batch at position {pos} is empty")
    if header.records_count != header.last_offset_delta + 1:
        raise InvalidRecordError(
            KafkaErrorCode.INVALID_RECORD,
            f"record batch at position {pos} has recordsCount {header.records_count} but lastOffsetDelta "
            f"{header.last_offset_delta}; a producer's batch must have dense offsets",
        )
    return header


_PREFIX = struct.Struct(">qii")


def assign_for_append(
    buf: bytearray | memoryview,
    pos: int,
    header: BatchHeader,
    base_offset: int,
    *,
    leader_epoch: int,
    log_append_time: int | None,
) -> BatchHeader:
    """rewrite_for_append for a batch already validated as ``header`` at ``pos`` in ``buf``; returns the
    rewritten header without parsing it again (the produce hot path)."""
    _PREFIX.pack_into(buf, pos, base_offset, header.batch_length, leader_epoch)
    attributes, max_timestamp, crc = header.attributes, header.max_timestamp, header.crc
    changed = False
    if log_append_time is None:
        if attributes & TIMESTAMP_TYPE_MASK:
            attributes &= ~TIMESTAMP_TYPE_MASK
            changed = True
    elif not attributes & TIMESTAMP_TYPE_MASK or max_timestamp != log_append_time:
        attributes |= TIMESTAMP_TYPE_MASK
        max_timestamp = log_append_time
        changed = True
    if changed:
        _ATTRIBUTES.pack_into(buf, pos + ATTRIBUTES_OFFSET, attributes)
        _TIMESTAMP.pack_into(buf, pos + MAX_TIMESTAMP_OFFSET, max_timestamp)
        crc = compute_crc(buf, pos, header.size)
        _CRC.pack_into(buf, pos + CRC_OFFSET, crc)
    return BatchHeader(
        base_offset,
        header.batch_length,
        leader_epoch,
        header.magic,
        crc,
        attributes,
        header.last_offset_delta,
        header.base_timestamp,
        max_timestamp,
        header.producer_id,
        header.producer_epoch,
        header.base_sequence,
        header.records_count,
    )


def iter_batches(buf: bytes | bytearray | memoryview) -> Iterator[tuple[int, BatchHeader]]:
    """Walk consecutive batches in ``buf``, yielding (position, header). Sizes and magic are validated (a
    partial trailing batch raises), the CRC is not: call validate_batch when the bytes are untrusted."""
    pos = 0
    end = len(buf)
    while pos < end:
        size = _check_prefix(buf, pos)
        yield pos, BatchHeader(*_HEADER.unpack_from(buf, pos))
        pos += size


def rewrite_for_append(
    batch: bytearray | memoryview, base_offset: int, *, leader_epoch: int, log_append_time: int | None
) -> None:
    """Assign the broker's fields in place: baseOffset and partitionLeaderEpoch (neither is CRC-covered) and,
    when the topic uses LogAppendTime, the timestamp-type bit and maxTimestamp. With ``log_append_time`` None
    (CreateTime) a stray LogAppendTime bit from the client is cleared. The CRC is recomputed only when a
    covered byte actually changed."""
    _OFFSET_EPOCH.pack_into(batch, BASE_OFFSET_OFFSET, base_offset)
    _EPOCH.pack_into(batch, PARTITION_LEADER_EPOCH_OFFSET, leader_epoch)
    (attributes,) = _ATTRIBUTES.unpack_from(batch, ATTRIBUTES_OFFSET)
    changed = False
    if log_append_time is None:
        if attributes & TIMESTAMP_TYPE_MASK:
            _ATTRIBUTES.pack_into(batch, ATTRIBUTES_OFFSET, attributes & ~TIMESTAMP_TYPE_MASK)
            changed = True
    else:
        (max_ts,) = _TIMESTAMP.unpack_from(batch, MAX_TIMESTAMP_OFFSET)
        if not attributes & TIMESTAMP_TYPE_MASK or max_ts != log_append_time:
            _ATTRIBUTES.pack_into(batch, ATTRIBUTES_OFFSET, attributes | TIMESTAMP_TYPE_MASK)
            _TIMESTAMP.pack_into(batch, MAX_TIMESTAMP_OFFSET, log_append_time)
            changed = True
    if changed:
        (length,) = _LENGTH.unpack_from(batch, LENGTH_OFFSET)
        _CRC.pack_into(batch, CRC_OFFSET, compute_crc(batch, 0, length + LOG_OVERHEAD))
