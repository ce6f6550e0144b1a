"""Building and decoding whole batches record by record.

For internal topics, tests and tools only: the produce/fetch path never calls into this module.
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from .batch import (
    BATCH_HEADER_SIZE,
    COMPRESSION_MASK,
    CONTROL_MASK,
    CRC_OFFSET,
    MAGIC_V2,
    TRANSACTIONAL_MASK,
    BatchHeader,
    Compression,
    TimestampType,
    compute_crc,
    validate_batch,
)
from .codec import compress, decompress
from .errors import InvalidRecordError, KafkaErrorCode
from .varint import read_varint, read_varlong, write_varint, write_varlong

_HEADER = struct.Struct(">qiibIhiqqqhii")
_CRC = struct.Struct(">I")


@dataclass(slots=True)
class SimpleRecord:
    """One record. ``timestamp_delta``/``offset_delta`` are relative to the batch's base timestamp/offset.
    A null header value is decoded as b"" (the contract types header values as bytes)."""

    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()
    offset_delta: int = 0
    timestamp_delta: int = 0


def _encode_record(record: SimpleRecord, offset_delta: int, out: bytearray) -> None:
    body = bytearray(b"\x00")  # record attributes: unused, always 0
    write_varlong(record.timestamp_delta, body)
    write_varint(offset_delta, body)
    for field in (record.key, record.value):
        if field is None:
            write_varint(-1, body)
        else:
            write_varint(len(field), body)
            body += field
    write_varint(len(record.headers), body)
    for name, value in record.headers:
        encoded = name.encode("utf-8")
        write_varint(len(encoded), body)
        body += encoded
        write_varint(len(value), body)
        body += value
    write_varint(len(body), out)
    out += body


def build_batch(
    records: Sequence[SimpleRecord],
    *,
    base_offset: int = 0,
    producer_id: int = -1,
    producer_epoch: int = -1,
    base_sequence: int = -1,
    is_control: bool = False,
    is_transactional: bool = False,
    timestamp_ms: int,
    compression: Compression = Compression.NONE,
    partition_leader_epoch: int = -1,
    timestamp_type: TimestampType = TimestampType.CREATE_TIME,
    last_offset_delta: int | None = None,
    max_timestamp: int | None = None,
) -> bytes:
    """Encode a complete v2 batch. Offset deltas are 0..n-1 unless the records carry explicit, strictly
    increasing ones (as a compacted batch would); record timestamps are timestamp_ms + timestamp_delta.
    ``last_offset_delta``/``max_timestamp`` override the computed header values (compaction keeps a
    batch's original offset range and max timestamp when it drops records)."""
    if not records:
        raise ValueError("a record batch needs at least one record")
    deltas = [r.offset_delta for r in records]
    if all(d == 0 for d in deltas):
        deltas = list(range(len(records)))
    elif deltas[0] < 0 or any(b <= a for a, b in itertools.pairwise(deltas)):
        raise ValueError(f"explicit offset deltas must be non-negative and strictly increasing: {deltas}")
    body = bytearray()
    for record, delta in zip(records, deltas, strict=True):
        _encode_record(record, delta, body)
    payload = compress(compression, bytes(body))
    attributes = int(compression) & COMPRESSION_MASK
    if timestamp_type is TimestampType.LOG_APPEND_TIME:
        attributes |= 0x08
    if is_transactional:
        attributes |= TRANSACTIONAL_MASK
    if is_control:
        attributes |= CONTROL_MASK
    max_ts = (
        timestamp_ms + max(r.timestamp_delta for r in records) if max_timestamp is None else max_timestamp
    )
    if last_offset_delta is None:
        last_offset_delta = deltas[-1]
    elif last_offset_delta < deltas[-1]:
        raise ValueError(f"last_offset_delta {last_offset_delta} is below the last record's {deltas[-1]}")
    size = BATCH_HEADER_SIZE + len(payload)
    out = bytearray(size)
    _HEADER.pack_into(
        out,
        0,
        base_offset,
        size - 12,
        partition_leader_epoch,
        MAGIC_V2,
        0,
        attributes,
        last_offset_delta,
        timestamp_ms,
        max_ts,
        producer_id,
        producer_epoch,
        base_sequence,
        len(records),
    )
    out[BATCH_HEADER_SIZE:] = payload
    _CRC.pack_into(out, CRC_OFFSET, compute_crc(out, 0, size))
    return bytes(out)


def build_empty_batch(header: BatchHeader) -> bytes:
    """A header-only batch (no records) keeping ``header``'s offsets, producer fields and flags, as
    compaction leaves behind when it removes every record of an idempotent producer's batch."""
    attributes = header.attributes & ~COMPRESSION_MASK
    out = bytearray(BATCH_HEADER_SIZE)
    _HEADER.pack_into(
        out,
        0,
        header.base_offset,
        BATCH_HEADER_SIZE - 12,
        header.partition_leader_epoch,
        MAGIC_V2,
        0,
        attributes,
        header.last_offset_delta,
        header.base_timestamp,
        header.max_timestamp,
        header.producer_id,
        header.producer_epoch,
        header.base_sequence,
        0,
    )
    _CRC.pack_into(out, CRC_OFFSET, compute_crc(out, 0, BATCH_HEADER_SIZE))
    return bytes(out)


def _corrupt(message: str) -> InvalidRecordError:
    return InvalidRecordError(KafkaErrorCode.CORRUPT_MESSAGE, message)


def _read_bytes(buf: bytes, pos: int, what: str) -> tuple[bytes | None, int]:
    length, pos = read_varint(buf, pos)
    if length < 0:
        return None, pos
    if pos + length > len(buf):
        raise _corrupt(f"record {what} of {length} bytes overruns the batch")
    return buf[pos : pos + length], pos + length


def decode_records(batch: bytes) -> list[SimpleRecord]:
    """Validate one complete batch (CRC included) and decode its records, decompressing if needed."""
    header = validate_batch(batch, 0)
    data = decompress(header.compression, bytes(batch[BATCH_HEADER_SIZE : header.size]))
    records: list[SimpleRecord] = []
    pos = 0
    for index in range(header.records_count):
        length, pos = read_varint(data, pos)
        end = pos + length
        if length < 0 or end > len(data):
            raise _corrupt(f"record {index} declares {length} bytes, past the end of the batch")
        pos += 1  # record attributes, unused
        ts_delta, pos = read_varlong(data, pos)
        offset_delta, pos = read_varint(data, pos)
        key, pos = _read_bytes(data, pos, "key")
        value, pos = _read_bytes(data, pos, "value")
        header_count, pos = read_varint(data, pos)
        if header_count < 0:
            raise _corrupt(f"record {index} has negative header count {header_count}")
        headers: list[tuple[str, bytes]] = []
        for _ in range(header_count):
            name, pos = _read_bytes(data, pos, "header key")
            if name is None:
                raise _corrupt(f"record {index} has a null header key")
            hvalue, pos = _read_bytes(data, pos, "header value")
            try:
                decoded_name = name.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise _corrupt(f"record {index} header key is not UTF-8") from exc
            headers.append((decoded_name, hvalue if hvalue is not None else b""))
        if pos != end:
            raise _corrupt(f"record {index} length {length} does not match its contents")
        records.append(SimpleRecord(key, value, tuple(headers), offset_delta, ts_delta))
    if pos != len(data):
        raise _corrupt(f"{len(data) - pos} trailing bytes after {header.records_count} records")
    return records
