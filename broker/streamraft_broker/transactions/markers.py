"""Kafka control records: the commit/abort marker a transaction coordinator writes into each partition.

Key: int16 version (0), int16 type (0 abort, 1 commit). Value: int16 version (0), int32 coordinator epoch.
The batch carries the producer id and epoch, base sequence -1, and attributes control (bit 5) and
transactional (bit 4)."""

from __future__ import annotations

import struct

from streamraft_broker.records.builder import SimpleRecord, build_batch, decode_records

ABORT, COMMIT = 0, 1
_KEY = struct.Struct(">hh")
_VALUE = struct.Struct(">hi")


def marker_batch(
    producer_id: int, producer_epoch: int, commit: bool, *, coordinator_epoch: int, now_ms: int
) -> bytes:
    record = SimpleRecord(
        key=_KEY.pack(0, COMMIT if commit else ABORT), value=_VALUE.pack(0, coordinator_epoch)
    )
    return build_batch(
        [record],
        producer_id=producer_id,
        producer_epoch=producer_epoch,
        base_sequence=-1,
        is_control=True,
        is_transactional=True,
        timestamp_ms=now_ms,
    )


def marker_type(batch: bytes) -> int | None:
    """ABORT or COMMIT for a control batch's bytes (starting at the batch); None if it is not a marker
    (Kafka has other control record types, e.g. for KRaft, which close no transaction)."""
    records = decode_records(batch)
    if not records or records[0].key is None or len(records[0].key) < _KEY.size:
        return None
    _version, kind = _KEY.unpack_from(records[0].key)
    return kind if kind in (ABORT, COMMIT) else None
