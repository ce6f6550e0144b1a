"""The per-partition transaction index on a real partition log: the last stable offset is the first offset
of the earliest open transaction, aborted transactions are listed for the fetched range, and a reopened log
rebuilds the same answer from its batch headers."""

from __future__ import annotations

from pathlib import Path

from streamraft_broker.log import LogConfig, PartitionLog
from streamraft_broker.records import SimpleRecord, build_batch
from streamraft_broker.records.batch import parse_header
from streamraft_broker.transactions.markers import ABORT, COMMIT, marker_batch, marker_type
from streamraft_broker.transactions.partition_index import AbortedTxn, PartitionTxnIndex

TS = 1_700_000_000_000


def data(pid: int, seq: int, count: int = 1, *, transactional: bool = True) -> bytes:
    records = [SimpleRecord(None, f"p{pid}-{seq + i}".encode()) for i in range(count)]
    return build_batch(
        records,
        producer_id=pid,
        producer_epoch=0,
        base_sequence=seq,
        is_transactional=transactional,
        timestamp_ms=TS,
    )


def marker(pid: int, commit: bool) -> bytes:
    return marker_batch(pid, 0, commit, coordinator_epoch=0, now_ms=TS)


def test_marker_records_are_kafkas_control_records() -> None:
    raw = marker(5, commit=True)
    header = parse_header(raw)
    assert header.is_control and header.is_transactional
    assert int.from_bytes(raw[21:23], "big") & 0x30 == 0x30, "attributes bits 5 (control) and 4"
    assert (header.producer_id, header.base_sequence) == (5, -1)
    assert marker_type(raw) == COMMIT
    assert marker_type(marker(5, commit=False)) == ABORT


def test_lso_and_aborted_transactions(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path, LogConfig())
    index = PartitionTxnIndex(log)
    log.append(data(-1, -1, 2, transactional=False))  # offsets 0-1: plain records
    assert index.last_stable_offset(log.log_end_offset) == 2
    log.append(data(1, 0, 2))  # 2-3: producer 1 opens
    log.append(data(2, 0))  # 4: producer 2 opens
    log.append(data(1, 2))  # 5
    assert index.last_stable_offset(log.log_end_offset) == 2
    log.append(marker(1, commit=False))  # 6: producer 1 aborts
    assert index.last_stable_offset(log.log_end_offset) == 4, "now producer 2's transaction holds the LSO"
    log.append(marker(2, commit=True))  # 7
    assert index.last_stable_offset(log.log_end_offset) == 8
    assert index.aborted_in(0, 8) == [AbortedTxn(1, 2, 6)]
    assert index.aborted_in(7, 8) == [], "an abort marker before the fetch offset is not listed"
    assert index.aborted_in(0, 2) == [], "a transaction starting at or after the upper bound is not listed"
    log.close()
    reopened = PartitionLog.open(tmp_path, LogConfig())
    rebuilt = PartitionTxnIndex(reopened)
    assert rebuilt.last_stable_offset(reopened.log_end_offset) == 8
    assert rebuilt.aborted_in(0, 8) == [AbortedTxn(1, 2, 6)]
    reopened.close()


def test_open_transaction_survives_reopen(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path, LogConfig())
    log.append(data(3, 0))
    log.append(data(-1, -1, transactional=False))
    log.close()
    reopened = PartitionLog.open(tmp_path, LogConfig())
    assert PartitionTxnIndex(reopened).last_stable_offset(reopened.log_end_offset) == 0
    reopened.close()


def test_a_long_log_is_indexed_a_bounded_chunk_at_a_time(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path, LogConfig())
    for _ in range(5):
        log.append(data(-1, -1, transactional=False))
    log.append(data(9, 0))  # offset 5 opens a transaction
    index = PartitionTxnIndex(log)
    progress = []
    for _ in range(3):
        index.catch_up(max_batches=2)
        progress.append((index.scanned_to, dict(index.open)))
    assert progress == [(2, {}), (4, {}), (6, {9: 5})]
    assert index.last_stable_offset(log.log_end_offset) == 5
    log.close()
