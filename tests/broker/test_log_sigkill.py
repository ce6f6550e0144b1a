"""Durability under SIGKILL: a child process appends with flush=every batch and prints each acknowledged
append; the parent kills it at a random moment, reopens the log, and checks every acknowledged batch is
there byte for byte. Several rounds on the same directory, so recovery also runs on recovered logs.

Run as ``python -m tests.broker.test_log_sigkill <dir> <start-index>`` to be the child.
"""

from __future__ import annotations

import os
import random
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from streamraft_broker.log import FlushPolicy, LogConfig, PartitionLog
from streamraft_broker.records import SimpleRecord, build_batch, parse_header, rewrite_for_append

CONFIG = LogConfig(segment_bytes=64 * 1024, index_interval_bytes=512, flush=FlushPolicy.EVERY_BATCH)
ROUNDS = 4
MAX_APPENDS_PER_ROUND = 400
ROUND_DEADLINE_S = 60.0


def batch_for(i: int) -> bytes:
    """Deterministic content per append index, varying in size so batches straddle segment boundaries."""
    rng = random.Random(i)
    records = [
        SimpleRecord(b"key-%d-%d" % (i, r), rng.randbytes(rng.randint(10, 900)))
        for r in range(rng.randint(1, 5))
    ]
    return build_batch(records, timestamp_ms=1_700_000_000_000 + i)


def child(directory: Path, start: int) -> None:
    log = PartitionLog.open(directory, CONFIG)
    print(f"open {log.log_end_offset}", flush=True)
    for i in range(start, start + 10 * MAX_APPENDS_PER_ROUND):
        info = log.append(batch_for(i))
        print(f"ack {i} {info.base_offset}", flush=True)


def _expected(i: int, base_offset: int) -> bytes:
    raw = bytearray(batch_for(i))
    rewrite_for_append(raw, base_offset, leader_epoch=0, log_append_time=None)
    return bytes(raw)


def _run_round(directory: Path, start: int, kill_after: int) -> dict[int, int]:
    """Start the child, read acks until ``kill_after`` were seen, SIGKILL it."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.broker.test_log_sigkill", str(directory), str(start)],
        stdout=subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[2],
        text=True,
    )
    acked: dict[int, int] = {}
    deadline = time.monotonic() + ROUND_DEADLINE_S
    assert proc.stdout is not None
    try:
        while len(acked) < kill_after and time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stdout], [], [], max(deadline - time.monotonic(), 0))
            if not ready:
                break
            line = proc.stdout.readline()
            if not line:
                break
            parts = line.split()
            if parts[0] == "ack":
                acked[int(parts[1])] = int(parts[2])
    finally:
        # The child keeps appending while we read, so the kill lands at an arbitrary point of a later append.
        os.kill(proc.pid, signal.SIGKILL)
        # Acks printed before the kill but not yet read are acknowledged too.
        rest = proc.stdout.read()
        proc.wait(timeout=30)
    for line in rest.splitlines():
        parts = line.split()
        if parts and parts[0] == "ack":
            acked[int(parts[1])] = int(parts[2])
    assert proc.returncode == -signal.SIGKILL
    return acked


def test_every_acknowledged_batch_survives_sigkill(tmp_path: Path) -> None:
    seed = os.getpid() ^ time.time_ns()
    rng = random.Random(seed)
    acked: dict[int, int] = {}
    start = 0
    for _ in range(ROUNDS):
        round_acks = _run_round(tmp_path, start, rng.randint(20, MAX_APPENDS_PER_ROUND))
        assert round_acks, "the child acknowledged nothing before the deadline"
        acked.update(round_acks)
        start = max(round_acks) + 1
        log = PartitionLog.open(tmp_path, CONFIG)
        try:
            for i, base_offset in acked.items():
                expected = _expected(i, base_offset)
                stored = log.read_bytes(base_offset, 1)
                assert stored == expected, f"append {i} at offset {base_offset} differs (seed {seed})"
            last = max(acked)
            assert log.log_end_offset >= acked[last] + parse_header(batch_for(last)).records_count
        finally:
            log.close()
    assert len(acked) >= ROUNDS * 20


if __name__ == "__main__":
    child(Path(sys.argv[1]), int(sys.argv[2]))
