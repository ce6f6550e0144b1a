"""SegmentLog: durability across SIGKILL, torn tails, mid-file corruption, truncation, compaction."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from streamraft_consensus.core.storage import Compacted, Unavailable
from streamraft_consensus.core.types import ConfState, Entry, EntryType, HardState, Snapshot, SnapshotMeta
from streamraft_consensus.storage import CorruptFileError, CorruptLogError, SegmentLog


def payload(index: int, size: int = 100) -> bytes:
    return (f"entry-{index}-".encode() * (size // 8 + 1))[:size]


def make(lo: int, hi: int, term: int = 1) -> list[Entry]:
    return [Entry(term, i, EntryType.NORMAL, payload(i)) for i in range(lo, hi)]


def test_append_read_reopen(tmp_path: Path) -> None:
    log = SegmentLog(tmp_path, segment_bytes=4096)
    log.append(make(1, 201))
    log.set_hard_state(HardState(1, 2, 150))
    log.set_conf_state(ConfState(voters=(1, 2, 3)))
    assert log.needs_sync()
    log.sync()
    assert not log.needs_sync()
    log.close()
    assert len(list(tmp_path.glob("*.seg"))) > 3  # rolled into several segments

    log = SegmentLog(tmp_path, segment_bytes=4096)
    assert (log.first_index(), log.last_index()) == (1, 200)
    assert log.entries(1, 201) == make(1, 201)
    assert log.entries(50, 60) == make(50, 60)
    assert log.term(200) == 1
    hs, cs = log.initial_state()
    assert hs == HardState(1, 2, 150)
    assert cs.voters == (1, 2, 3)
    with pytest.raises(Unavailable):
        log.term(201)
    # max_bytes bounds the result but always returns at least one entry
    assert len(log.entries(1, 201, max_bytes=1)) == 1
    assert len(log.entries(1, 201, max_bytes=3 * 124)) == 3
    log.close()


def test_conflict_truncation(tmp_path: Path) -> None:
    log = SegmentLog(tmp_path, segment_bytes=2048)
    log.append(make(1, 101, term=1))
    log.sync()
    log.append(make(40, 45, term=2))
    log.sync()
    assert log.last_index() == 44
    assert log.entries(38, 45) == make(38, 40, 1) + make(40, 45, 2)
    log.close()
    log = SegmentLog(tmp_path, segment_bytes=2048)
    assert log.last_index() == 44
    assert log.term(44) == 2 and log.term(39) == 1
    with pytest.raises(ValueError, match="gap"):
        log.append(make(50, 51))
    log.close()


def test_snapshot_compaction_and_apply(tmp_path: Path) -> None:
    log = SegmentLog(tmp_path, segment_bytes=2048)
    log.append(make(1, 101))
    log.sync()
    segs_before = len(list(tmp_path.glob("*.seg")))
    snap = log.create_snapshot(80, ConfState(voters=(1,)), b"state@80")
    log.compact(80)
    assert log.first_index() == 81 and log.term(80) == 1
    with pytest.raises(Compacted):
        log.entries(80, 82)
    assert len(list(tmp_path.glob("*.seg"))) < segs_before
    assert log.snapshot() == snap
    log.close()
    log = SegmentLog(tmp_path, segment_bytes=2048)
    assert (log.first_index(), log.last_index()) == (81, 100)
    assert log.entries(81, 101) == make(81, 101)
    # A leader's snapshot far ahead replaces the whole log.
    log.apply_snapshot(Snapshot(SnapshotMeta(500, 3, ConfState(voters=(1, 2))), b"state@500"))
    assert (log.first_index(), log.last_index(), log.term(500)) == (501, 500, 3)
    log.append([Entry(3, 501, EntryType.NORMAL, b"x")])
    log.sync()
    log.close()
    log = SegmentLog(tmp_path)
    assert (log.first_index(), log.last_index()) == (501, 501)
    assert log.snapshot().data == b"state@500"
    assert log.initial_state()[0].commit == 500
    assert log.initial_state()[1].voters == (1, 2)
    log.close()


def test_torn_tail_is_truncated_and_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    log = SegmentLog(tmp_path)
    log.append(make(1, 11))
    log.sync()
    log.close()
    (seg,) = tmp_path.glob("*.seg")
    size = seg.stat().st_size
    full_record = size // 10
    with seg.open("r+b") as f:
        f.truncate(size - 7)  # last record cut short
    with caplog.at_level(logging.WARNING, logger="streamraft.consensus.storage"):
        log = SegmentLog(tmp_path)
    assert log.last_index() == 9
    assert log.entries(1, 10) == make(1, 10)
    lines = [r.getMessage() for r in caplog.records if "torn_tail_truncated" in r.getMessage()]
    assert len(lines) == 1
    assert str(seg) in lines[0] and f"offset={9 * full_record}" in lines[0]
    log.append(make(10, 12))  # the log keeps working after repair
    log.sync()
    log.close()
    assert SegmentLog(tmp_path).entries(1, 12) == make(1, 12)


def test_garbage_tail_is_truncated(tmp_path: Path) -> None:
    log = SegmentLog(tmp_path)
    log.append(make(1, 6))
    log.sync()
    log.close()
    (seg,) = tmp_path.glob("*.seg")
    with seg.open("ab") as f:
        f.write(b"\xff" * 64)
    assert SegmentLog(tmp_path).last_index() == 5


def test_mid_file_corruption_is_a_startup_error(tmp_path: Path) -> None:
    log = SegmentLog(tmp_path)
    log.append(make(1, 11))
    log.sync()
    log.close()
    (seg,) = tmp_path.glob("*.seg")
    record = seg.stat().st_size // 10
    data = bytearray(seg.read_bytes())
    data[4 * record + 30] ^= 0x55  # flip a payload byte inside record 5 of 10
    seg.write_bytes(bytes(data))
    with pytest.raises(CorruptLogError) as err:
        SegmentLog(tmp_path)
    assert err.value.path == seg and err.value.offset == 4 * record
    assert str(seg) in str(err.value) and f"offset {4 * record}" in str(err.value)
    assert seg.stat().st_size == len(data)  # nothing was truncated


def test_corrupt_older_segment_is_an_error_even_at_its_end(tmp_path: Path) -> None:
    log = SegmentLog(tmp_path, segment_bytes=1024)
    log.append(make(1, 40))
    log.sync()
    log.close()
    first = sorted(tmp_path.glob("*.seg"))[0]
    with first.open("r+b") as f:
        f.truncate(first.stat().st_size - 3)
    with pytest.raises(CorruptLogError, match=first.name):
        SegmentLog(tmp_path, segment_bytes=1024)


def test_corrupt_hard_state_is_an_error(tmp_path: Path) -> None:
    log = SegmentLog(tmp_path)
    log.set_hard_state(HardState(5, 1, 0))
    log.sync()
    log.close()
    state = tmp_path / "state"
    data = bytearray(state.read_bytes())
    data[-1] ^= 1
    state.write_bytes(bytes(data))
    with pytest.raises(CorruptFileError, match="CRC"):
        SegmentLog(tmp_path)


def test_hard_state_write_is_atomic(tmp_path: Path) -> None:
    """A crash mid-write leaves a .tmp file behind; the old state must still be read intact."""
    log = SegmentLog(tmp_path)
    log.set_hard_state(HardState(3, 2, 0))
    log.sync()
    log.close()
    (tmp_path / "state.tmp").write_bytes(b"SRHS\x00\x01")  # a half-written replacement
    log = SegmentLog(tmp_path)
    assert log.initial_state()[0] == HardState(3, 2, 0)
    assert not (tmp_path / "state.tmp").exists()
    log.close()


WRITER = r"""
import sys
from streamraft_consensus.core.types import Entry, EntryType, HardState
from streamraft_consensus.storage import SegmentLog
log = SegmentLog(sys.argv[1], segment_bytes=int(sys.argv[2]))
index = log.last_index() + 1
term = int(sys.argv[3])
while True:
    batch = [Entry(term, i, EntryType.NORMAL, (b"%d:" % i) * 20) for i in range(index, index + 7)]
    log.append(batch)
    log.set_hard_state(HardState(term, 1, 0))
    log.sync()
    index += len(batch)
    sys.stdout.write(f"{index - 1}\n")
    sys.stdout.flush()
"""


def _run_and_kill(directory: Path, term: int, min_acks: int) -> int:
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(directory), "8192", str(term)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    acked = 0
    deadline = time.monotonic() + 60
    try:
        while acked < min_acks:
            assert time.monotonic() < deadline, "writer too slow"
            line = proc.stdout.readline()
            assert line, f"writer exited early with {proc.poll()}"
            acked = int(line)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    return acked


def test_sigkill_mid_stream_keeps_every_acknowledged_entry(tmp_path: Path) -> None:
    acked = 0
    for term, round_acks in enumerate([300, 300, 300], start=1):
        acked = _run_and_kill(tmp_path, term, acked + round_acks)
        log = SegmentLog(tmp_path, segment_bytes=8192)
        assert log.last_index() >= acked
        got = log.entries(1, acked + 1)
        assert [e.index for e in got] == list(range(1, acked + 1))
        assert all(e.data == (b"%d:" % e.index) * 20 for e in got)
        assert log.initial_state()[0].term == term
        log.close()
