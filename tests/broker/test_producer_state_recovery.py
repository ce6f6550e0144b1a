"""Producer state on a real PartitionLog: duplicates answered through the append hook, and state rebuilt
after the writing process is SIGKILLed mid-stream (snapshot + batch headers after it).

Run as a module (`python -m tests.broker.test_producer_state_recovery DIR`) it is the writer process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from kio.schema.errors import ErrorCode
from streamraft_broker.log import LogConfig, PartitionLog
from streamraft_broker.producer.service import DuplicateBatchError, ProducerService, ProducerStateError
from streamraft_broker.producer.snapshot import list_snapshots
from streamraft_broker.records import SimpleRecord, build_batch

ROOT = Path(__file__).resolve().parents[2]
TOPIC = "events"
PRODUCERS = 3
WRITER_MAX_BATCHES = 20_000


def batch(pid: int, seq: int, count: int, epoch: int = 0) -> bytes:
    records = [SimpleRecord(f"k{pid}".encode(), f"{pid}:{seq + i}".encode()) for i in range(count)]
    return build_batch(
        records, producer_id=pid, producer_epoch=epoch, base_sequence=seq, timestamp_ms=1_700_000_000_000
    )


class Node:
    """One partition log plus the producer service, as the broker wires them."""

    def __init__(
        self,
        data_dir: Path,
        *,
        snapshot_every: int = 10_000,
        snapshot_every_offsets: int = 10**6,
        now_ms: int = 1_700_000_000_000,
    ) -> None:
        self.log = PartitionLog.open(data_dir / "logs" / f"{TOPIC}-0", LogConfig(segment_bytes=64 * 1024))
        self.producers = ProducerService(
            data_dir,
            lambda topic, index: self.log if (topic, index) == (TOPIC, 0) else None,
            snapshot_every=snapshot_every,
            snapshot_every_offsets=snapshot_every_offsets,
            clock=lambda: now_ms,
        )

    def produce(self, raw: bytes) -> int:
        """Base offset the client is told (the original one for a duplicate)."""
        try:
            return self.log.append(raw, before_write=self.producers.before_write_hook(TOPIC, 0)).base_offset
        except DuplicateBatchError as dup:
            return dup.base_offset

    def close(self) -> None:
        self.producers.close()
        self.log.close()


def test_duplicate_retry_gets_original_offset_and_nothing_is_appended(tmp_path: Path) -> None:
    node = Node(tmp_path)
    pid, _ = node.producers.init_producer_id()
    assert node.produce(batch(pid, 0, 3)) == 0
    assert node.produce(batch(pid, 3, 2)) == 3
    end = node.log.log_end_offset
    assert node.produce(batch(pid, 0, 3)) == 0
    assert node.produce(batch(pid, 3, 2)) == 3
    assert node.log.log_end_offset == end == 5
    with pytest.raises(ProducerStateError) as gap:
        node.produce(batch(pid, 9, 1))
    assert gap.value.error_code == ErrorCode.out_of_order_sequence_number
    assert node.log.log_end_offset == 5, "a rejected batch is not written"
    node.close()


def test_write_failing_after_the_hook_is_not_recorded(tmp_path: Path) -> None:
    node = Node(tmp_path)
    pid, _ = node.producers.init_producer_id()
    node.produce(batch(pid, 0, 1))
    hook = node.producers.before_write_hook(TOPIC, 0)
    assert hook is not None

    def failing_write(headers: list[object]) -> None:
        hook(headers)
        raise OSError("disk full")  # the append stops after the check, as a failed write would

    with pytest.raises(OSError):
        node.log.append(batch(pid, 1, 1), before_write=failing_write)
    # The retry must be appended, not answered as a duplicate of data that was never written.
    assert node.produce(batch(pid, 1, 1)) == 1
    assert node.log.log_end_offset == 2
    node.close()


def test_state_survives_clean_restart_via_snapshot(tmp_path: Path) -> None:
    node = Node(tmp_path, snapshot_every=3)
    pid, _ = node.producers.init_producer_id()
    for i in range(10):
        node.produce(batch(pid, 2 * i, 2))
    node.close()
    assert list_snapshots(node.log.directory), "a snapshot was written"
    again = Node(tmp_path)
    assert again.produce(batch(pid, 18, 2)) == 18, "retry of the last batch before the restart"
    assert again.log.log_end_offset == 20
    assert again.produce(batch(pid, 20, 1)) == 20
    pid2, _ = again.producers.init_producer_id()
    assert pid2 > pid, "producer ids are not reused after a restart"
    again.close()


def test_plain_appends_also_advance_snapshots(tmp_path: Path) -> None:
    node = Node(tmp_path, snapshot_every_offsets=10)
    pid, _ = node.producers.init_producer_id()
    node.produce(batch(pid, 0, 1))
    plain = build_batch([SimpleRecord(None, b"x")], timestamp_ms=1_700_000_000_000)
    for _ in range(30):
        node.produce(plain)
    newest = max(off for off, _ in list_snapshots(node.log.directory))
    assert newest >= 21, "snapshots follow the log end even without idempotent appends"
    state = node.producers.state(TOPIC, 0)
    assert state is not None and state.map_end_offset == node.log.log_end_offset == 31
    entry = state.entry(pid)
    assert entry is not None and entry.last_sequence == 0
    node.log.close()  # no clean producer shutdown: recovery must start from the periodic snapshot
    again = Node(tmp_path)
    assert again.produce(batch(pid, 0, 1)) == 0, "still recognised as a duplicate"
    assert again.produce(batch(pid, 1, 1)) == 31
    again.close()


def test_producer_outlives_retention_of_its_batches(tmp_path: Path) -> None:
    node = Node(tmp_path)
    pid, _ = node.producers.init_producer_id()
    for seq in range(5):
        node.produce(batch(pid, seq, 1))
    node.close()  # snapshot at offset 5
    log = PartitionLog.open(tmp_path / "logs" / f"{TOPIC}-0", LogConfig(segment_bytes=64 * 1024))
    log.append(build_batch([SimpleRecord(None, b"plain")], timestamp_ms=1_700_000_000_000))
    log.delete_records_before(6)
    log.close()
    again = Node(tmp_path)
    assert again.log.log_start_offset == 6
    assert again.produce(batch(pid, 4, 1)) == 4, "a retry is still recognised after its data is gone"
    with pytest.raises(ProducerStateError):
        again.produce(batch(pid, 9, 1))
    assert again.produce(batch(pid, 5, 1)) == 6
    again.close()


def test_idle_producers_expire_at_snapshot(tmp_path: Path) -> None:
    node = Node(tmp_path)
    pid, _ = node.producers.init_producer_id()
    node.produce(batch(pid, 0, 1))  # batch timestamp 1_700_000_000_000
    node.close()
    kept = Node(tmp_path, now_ms=1_700_000_000_000 + 86_400_000)
    state = kept.producers.state(TOPIC, 0)
    assert state is not None and state.entry(pid) is not None
    kept.close()
    later = Node(tmp_path, now_ms=1_700_000_000_000 + 86_400_001)
    assert later.producers.state(TOPIC, 0) is not None  # the partition is in use again
    later.close()  # the snapshot taken here drops the producer idle for longer than a day
    again = Node(tmp_path)
    state = again.producers.state(TOPIC, 0)
    assert state is not None and state.entry(pid) is None
    again.close()


def writer(data_dir: Path) -> None:
    """Append idempotent batches round-robin for PRODUCERS producers until killed, reporting each append."""
    node = Node(data_dir, snapshot_every=7)
    pids = [node.producers.init_producer_id()[0] for _ in range(PRODUCERS)]
    seqs = dict.fromkeys(pids, 0)
    for n in range(WRITER_MAX_BATCHES):
        pid = pids[n % PRODUCERS]
        count = 1 + n % 3
        base = node.produce(batch(pid, seqs[pid], count))
        seqs[pid] += count
        print(f"{pid} {seqs[pid]} {base}", flush=True)


def test_state_rebuilt_after_sigkill_of_writer(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.broker.test_producer_state_recovery", str(tmp_path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    reported: list[tuple[int, int, int]] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            pid, next_seq, base = map(int, line.split())
            reported.append((pid, next_seq, base))
            if len(reported) >= 150:
                break
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert len(reported) >= 150, "writer died before reporting enough appends"

    node = Node(tmp_path)
    headers = list(node.log.iter_batch_headers(0))
    assert len(headers) >= len(reported), "every reported append is in the log"
    last_by_pid = {h.producer_id: h for h in headers}
    assert len(last_by_pid) == PRODUCERS
    assert list_snapshots(node.log.directory), "the writer snapshotted before it was killed"
    for pid, last in last_by_pid.items():
        count = last.records_count
        # Retrying the last batch in the log is recognised, whatever the writer managed to report.
        assert node.produce(batch(pid, last.base_sequence, count)) == last.base_offset
        end = node.log.log_end_offset
        with pytest.raises(ProducerStateError) as gap:
            node.produce(batch(pid, last.base_sequence + count + 1, 1))
        assert gap.value.error_code == ErrorCode.out_of_order_sequence_number
        assert node.produce(batch(pid, last.base_sequence + count, 1)) == end
    node.close()


if __name__ == "__main__":
    writer(Path(sys.argv[1]))
