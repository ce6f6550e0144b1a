"""Append/read round trips through a real on-disk PartitionLog."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamraft_broker.log import LogConfig, OffsetOutOfRangeError, PartitionLog
from streamraft_broker.records import SimpleRecord, build_batch, decode_records, iter_batches


def _batch(n: int, ts: int, tag: bytes = b"v") -> bytes:
    return build_batch([SimpleRecord(b"k%d" % i, tag + b"%d" % i) for i in range(n)], timestamp_ms=ts)


def test_append_assigns_consecutive_offsets_and_reads_back(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path, LogConfig())
    try:
        first = log.append(_batch(3, 1000))
        second = log.append(_batch(2, 2000) + _batch(4, 3000))
        assert (first.base_offset, first.last_offset, first.records_count) == (0, 2, 3)
        assert (second.base_offset, second.last_offset, second.batch_count) == (3, 8, 2)
        assert log.log_end_offset == 9
        data = log.read_bytes(0, 1 << 20)
        assert [h.base_offset for _, h in iter_batches(data)] == [0, 3, 5]
        assert len(data) == log.size_bytes
        tail = log.read_bytes(6, 1 << 20)
        assert [h.base_offset for _, h in iter_batches(tail)] == [5]
        assert [r.value for r in decode_records(tail)] == [b"v0", b"v1", b"v2", b"v3"]
        assert log.read(9, 100) == []
        with pytest.raises(OffsetOutOfRangeError):
            log.read(10, 100)
    finally:
        log.close()


def test_reopen_after_clean_close_keeps_everything(tmp_path: Path) -> None:
    config = LogConfig(segment_bytes=1000, index_interval_bytes=100)
    log = PartitionLog.open(tmp_path, config)
    for i in range(40):
        log.append(_batch(2, 1000 + i))
    before = log.read_bytes(0, 1 << 20)
    segments = log.segment_count
    log.close()
    reopened = PartitionLog.open(tmp_path, config)
    try:
        assert segments > 3
        assert reopened.segment_count == segments
        assert reopened.log_end_offset == 80
        assert reopened.recovery_scanned_bytes == 0
        assert reopened.read_bytes(0, 1 << 20) == before
    finally:
        reopened.close()
