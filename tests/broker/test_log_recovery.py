"""Crash recovery from damaged files: torn and corrupt tails, lost or corrupt indexes, leftovers."""

from __future__ import annotations

import logging
import os
import struct
from pathlib import Path

import pytest
from streamraft_broker.log import LogConfig, PartitionLog
from streamraft_broker.log.checkpoint import write_log_start
from streamraft_broker.records import SimpleRecord, build_batch, iter_batches

CONFIG = LogConfig(segment_bytes=2000, index_interval_bytes=100)


def _batch(i: int) -> bytes:
    return build_batch(
        [SimpleRecord(b"k%d" % i, b"value-%d" % i * 5) for _ in range(2)], timestamp_ms=1000 + i
    )


def _fill(path: Path, count: int, config: LogConfig = CONFIG) -> tuple[PartitionLog, bytes]:
    log = PartitionLog.open(path, config)
    for i in range(count):
        log.append(_batch(i))
    return log, log.read_bytes(0, 1 << 30)


def _abandon(log: PartitionLog) -> None:
    """Simulate a crash: drop the object without the clean-close checkpoint (descriptors closed, no fsync)."""
    for segment in log._segments:
        segment.close()
        segment.close_reader()


def _last_segment(path: Path) -> Path:
    return sorted(path.glob("*.log"))[-1]


def _batch_starts(data: bytes) -> list[int]:
    return [pos for pos, _ in iter_batches(data)]


def _assert_prefix_intact(path: Path, before: bytes, expected_end: int) -> PartitionLog:
    log = PartitionLog.open(path, CONFIG)
    after = log.read_bytes(0, 1 << 30)
    assert log.log_end_offset == expected_end
    assert after == before[: len(after)]
    assert [h.next_offset for _, h in iter_batches(after)][-1] == expected_end
    return log


def test_torn_last_batch_is_truncated_with_a_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    log, before = _fill(tmp_path, 50)
    assert log.segment_count > 2
    _abandon(log)
    last = _last_segment(tmp_path)
    size = last.stat().st_size
    os.truncate(last, size - 7)
    caplog.set_level(logging.WARNING)
    reopened = _assert_prefix_intact(tmp_path, before, 98)
    try:
        line = next(r.getMessage() for r in caplog.records if "event=recovery_truncate" in r.getMessage())
        assert f"file={last}" in line
        tail_start = size - len(_batch(49))
        assert f"position={tail_start}" in line
        assert reopened.recovery_truncations == 1
        assert reopened.append(_batch(99)).base_offset == 98  # appends continue after the cut
    finally:
        reopened.close()


def test_crc_bad_last_batch_is_truncated(tmp_path: Path) -> None:
    log, before = _fill(tmp_path, 30)
    _abandon(log)
    last = _last_segment(tmp_path)
    with open(last, "r+b") as f:
        f.seek(-3, os.SEEK_END)
        byte = f.read(1)
        f.seek(-3, os.SEEK_END)
        f.write(bytes([byte[0] ^ 0x40]))
    _assert_prefix_intact(tmp_path, before, 58).close()


def test_zero_filled_tail_is_truncated(tmp_path: Path) -> None:
    log, before = _fill(tmp_path, 10)
    _abandon(log)
    last = _last_segment(tmp_path)
    with open(last, "ab") as f:
        f.write(b"\x00" * 4096)  # e.g. blocks allocated by the filesystem but never written
    reopened = _assert_prefix_intact(tmp_path, before, 20)
    try:
        assert reopened.read_bytes(0, 1 << 30) == before
    finally:
        reopened.close()


def test_only_the_unflushed_tail_is_scanned(tmp_path: Path) -> None:
    log, _ = _fill(tmp_path, 40)
    log.flush()
    tail = b"".join(_batch(i) for i in range(40, 45))
    for i in range(40, 45):
        log.append(_batch(i))
    before = log.read_bytes(0, 1 << 30)
    _abandon(log)
    reopened = PartitionLog.open(tmp_path, CONFIG)
    try:
        assert reopened.recovery_scanned_bytes == len(tail)
        assert reopened.read_bytes(0, 1 << 30) == before
    finally:
        reopened.close()


def test_corruption_in_an_unflushed_middle_segment_drops_everything_after(tmp_path: Path) -> None:
    log, before = _fill(tmp_path, 60)
    segments = sorted(tmp_path.glob("*.log"))
    assert len(segments) >= 4
    _abandon(log)
    os.remove(tmp_path / "recovery-point.checkpoint")  # nothing known flushed: every segment is scanned
    victim = segments[1]
    starts = _batch_starts(victim.read_bytes())
    with open(victim, "r+b") as f:
        f.seek(starts[2] + 40)
        f.write(b"\xff")
    reopened = PartitionLog.open(tmp_path, CONFIG)
    try:
        assert sorted(tmp_path.glob("*.log")) == segments[:2]
        data = reopened.read_bytes(0, 1 << 30)
        assert data == before[: len(data)]
        assert reopened.log_end_offset == int(victim.name[:20]) + 4
    finally:
        reopened.close()


@pytest.mark.parametrize("damage", ["odd_size", "past_end", "garbage_entries", "deleted"])
def test_corrupt_index_of_an_old_segment_is_rebuilt(
    tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    log, before = _fill(tmp_path, 60)
    log.close()
    index = sorted(tmp_path.glob("*.index"))[1]
    entries = index.stat().st_size // 8
    assert entries >= 3
    if damage == "odd_size":
        with open(index, "ab") as f:
            f.write(b"\x01\x02\x03")
    elif damage == "past_end":
        with open(index, "r+b") as f:
            f.seek((entries - 1) * 8)
            f.write(struct.pack(">II", 5, 10**6))
    elif damage == "garbage_entries":
        with open(index, "r+b") as f:  # plausible-looking but wrong entries the sanity check cannot see
            f.write(struct.pack(">IIII", 1, 7, 2, 9))
    else:
        index.unlink()
    caplog.set_level(logging.WARNING)
    reopened = PartitionLog.open(tmp_path, CONFIG)
    try:
        for offset in range(0, 120):
            batch = reopened.read_bytes(offset, 1)
            (header,) = [h for _, h in iter_batches(batch)]
            assert header.base_offset <= offset <= header.last_offset
        assert reopened.read_bytes(0, 1 << 30) == before
        messages = " ".join(r.getMessage() for r in caplog.records)
        assert "event=index_rebuild" in messages
        assert index.stat().st_size // 8 == entries
    finally:
        reopened.close()


def test_leftovers_are_cleaned_and_interrupted_retention_completes(tmp_path: Path) -> None:
    log, _ = _fill(tmp_path, 60)
    bases = log.segment_base_offsets
    log.close()
    (tmp_path / f"{bases[0]:020d}.log.cleaned").write_bytes(b"partial")
    (tmp_path / f"{bases[0]:020d}.log.swap").write_bytes(b"partial")
    (tmp_path / "recovery-point.checkpoint.tmp").write_bytes(b"partial")
    write_log_start(tmp_path, bases[2] + 1)  # crash after the checkpoint, before the unlinks
    reopened = PartitionLog.open(tmp_path, CONFIG)
    try:
        assert reopened.segment_base_offsets == bases[2:]
        assert reopened.log_start_offset == bases[2] + 1
        assert not list(tmp_path.glob("*.cleaned")) and not list(tmp_path.glob("*.swap"))
        assert not list(tmp_path.glob("*.tmp"))
        assert not (tmp_path / f"{bases[0]:020d}.index").exists()
    finally:
        reopened.close()


def test_recovery_scan_handles_batches_straddling_read_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log, before = _fill(tmp_path, 40, LogConfig(segment_bytes=1 << 20, index_interval_bytes=100))
    _abandon(log)
    os.remove(tmp_path / "recovery-point.checkpoint")
    batch = len(_batch(0))
    # Chunks smaller than one batch and chunks that end mid-batch both have to work.
    for chunk in (batch // 3, batch * 2 + batch // 2):
        monkeypatch.setattr("streamraft_broker.log.segment.SCAN_CHUNK", chunk)
        reopened = PartitionLog.open(tmp_path, LogConfig(segment_bytes=1 << 20, index_interval_bytes=100))
        try:
            assert reopened.recovery_scanned_bytes == len(before)
            assert reopened.recovery_truncations == 0
            assert reopened.read_bytes(0, 1 << 30) == before
        finally:
            _abandon(reopened)
            os.remove(tmp_path / "recovery-point.checkpoint")
