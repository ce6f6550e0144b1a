"""Compaction of closed segments: latest record per key kept, offsets and batch ranges preserved."""

from __future__ import annotations

from pathlib import Path

from streamraft_broker.log import LogConfig, PartitionLog
from streamraft_broker.records import (
    Compression,
    SimpleRecord,
    build_batch,
    decode_records,
    iter_batches,
    validate_batch,
)

CONFIG = LogConfig(segment_bytes=400, index_interval_bytes=64, cleanup_policy="compact")


def _records(log: PartitionLog) -> list[tuple[int, bytes | None, bytes | None]]:
    data = log.read_bytes(log.log_start_offset, 1 << 30)
    out = []
    for pos, header in iter_batches(data):
        batch = data[pos : pos + header.size]
        validate_batch(batch)
        if header.records_count:
            out += [(header.base_offset + r.offset_delta, r.key, r.value) for r in decode_records(batch)]
    return out


def test_compaction_keeps_the_latest_record_per_key_in_closed_segments(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path, CONFIG)
    try:
        written: list[tuple[int, bytes | None, bytes | None]] = []
        for i in range(60):
            keys = [b"k%d" % (i % 5), b"k%d" % ((i * 7) % 5)]
            codec = Compression.GZIP if i % 3 == 0 else Compression.NONE
            batch = build_batch(
                [SimpleRecord(k, b"v%d" % i) for k in keys], timestamp_ms=i, compression=codec
            )
            info = log.append(batch)
            written += [(info.base_offset + j, k, b"v%d" % i) for j, k in enumerate(keys)]
        end, size_before = log.log_end_offset, log.size_bytes
        active_base = log.segment_base_offsets[-1]
        stats = log.compact()
        assert stats.segments_rewritten >= 1 and stats.records_removed > 0
        assert stats.bytes_after < stats.bytes_before
        assert log.size_bytes == size_before - (stats.bytes_before - stats.bytes_after)
        assert log.log_end_offset == end
        latest_closed = {k: o for o, k, _ in written if o < active_base}
        expected = [
            (o, k, v) for o, k, v in written if o >= active_base or (k is not None and latest_closed[k] == o)
        ]
        assert _records(log) == expected
        # every offset still resolves to the batch holding it or the next surviving one
        for offset in range(end):
            (header,) = [h for _, h in iter_batches(log.read_bytes(offset, 1))]
            assert header.last_offset >= offset
        before_reopen = log.read_bytes(0, 1 << 30)
        assert log.compact().segments_rewritten == 0  # idempotent
        log.close()
        log = PartitionLog.open(tmp_path, CONFIG)
        assert log.read_bytes(0, 1 << 30) == before_reopen
        assert log.recovery_truncations == 0
        assert not list(tmp_path.glob("*.cleaned")) and not list(tmp_path.glob("*.swap"))
    finally:
        log.close()


def test_fully_superseded_batches_vanish_unless_an_idempotent_producer_wrote_them(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path, LogConfig(segment_bytes=200, cleanup_policy="compact"))
    try:
        log.append(build_batch([SimpleRecord(b"a", b"1")], timestamp_ms=1))  # offset 0, plain
        producer = build_batch(
            [SimpleRecord(b"b", b"1")], timestamp_ms=2, producer_id=77, producer_epoch=3, base_sequence=0
        )
        log.append(producer)  # offset 1, idempotent
        for i in range(6):
            log.append(
                build_batch([SimpleRecord(b"a", b"x"), SimpleRecord(b"b", b"y" * 50)], timestamp_ms=3 + i)
            )
        log.compact()
        headers = [h for _, h in iter_batches(log.read_bytes(0, 1 << 30))]
        assert headers[0].base_offset == 1  # the plain batch at 0 is gone
        assert (headers[0].records_count, headers[0].producer_id, headers[0].last_sequence) == (0, 77, 0)
        assert log.read_bytes(0, 1) == log.read_bytes(1, 1)
    finally:
        log.close()


def test_retention_does_not_apply_to_compacted_logs(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path, LogConfig(segment_bytes=200, retention_ms=1, cleanup_policy="compact"))
    try:
        for i in range(10):
            log.append(build_batch([SimpleRecord(b"k%d" % i, b"v")], timestamp_ms=1))
        assert log.segment_count > 2
        assert log.apply_retention() == 0
        assert log.log_start_offset == 0
    finally:
        log.close()


def test_compact_delete_policy_applies_retention_too(tmp_path: Path) -> None:
    config = LogConfig.from_topic_configs({"cleanup.policy": "compact,delete", "segment.bytes": "200"})
    assert config.compaction_enabled and config.retention_enabled
    log = PartitionLog.open(tmp_path, LogConfig.from_topic_configs({"retention.ms": "1"}, base=config))
    try:
        for i in range(10):
            log.append(build_batch([SimpleRecord(b"k%d" % i, b"v")], timestamp_ms=1))
        assert log.apply_retention() >= 1
        assert log.log_start_offset > 0
    finally:
        log.close()


def test_tombstones_go_after_delete_retention(tmp_path: Path) -> None:
    clock = [1_000_000]
    config = LogConfig.from_topic_configs(
        {"cleanup.policy": "compact", "segment.bytes": "150", "delete.retention.ms": "1000"}
    )
    log = PartitionLog.open(tmp_path, config, now_ms=lambda: clock[0])
    try:
        log.append(build_batch([SimpleRecord(b"gone", b"v1")], timestamp_ms=clock[0]))
        log.append(build_batch([SimpleRecord(b"gone", None)], timestamp_ms=clock[0]))  # tombstone
        for i in range(4):
            log.append(build_batch([SimpleRecord(b"k%d" % i, b"x" * 40)], timestamp_ms=clock[0]))
        log.compact()
        assert [(o, k, v) for o, k, v in _records(log) if k == b"gone"] == [(1, b"gone", None)]
        clock[0] += 1001
        assert log.compact().records_removed == 1
        assert [k for _, k, _ in _records(log)].count(b"gone") == 0
    finally:
        log.close()
