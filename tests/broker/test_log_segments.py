"""Rolling, reads with limits, timestamps, retention, truncation and config on a real on-disk log."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from streamraft_broker.log import (
    FlushPolicy,
    InvalidConfigError,
    LogConfig,
    OffsetOutOfRangeError,
    PartitionLog,
)
from streamraft_broker.records import (
    InvalidRecordError,
    KafkaErrorCode,
    SimpleRecord,
    TimestampType,
    build_batch,
    decode_records,
    iter_batches,
    parse_header,
    validate_batch,
)


class Clock:
    def __init__(self, start: int = 1_000_000) -> None:
        self.now = start

    def __call__(self) -> int:
        return self.now


def _batch(n: int, ts: int, size: int = 20) -> bytes:
    return build_batch([SimpleRecord(b"k", b"x" * size, (), 0, i) for i in range(n)], timestamp_ms=ts)


def _offsets(data: bytes) -> list[int]:
    return [h.base_offset for _, h in iter_batches(data)]


def _open(path: Path, clock: Clock | None = None, **kw: object) -> PartitionLog:
    return PartitionLog.open(path, LogConfig(**kw), now_ms=clock or Clock())


def test_rolls_by_size_and_names_segments_by_base_offset(tmp_path: Path) -> None:
    log = _open(tmp_path, segment_bytes=600, index_interval_bytes=50)
    try:
        sizes = [log.append(_batch(2, 1000 + i)).bytes for i in range(30)]
        bases = log.segment_base_offsets
        assert len(bases) > 5
        names = sorted(p.name for p in tmp_path.glob("*.log"))
        assert names == [f"{b:020d}.log" for b in bases]
        assert all((tmp_path / f"{b:020d}.index").exists() for b in bases)
        assert all((tmp_path / f"{b:020d}.timeindex").exists() for b in bases)
        for path in tmp_path.glob("*.log"):
            assert path.stat().st_size <= 600
        assert log.size_bytes == sum(sizes)
        # every offset is readable, batch by batch, across segment boundaries
        for offset in range(60):
            data = log.read_bytes(offset, 1)
            (header,) = [h for _, h in iter_batches(data)]
            assert header.base_offset <= offset <= header.last_offset
    finally:
        log.close()


def test_a_batch_larger_than_segment_bytes_gets_its_own_segment(tmp_path: Path) -> None:
    log = _open(tmp_path, segment_bytes=200)
    try:
        log.append(_batch(1, 1))
        log.append(_batch(1, 2, size=500))
        log.append(_batch(1, 3))
        assert log.segment_base_offsets == [0, 1, 2]
    finally:
        log.close()


def test_rolls_by_time(tmp_path: Path) -> None:
    clock = Clock()
    log = _open(tmp_path, clock, segment_ms=1000)
    try:
        log.append(_batch(1, 1))
        clock.now += 999
        log.append(_batch(1, 2))
        assert log.segment_count == 1
        clock.now += 1
        log.append(_batch(1, 3))
        assert log.segment_base_offsets == [0, 2]
    finally:
        log.close()


def test_read_respects_max_bytes_min_one_message_and_max_offset(tmp_path: Path) -> None:
    log = _open(tmp_path, segment_bytes=1000, index_interval_bytes=100)
    try:
        size = len(_batch(3, 0))
        for i in range(40):
            log.append(_batch(3, i))
        assert _offsets(log.read_bytes(0, size * 5)) == [0, 3, 6, 9, 12]
        assert _offsets(log.read_bytes(0, size * 5 + size - 1)) == [0, 3, 6, 9, 12]
        assert _offsets(log.read_bytes(4, size - 1)) == [3]
        assert log.read(4, size - 1, min_one_message=False) == []
        # high watermark: only batches wholly below it
        assert _offsets(log.read_bytes(0, 1 << 20, max_offset=9)) == [0, 3, 6]
        assert _offsets(log.read_bytes(0, 1 << 20, max_offset=10)) == [0, 3, 6]
        assert log.read(9, 1 << 20, max_offset=9) == []
        # a large read spans segments and returns every batch exactly once
        everything = log.read(0, 1 << 20)
        assert len(everything) == log.segment_count > 1
        assert _offsets(b"".join(s.read() for s in everything)) == list(range(0, 120, 3))
        with pytest.raises(OffsetOutOfRangeError):
            log.read(121, 10)
    finally:
        log.close()


def test_file_slices_point_at_the_segment_files(tmp_path: Path) -> None:
    log = _open(tmp_path)
    try:
        log.append(_batch(2, 5))
        (piece,) = log.read(0, 1000)
        assert piece.path == tmp_path / f"{0:020d}.log"
        assert piece.position == 0 and piece.size == piece.path.stat().st_size
        assert piece.read() == piece.path.read_bytes()
    finally:
        log.close()


def test_append_rejects_bad_input_and_stays_usable(tmp_path: Path) -> None:
    log = _open(tmp_path, max_message_bytes=300)
    try:
        good = _batch(2, 1)
        corrupt = bytearray(good)
        corrupt[-1] ^= 0xFF
        with pytest.raises(InvalidRecordError) as exc:
            log.append(good + bytes(corrupt))
        assert exc.value.error_code == KafkaErrorCode.CORRUPT_MESSAGE
        with pytest.raises(InvalidRecordError) as exc:
            log.append(_batch(1, 1, size=400))
        assert exc.value.error_code == KafkaErrorCode.MESSAGE_TOO_LARGE
        with pytest.raises(InvalidRecordError):
            log.append(b"")
        assert log.log_end_offset == 0 and log.size_bytes == 0  # nothing of a rejected request is written
        assert log.append(good).base_offset == 0
    finally:
        log.close()


def test_before_write_sees_headers_and_can_veto(tmp_path: Path) -> None:
    log = _open(tmp_path)
    seen: list[int] = []

    def veto(headers: list[object]) -> None:
        seen.append(len(headers))
        raise RuntimeError("duplicate sequence")

    try:
        with pytest.raises(RuntimeError, match="duplicate"):
            log.append(_batch(2, 1) + _batch(3, 1), before_write=veto)
        assert seen == [2] and log.log_end_offset == 0
        info = log.append(_batch(2, 1), before_write=lambda hs: seen.append(len(hs)))
        assert info.last_offset == 1
    finally:
        log.close()


def test_leader_epoch_and_log_append_time_are_written(tmp_path: Path) -> None:
    clock = Clock(5_000_000)
    log = _open(tmp_path, clock, message_timestamp_type="LogAppendTime")
    try:
        info = log.append(_batch(3, 17), leader_epoch=7)
        assert info.log_append_time == 5_000_000 == info.max_timestamp
        data = log.read_bytes(0, 1000)
        header = validate_batch(data)  # CRC rewritten correctly
        assert header.partition_leader_epoch == 7
        assert header.timestamp_type is TimestampType.LOG_APPEND_TIME
        assert header.max_timestamp == 5_000_000
        assert log.offset_for_timestamp(5_000_000) == (0, 5_000_000)
    finally:
        log.close()


def test_offset_for_timestamp_finds_first_record_across_segments(tmp_path: Path) -> None:
    log = _open(tmp_path, segment_bytes=500, index_interval_bytes=60)
    try:
        # batch i has records at 10*i, 10*i+1, 10*i+2
        for i in range(50):
            log.append(_batch(3, 10 * i))
        assert log.segment_count > 3
        assert log.offset_for_timestamp(0) == (0, 0)
        assert log.offset_for_timestamp(1) == (1, 1)
        assert log.offset_for_timestamp(3) == (3, 10)
        assert log.offset_for_timestamp(252) == (77, 252)
        assert log.offset_for_timestamp(491) == (148, 491)
        assert log.offset_for_timestamp(493) is None
        log.close()
        log = _open(tmp_path, segment_bytes=500, index_interval_bytes=60)
        assert log.offset_for_timestamp(252) == (77, 252)
    finally:
        log.close()


def test_offset_for_timestamp_with_out_of_order_timestamps(tmp_path: Path) -> None:
    log = _open(tmp_path, index_interval_bytes=0)
    try:
        for ts in (100, 50, 300, 200, 400):
            log.append(_batch(1, ts))
        assert log.offset_for_timestamp(150) == (2, 300)
        assert log.offset_for_timestamp(60) == (0, 100)
        assert log.offset_for_timestamp(301) == (4, 400)
    finally:
        log.close()


def test_retention_by_time_deletes_old_closed_segments_only(tmp_path: Path) -> None:
    clock = Clock(10_000)
    log = _open(tmp_path, clock, segment_bytes=300, retention_ms=1000)
    try:
        for i in range(12):
            log.append(_batch(1, 1000 + i * 100))
        bases = log.segment_base_offsets
        assert len(bases) >= 4
        clock.now = 1000 + 5 * 100 + 1000 + 1  # batches with timestamp <= 1500 are expired
        deleted = log.apply_retention()
        assert deleted >= 1
        assert log.log_start_offset == log.segment_base_offsets[0]
        for seg_base in bases[:deleted]:
            assert not (tmp_path / f"{seg_base:020d}.log").exists()
        # the first remaining segment holds a batch newer than the cutoff
        first = parse_header(log.read_bytes(log.log_start_offset, 1))
        assert first.base_offset == log.log_start_offset
        with pytest.raises(OffsetOutOfRangeError):
            log.read(0, 100)
        clock.now = 10**12  # everything expired: the active segment still stays
        log.apply_retention()
        assert log.segment_count == 1 and log.log_end_offset == 12
        log.close()
        log = _open(tmp_path, clock, segment_bytes=300, retention_ms=1000)
        assert log.log_start_offset == log.segment_base_offsets[0] and log.log_end_offset == 12
    finally:
        log.close()


def test_retention_by_size(tmp_path: Path) -> None:
    log = _open(tmp_path, segment_bytes=300, retention_bytes=700, retention_ms=None)
    try:
        for i in range(20):
            log.append(_batch(1, i))
        log.apply_retention()
        assert log.size_bytes <= 700 + 300
        assert log.size_bytes - log.size_bytes // log.segment_count < 700 + 300
        assert log.segment_count >= 2
        assert sum(p.stat().st_size for p in tmp_path.glob("*.log")) == log.size_bytes
    finally:
        log.close()


def test_delete_records_before_moves_log_start(tmp_path: Path) -> None:
    log = _open(tmp_path, segment_bytes=300)
    try:
        for i in range(20):
            log.append(_batch(2, i))
        log.delete_records_before(15)
        assert log.log_start_offset == 15
        bases = log.segment_base_offsets
        assert bases[0] <= 15 < bases[1]
        assert _offsets(log.read_bytes(15, 1)) == [14]
        with pytest.raises(OffsetOutOfRangeError):
            log.read(14, 10)
        with pytest.raises(OffsetOutOfRangeError):
            log.delete_records_before(41)
        log.close()
        log = _open(tmp_path, segment_bytes=300)
        assert log.log_start_offset == 15
    finally:
        log.close()


def test_truncate_to_drops_whole_batches_and_appends_continue(tmp_path: Path) -> None:
    log = _open(tmp_path, segment_bytes=400, index_interval_bytes=50)
    try:
        for i in range(30):
            log.append(_batch(2, i))
        log.truncate_to(31)  # inside batch 30-31: the whole batch goes
        assert log.log_end_offset == 30
        assert _offsets(log.read_bytes(0, 1 << 20))[-1] == 28
        log.truncate_to(10)
        assert log.log_end_offset == 10
        assert all(b <= 10 for b in log.segment_base_offsets)
        info = log.append(_batch(2, 99))
        assert info.base_offset == 10
        log.close()
        log = _open(tmp_path, segment_bytes=400, index_interval_bytes=50)
        assert log.log_end_offset == 12
        assert _offsets(log.read_bytes(0, 1 << 20)) == list(range(0, 12, 2))
        log.truncate_to(0)
        assert log.log_end_offset == 0 and log.size_bytes == 0
    finally:
        log.close()


def test_append_replicated_keeps_offsets_and_epochs(tmp_path: Path) -> None:
    leader = _open(tmp_path / "leader")
    follower = _open(tmp_path / "follower")
    try:
        for epoch in (1, 1, 2):
            leader.append(_batch(3, 5), leader_epoch=epoch)
        data = leader.read_bytes(0, 1 << 20)
        follower.append_replicated(data)
        assert follower.read_bytes(0, 1 << 20) == data
        assert follower.log_end_offset == 9
        with pytest.raises(InvalidRecordError, match="below the next offset"):
            follower.append_replicated(data)
        assert [r.value for r in decode_records(follower.read_bytes(6, 1))] == [b"x" * 20] * 3
    finally:
        leader.close()
        follower.close()


def test_flush_policies_append_fine(tmp_path: Path) -> None:
    for policy in (FlushPolicy.EVERY_BATCH, FlushPolicy.interval(5), FlushPolicy.NONE):
        log = _open(tmp_path / policy.mode.value, flush=policy)
        try:
            for i in range(5):
                log.append(_batch(1, i))
            log.flush()
            assert log.log_end_offset == 5
        finally:
            log.close()


def test_from_topic_configs_maps_kafka_names() -> None:
    config = LogConfig.from_topic_configs(
        {
            "segment.bytes": "1048576",
            "segment.ms": "60000",
            "retention.ms": "-1",
            "retention.bytes": "5000",
            "flush.messages": "1",
            "message.timestamp.type": "LogAppendTime",
            "cleanup.policy": "compact",
            "max.message.bytes": "2000",
            "min.insync.replicas": "2",
        }
    )
    assert config.segment_bytes == 1 << 20 and config.segment_ms == 60000
    assert config.retention_ms is None and config.retention_bytes == 5000
    assert config.flush == FlushPolicy.EVERY_BATCH
    assert config.log_append_time and config.cleanup_policy == "compact"
    assert config.max_message_bytes == 2000
    assert LogConfig.from_topic_configs({"flush.ms": "250"}).flush == FlushPolicy.interval(250)
    assert LogConfig.from_topic_configs(config.to_topic_configs()) == config


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("segment.bytes", "12"),
        ("segment.bytes", "lots"),
        ("retention.ms", "-2"),
        ("message.timestamp.type", "WallClock"),
        ("cleanup.policy", "archive"),
        ("no.such.config", "1"),
    ],
)
def test_from_topic_configs_names_the_bad_key(key: str, value: str) -> None:
    with pytest.raises(InvalidConfigError, match=key.replace(".", r"\.")) as exc:
        LogConfig.from_topic_configs({key: value})
    assert exc.value.key == key and exc.value.error_code == 40


def test_max_timestamp_uses_segment_maxima(tmp_path: Path) -> None:
    log = _open(tmp_path, segment_bytes=300)
    try:
        assert log.max_timestamp() is None
        for ts in (500, 900, 100, 700, 300):
            log.append(_batch(3, ts))
        assert log.segment_count > 2
        assert log.max_timestamp() == (5, 902)
        log.close()
        log = _open(tmp_path, segment_bytes=300)
        assert log.max_timestamp() == (5, 902)
    finally:
        log.close()


def test_closed_segments_hold_one_descriptor_each(tmp_path: Path) -> None:
    def open_fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    baseline = open_fds()
    log = _open(tmp_path, segment_bytes=300, index_interval_bytes=40)
    try:
        for i in range(40):
            log.append(_batch(1, i))
        segments = log.segment_count
        assert segments >= 10
        assert open_fds() - baseline == segments + 2  # every .log, plus the active segment's two indexes
        for offset in range(0, 40, 3):  # lookups in old segments load their indexes without keeping fds
            assert parse_header(log.read_bytes(offset, 1)).base_offset == offset
        assert open_fds() - baseline == segments + 2
        log.close()
        log = _open(tmp_path, segment_bytes=300, index_interval_bytes=40)
        assert open_fds() - baseline == segments + 2
    finally:
        log.close()
    assert open_fds() == baseline


def test_slices_of_a_deleted_segment_stay_readable_until_the_next_pass(tmp_path: Path) -> None:
    clock = Clock(10_000)
    log = _open(tmp_path, clock, segment_bytes=300, retention_ms=100)
    try:
        for i in range(10):
            log.append(_batch(1, 9_000 + i))
        (first,) = log.read(0, 1)
        expected = first.read()
        assert log.apply_retention() >= 1
        assert not first.path.exists()
        assert first.read() == expected  # the descriptor outlives the unlink for an in-flight sendfile
        log.apply_retention()
        with pytest.raises(ValueError, match="closed file"):
            first.read()
    finally:
        log.close()


def test_update_config_changes_rolling_and_retention(tmp_path: Path) -> None:
    log = _open(tmp_path)
    try:
        for i in range(5):
            log.append(_batch(1, i))
        assert log.segment_count == 1
        log.update_config(LogConfig.from_topic_configs({"segment.bytes": "200"}, base=log.config))
        for i in range(5):
            log.append(_batch(1, i))
        assert log.segment_count > 2
        assert log.config.segment_bytes == 200
    finally:
        log.close()
