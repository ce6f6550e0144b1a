"""The leader-epoch cache (partitionLeaderEpoch, later the Raft term): OffsetForLeaderEpoch answers,
truncation, persistence and rebuilding after loss or a crash."""

from __future__ import annotations

import shutil
from pathlib import Path

from streamraft_broker.log import LogConfig, PartitionLog
from streamraft_broker.log.epochs import FILE_NAME
from streamraft_broker.records import SimpleRecord, build_batch

CONFIG = LogConfig(segment_bytes=500, index_interval_bytes=64)


def _batch(n: int = 2) -> bytes:
    return build_batch([SimpleRecord(None, b"v" * 30) for _ in range(n)], timestamp_ms=7)


def _fill(log: PartitionLog, epochs: list[int]) -> None:
    for epoch in epochs:
        log.append(_batch(), leader_epoch=epoch)


def test_end_offset_for_epoch_follows_kafka_rules(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path, CONFIG)
    try:
        assert log.end_offset_for_epoch(0) == (-1, -1)
        _fill(log, [2, 2, 3, 3, 3, 7])  # epoch 2 at 0, 3 at 4, 7 at 10; log end 12
        assert log.epoch_entries() == [(2, 0), (3, 4), (7, 10)]
        assert log.latest_epoch == 7
        assert log.end_offset_for_epoch(7) == (7, 12)
        assert log.end_offset_for_epoch(3) == (3, 10)
        assert log.end_offset_for_epoch(5) == (3, 10)  # unknown epoch between: the previous one's end
        assert log.end_offset_for_epoch(1) == (1, 0)  # before the earliest: where the earliest starts
        assert log.end_offset_for_epoch(8) == (-1, -1)
        log.append(_batch(), leader_epoch=5)  # an older epoch never goes back into the cache
        assert log.epoch_entries() == [(2, 0), (3, 4), (7, 10)]
        header = log.batch_header_at(5)
        assert header is not None and (header.base_offset, header.partition_leader_epoch) == (4, 3)
        last = log.last_batch_header()
        assert last is not None and (last.base_offset, last.partition_leader_epoch) == (12, 5)
        assert log.batch_header_at(14) is None
    finally:
        log.close()


def test_truncation_forgets_later_epochs_and_persists(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path, CONFIG)
    _fill(log, [1, 1, 2, 4, 4])
    log.truncate_to(6)
    assert log.epoch_entries() == [(1, 0), (2, 4)]
    log.append(_batch(), leader_epoch=5)
    log.close()
    log = PartitionLog.open(tmp_path, CONFIG)
    try:
        assert log.epoch_entries() == [(1, 0), (2, 4), (5, 6)]
        log.truncate_to(0)
        assert log.epoch_entries() == [] and log.latest_epoch is None
    finally:
        log.close()


def test_lost_cache_is_rebuilt_from_batch_headers(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path, CONFIG)
    _fill(log, [1, 3, 3, 6, 6, 6, 9])
    expected = log.epoch_entries()
    log.close()
    (tmp_path / FILE_NAME).unlink()
    log = PartitionLog.open(tmp_path, CONFIG)
    try:
        assert log.epoch_entries() == expected == [(1, 0), (3, 2), (6, 6), (9, 12)]
    finally:
        log.close()


def test_crash_with_a_stale_cache_recovers_epochs_from_the_tail(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path, CONFIG)
    _fill(log, [1, 1, 2])
    log.flush()
    stale = tmp_path / "stale"
    shutil.copy(tmp_path / FILE_NAME, stale)
    _fill(log, [2, 4, 4])
    for segment in log._segments:
        segment.close()
        segment.close_reader()
    shutil.copy(stale, tmp_path / FILE_NAME)  # as if the last epoch change never reached the disk
    stale.unlink()
    log = PartitionLog.open(tmp_path, CONFIG)
    try:
        assert log.epoch_entries() == [(1, 0), (2, 4), (4, 8)]
    finally:
        log.close()


def test_replicated_batches_carry_their_epochs(tmp_path: Path) -> None:
    leader = PartitionLog.open(tmp_path / "leader", CONFIG)
    follower = PartitionLog.open(tmp_path / "follower", CONFIG)
    try:
        _fill(leader, [3, 3, 8])
        follower.append_replicated(leader.read_bytes(0, 1 << 20))
        assert follower.epoch_entries() == leader.epoch_entries() == [(3, 0), (8, 4)]
    finally:
        leader.close()
        follower.close()
