"""Idempotent-producer state: duplicates, gaps, epoch fencing, wrap-around, snapshots, id allocation."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kio.schema.errors import ErrorCode
from streamraft_broker.producer import (
    Duplicate,
    Ok,
    ProducerIdAllocator,
    ProducerStateManager,
    Rejected,
    recover,
    take_snapshot,
)
from streamraft_broker.producer.snapshot import list_snapshots
from streamraft_broker.producer.types import MAX_SEQUENCE
from streamraft_broker.records import BatchHeader
from streamraft_broker.records.batch import parse_header
from streamraft_broker.transactions.markers import marker_batch

from tests.support.producer_state import PID, Appender, header


def test_retry_of_appended_batch_returns_original_offsets() -> None:
    log = Appender(ProducerStateManager())
    assert isinstance(log.produce(header(0, 3)), Ok)
    assert isinstance(log.produce(header(3, 2)), Ok)
    dup = log.produce(header(0, 3))
    assert isinstance(dup, Duplicate) and (dup.base_offset, dup.last_offset) == (0, 2)
    dup = log.produce(header(3, 2))
    assert isinstance(dup, Duplicate) and (dup.base_offset, dup.last_offset) == (3, 4)
    assert log.next_offset == 5, "duplicates append nothing"


def test_only_last_five_batches_are_recognised_as_duplicates() -> None:
    log = Appender(ProducerStateManager())
    for i in range(7):
        assert isinstance(log.produce(header(i)), Ok)
    assert isinstance(log.produce(header(2)), Duplicate)
    too_old = log.produce(header(1))
    assert isinstance(too_old, Rejected) and too_old.error_code == ErrorCode.out_of_order_sequence_number


def test_sequence_gap_is_out_of_order() -> None:
    log = Appender(ProducerStateManager())
    log.produce(header(0, 2))
    gap = log.produce(header(3))
    assert isinstance(gap, Rejected) and gap.error_code == ErrorCode.out_of_order_sequence_number
    assert "expected sequence 2" in gap.message
    assert isinstance(log.produce(header(2)), Ok)


def test_epoch_fencing_and_bump() -> None:
    log = Appender(ProducerStateManager())
    log.produce(header(0, epoch=3))
    log.produce(header(1, epoch=3))
    stale = log.produce(header(2, epoch=2))
    assert isinstance(stale, Rejected) and stale.error_code == ErrorCode.invalid_producer_epoch
    bad_bump = log.produce(header(5, epoch=4))
    assert isinstance(bad_bump, Rejected) and bad_bump.error_code == ErrorCode.out_of_order_sequence_number
    assert isinstance(log.produce(header(0, epoch=4)), Ok)
    entry = log.state.entry(PID)
    assert entry is not None and entry.epoch == 4 and entry.last_sequence == 0
    # A retry from the old epoch of a batch it did write is now fenced, not a duplicate.
    old = log.produce(header(1, epoch=3))
    assert isinstance(old, Rejected) and old.error_code == ErrorCode.invalid_producer_epoch


def test_unknown_producer_must_start_at_zero_while_nothing_was_removed() -> None:
    # A producer's first request was refused (this broker was not the leader yet) and its pipelined second
    # one arrives: accepting it would make librdkafka acknowledge the first without it ever being written.
    log = Appender(ProducerStateManager())
    gap = log.produce(header(3, 2))
    assert isinstance(gap, Rejected) and gap.error_code == ErrorCode.out_of_order_sequence_number
    assert "first batch must have sequence 0, got 3" in gap.message
    assert isinstance(log.produce(header(0, 3)), Ok)
    assert isinstance(log.produce(header(3, 2)), Ok)
    assert log.next_offset == 5


def test_expiry_makes_unknown_producers_acceptable_at_any_sequence() -> None:
    state = ProducerStateManager()
    log = Appender(state)
    log.produce(header(0, pid=1))
    assert state.complete
    assert state.remove_expired(1_700_000_000_000 + 101, expiration_ms=100) == [1]
    assert not state.complete, "an unknown producer id may now be one whose state expired"
    assert isinstance(log.produce(header(5, pid=1)), Ok)


def test_unknown_producer_with_nonzero_sequence() -> None:
    lenient = Appender(ProducerStateManager(complete=False))
    assert isinstance(lenient.produce(header(17)), Ok), "2.5+: state may have been removed by retention"
    assert isinstance(lenient.produce(header(18)), Ok)
    strict = Appender(ProducerStateManager(strict_unknown_producer=True))
    refused = strict.produce(header(17))
    assert isinstance(refused, Rejected) and refused.error_code == ErrorCode.unknown_producer_id
    assert isinstance(strict.produce(header(0)), Ok)


def test_sequence_wraps_at_int32_max() -> None:
    # complete=False: states whose earlier history is gone (expired), so the sequence can start near the top.
    log = Appender(ProducerStateManager(complete=False))
    assert isinstance(log.produce(header(MAX_SEQUENCE - 2, 3)), Ok)
    entry = log.state.entry(PID)
    assert entry is not None and entry.last_sequence == MAX_SEQUENCE
    assert isinstance(log.produce(header(0, 2)), Ok)
    # A batch spanning the wrap: MAX-1, MAX, 0, 1 -> last sequence 1.
    wrap = Appender(ProducerStateManager(complete=False))
    wrap.produce(header(MAX_SEQUENCE - 1, 4))
    wrapped = wrap.state.entry(PID)
    assert wrapped is not None and wrapped.last_sequence == 1
    assert isinstance(wrap.produce(header(MAX_SEQUENCE - 1, 4)), Duplicate)
    assert isinstance(wrap.produce(header(2)), Ok)


def test_plain_batches_and_multi_batch_requests() -> None:
    log = Appender(ProducerStateManager())
    assert isinstance(log.produce(header(-1, pid=-1, epoch=-1)), Ok)
    assert len(log.state) == 0
    # Two batches of one producer in one request are checked against each other, in order.
    assert isinstance(log.produce(header(0, 2), header(2, 2)), Ok)
    assert isinstance(log.produce(header(4), header(4)), Rejected)
    entry = log.state.entry(PID)
    assert entry is not None and entry.last_sequence == 3
    assert [(b.base_offset, b.last_offset) for b in entry.batches] == [(1, 2), (3, 4)]


def test_producers_are_independent() -> None:
    log = Appender(ProducerStateManager())
    log.produce(header(0, pid=1))
    log.produce(header(0, pid=2))
    assert isinstance(log.produce(header(1, pid=1)), Ok)
    gap = log.produce(header(5, pid=2))
    assert isinstance(gap, Rejected)


def test_expiry_and_truncation() -> None:
    state = ProducerStateManager()
    log = Appender(state)
    log.produce(header(0, 2, pid=1))  # offsets 0-1
    log.produce(header(2, 2, pid=1))  # offsets 2-3
    log.produce(header(0, pid=2))  # offset 4
    state.truncate_to(2)
    entry = state.entry(1)
    assert entry is not None and entry.last_sequence == 1 and state.entry(2) is None
    assert state.map_end_offset == 2
    ts = 1_700_000_000_000
    assert state.remove_expired(ts + 10, expiration_ms=100) == []
    assert state.remove_expired(ts + 101, expiration_ms=100) == [1]


class HeaderList:
    """A log's batch headers held in memory, offsets assigned, for recovery tests of the pure logic."""

    def __init__(self) -> None:
        self.headers: list[BatchHeader] = []
        self.log_start_offset = 0

    @property
    def log_end_offset(self) -> int:
        return self.headers[-1].next_offset if self.headers else 0

    def add(self, seq: int, count: int = 1, pid: int = PID, epoch: int = 0) -> BatchHeader:
        h = header(seq, count, pid=pid, epoch=epoch, base_offset=self.log_end_offset)
        self.headers.append(h)
        return h

    def iter_batch_headers(self, from_offset: int) -> Iterator[BatchHeader]:
        return iter([h for h in self.headers if h.last_offset >= from_offset])


def test_snapshot_then_replay_rebuilds_state(tmp_path: Path) -> None:
    log = HeaderList()
    live = ProducerStateManager()
    for seq in range(0, 6, 2):
        live.replay(log.add(seq, 2))
    take_snapshot(tmp_path, live)
    for seq in range(6, 12, 3):
        live.replay(log.add(seq, 3, pid=7 if seq == 9 else PID))
    rebuilt = recover(tmp_path, log)
    assert rebuilt.map_end_offset == live.map_end_offset == 12
    for pid in (PID, 7):
        a, b = live.entry(pid), rebuilt.entry(pid)
        assert a is not None and b is not None
        assert (a.epoch, list(a.batches)) == (b.epoch, list(b.batches))
    dup = rebuilt.check([header(6, 3)])
    assert isinstance(dup, Duplicate) and dup.base_offset == 6


def test_recover_ignores_corrupt_and_future_snapshots(tmp_path: Path) -> None:
    log = HeaderList()
    state = ProducerStateManager()
    state.replay(log.add(0, 2))
    take_snapshot(tmp_path, state)
    state.replay(log.add(2, 2))
    newest = take_snapshot(tmp_path, state)
    newest.write_bytes(newest.read_bytes()[:-3] + b"zzz")
    rebuilt = recover(tmp_path, log)
    entry = rebuilt.entry(PID)
    assert entry is not None and entry.last_sequence == 3
    # A snapshot past the log end (log truncated after it was taken) is deleted, not trusted.
    log.headers.pop()
    rebuilt = recover(tmp_path, log)
    entry = rebuilt.entry(PID)
    assert entry is not None and entry.last_sequence == 1
    assert [off for off, _ in list_snapshots(tmp_path)] == [2]


def test_recovered_state_is_complete_only_if_nothing_was_removed(tmp_path: Path) -> None:
    log = HeaderList()
    state = ProducerStateManager()
    state.replay(log.add(0, 2))
    assert recover(tmp_path / "none", log).complete, "no snapshot, log from offset 0: every producer seen"
    take_snapshot(tmp_path / "kept", state)
    assert recover(tmp_path / "kept", log).complete
    state.complete = False  # e.g. a producer expired before this snapshot
    take_snapshot(tmp_path / "expired", state)
    assert not recover(tmp_path / "expired", log).complete
    log.log_start_offset = 1  # retention or DeleteRecords moved the log start
    assert not recover(tmp_path / "none", log).complete
    assert not recover(tmp_path / "kept", log).complete


def test_snapshots_are_pruned(tmp_path: Path) -> None:
    log = HeaderList()
    state = ProducerStateManager()
    for seq in range(5):
        state.replay(log.add(seq))
        take_snapshot(tmp_path, state)
    assert [off for off, _ in list_snapshots(tmp_path)] == [4, 5]


def test_producer_ids_never_reused_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "producer-ids.json"
    first = ProducerIdAllocator(path, block_size=10)
    ids = [first.init_producer_id(None).producer_id for _ in range(3)]
    assert ids == [0, 1, 2]
    again = ProducerIdAllocator(path, block_size=10)
    nxt = again.init_producer_id(None, producer_id=ids[-1], producer_epoch=0)
    assert nxt.producer_id == 10 and nxt.producer_epoch == 0, "the rest of the reserved block is skipped"
    seen = {again.allocate() for _ in range(25)}
    assert len(seen) == 25 and min(seen) == 11
    third = ProducerIdAllocator(path, block_size=10)
    assert third.allocate() > max(seen)


def test_transactional_id_epoch_bump_and_fencing(tmp_path: Path) -> None:
    path = tmp_path / "producer-ids.json"
    alloc = ProducerIdAllocator(path)
    r0 = alloc.init_producer_id("tx")
    r1 = alloc.init_producer_id("tx", r0.producer_id, r0.producer_epoch)
    assert (r1.producer_id, r1.producer_epoch) == (r0.producer_id, 1)
    retry = alloc.init_producer_id("tx", r0.producer_id, r0.producer_epoch)
    assert (retry.producer_id, retry.producer_epoch) == (r1.producer_id, 1), "a retried bump is idempotent"
    fenced = alloc.init_producer_id("tx", r0.producer_id, 99)
    assert fenced.error_code == ErrorCode.producer_fenced
    reopened = ProducerIdAllocator(path)
    r2 = reopened.init_producer_id("tx")
    assert (r2.producer_id, r2.producer_epoch) == (r0.producer_id, 2)


def test_unreadable_id_state_refuses_to_start(tmp_path: Path) -> None:
    path = tmp_path / "producer-ids.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match=r"producer-ids\.json"):
        ProducerIdAllocator(path)


def test_transaction_marker_at_a_bumped_epoch_fences_the_older_producer() -> None:
    log = Appender(ProducerStateManager())
    assert isinstance(log.produce(header(0, epoch=1)), Ok)
    # The coordinator aborted this producer's transaction with its epoch bumped to 2 (a new instance).
    marker = parse_header(marker_batch(PID, 2, False, coordinator_epoch=0, now_ms=1_700_000_000_000))
    assert isinstance(log.produce(marker), Ok)
    zombie = log.produce(header(1, epoch=1))
    assert isinstance(zombie, Rejected) and zombie.error_code == ErrorCode.invalid_producer_epoch
    assert isinstance(log.produce(header(0, epoch=3)), Ok), "the new instance starts its epoch at 0"
