"""The log cleaner's pure decisions (which segments, dirty ratio, compaction lags, tombstone expiry) and its
work on a real PartitionLog (batch rewrite with offsets preserved, CRCs valid, tombstones removed only
delete.retention.ms after their segment was first cleaned, the checkpoint surviving a reopen)."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamraft_broker.log import LogConfig, PartitionLog
from streamraft_broker.log.cleaner import (
    CleanedMark,
    CleanerState,
    PassStats,
    SegmentInfo,
    clean_now,
    clean_steps,
    cleanable_count,
    dirty_ratio,
    plan_pass,
    segment_infos,
    tombstones_due,
)
from streamraft_broker.records import SimpleRecord, build_batch, decode_records, parse_header
from streamraft_broker.records.batch import validate_batch

DAY = 86_400_000


def _info(base: int, end: int, size: int, ts: int) -> SegmentInfo:
    return SegmentInfo(base, end, size, ts, ts)


SEGMENTS = [
    _info(0, 10, 100, 1_000),
    _info(10, 20, 100, 2_000),
    _info(20, 30, 100, 3_000),
    _info(30, 31, 5, 4_000),
]


def test_only_closed_segments_older_than_the_min_compaction_lag_are_cleanable() -> None:
    assert cleanable_count(SEGMENTS, 10_000, LogConfig()) == 3  # never the active (last) segment
    assert cleanable_count(SEGMENTS, 10_000, LogConfig(min_compaction_lag_ms=8_500)) == 1
    assert cleanable_count(SEGMENTS, 10_000, LogConfig(min_compaction_lag_ms=9_500)) == 0
    # Replicated: only segments wholly below the high watermark (committed and applied here).
    assert cleanable_count(SEGMENTS, 10_000, LogConfig(), limit=25) == 2


def test_dirty_ratio_counts_the_bytes_past_the_clean_offset() -> None:
    assert dirty_ratio(SEGMENTS[:3], 0) == (300, 300)
    assert dirty_ratio(SEGMENTS[:3], 20) == (100, 300)
    assert dirty_ratio(SEGMENTS[:3], 30) == (0, 300)


def test_a_pass_runs_once_the_dirty_ratio_exceeds_the_minimum() -> None:
    config = LogConfig(min_cleanable_dirty_ratio=0.5)
    ratio, plan = plan_pass(SEGMENTS, CleanerState(clean_offset=20), 10_000, config)
    assert ratio == pytest.approx(1 / 3) and plan is None
    ratio, plan = plan_pass(SEGMENTS, CleanerState(clean_offset=10), 10_000, config)
    assert ratio == pytest.approx(2 / 3) and plan is not None
    assert plan.bases == (0, 10, 20) and plan.end_offset == 30 and plan.reason == "dirty_ratio"
    assert plan.dirty_from == 1
    # Strictly above: at exactly the minimum (here 2/3) nothing runs; min.cleanable.dirty.ratio=1 never runs.
    assert (
        plan_pass(
            SEGMENTS, CleanerState(clean_offset=10), 10_000, LogConfig(min_cleanable_dirty_ratio=2 / 3)
        )[1]
        is None
    )
    assert plan_pass(SEGMENTS, CleanerState(), 10_000, LogConfig(min_cleanable_dirty_ratio=1.0))[1] is None


def test_max_compaction_lag_forces_a_pass_below_the_ratio() -> None:
    config = LogConfig(min_cleanable_dirty_ratio=0.9, max_compaction_lag_ms=5_000)
    # First dirty segment (base 20) holds records from t=3000: 7000 ms old at t=10000.
    _, plan = plan_pass(SEGMENTS, CleanerState(clean_offset=20), 10_000, config)
    assert plan is not None and plan.reason == "max_compaction_lag"
    _, plan = plan_pass(SEGMENTS, CleanerState(clean_offset=20), 7_000, config)
    assert plan is None


def test_tombstones_are_due_delete_retention_after_their_segment_was_first_cleaned() -> None:
    assert not tombstones_due(None, 10_000, 100)
    assert not tombstones_due(CleanedMark(9_950, True), 10_000, 100)
    assert tombstones_due(CleanedMark(9_900, True), 10_000, 100)
    assert not tombstones_due(CleanedMark(0, False), 10_000, 100)
    clean = CleanerState(clean_offset=30, marks={10: CleanedMark(9_900, True)})
    _, plan = plan_pass(SEGMENTS, clean, 10_000, LogConfig(delete_retention_ms=100))
    assert plan is not None and plan.reason == "tombstones_due"
    _, plan = plan_pass(SEGMENTS, clean, 10_000, LogConfig(delete_retention_ms=200))
    assert plan is None


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000

    def __call__(self) -> int:
        return self.now


def _append(log: PartitionLog, records: list[tuple[bytes, bytes | None]], ts: int, *, pid: int = -1) -> None:
    batch = build_batch(
        [SimpleRecord(k, v, (), i, 0) for i, (k, v) in enumerate(records)],
        timestamp_ms=ts,
        producer_id=pid,
        producer_epoch=0 if pid >= 0 else -1,
        base_sequence=0 if pid >= 0 else -1,
    )
    log.append(batch)


def _records(log: PartitionLog) -> list[tuple[int, bytes | None, bytes | None]]:
    data = log.read_bytes(log.log_start_offset, 1 << 24)
    out: list[tuple[int, bytes | None, bytes | None]] = []
    pos = 0
    while pos < len(data):
        header = validate_batch(data, pos)  # CRC and sizes of every rewritten batch
        for r in decode_records(data[pos : pos + header.size]):
            out.append((header.base_offset + r.offset_delta, r.key, r.value))
        pos += header.size
    return out


def _clean(log: PartitionLog, state: CleanerState, now: int, *, keep_every_batch: bool = False) -> PassStats:
    _, plan = plan_pass(segment_infos(log), state, now, log.config)
    if plan is None:
        return PassStats()
    return clean_now(log, plan, state, now, keep_every_batch=keep_every_batch)


def test_cleaning_keeps_the_latest_record_per_key_with_offsets_and_the_end_offset_preserved(
    tmp_path: Path,
) -> None:
    clock = Clock()
    config = LogConfig(segment_bytes=400, cleanup_policy="compact", delete_retention_ms=DAY)
    log = PartitionLog.open(tmp_path / "p", config, now_ms=clock)
    for i in range(40):
        _append(log, [(b"k%d" % (i % 4), b"v%d" % i)], clock.now + i)
    _append(log, [(b"k0", None)], clock.now + 50)  # a tombstone for k0
    for i in range(40, 60):
        _append(log, [(b"k%d" % (1 + i % 3), b"v%d" % i)], clock.now + i)
    before = _records(log)
    end = log.log_end_offset
    assert log.segment_count > 3
    state = CleanerState()
    stats = _clean(log, state, clock.now)
    assert stats.completed and stats.records_removed > 0
    after = _records(log)
    assert log.log_end_offset == end
    offsets = [o for o, _k, _v in after]
    assert offsets == sorted(set(offsets))
    # Every surviving record is unchanged at its original offset.
    assert set(after) <= set(before)
    active_base = log.segment_base_offsets[-1]
    cleaned_keys = [k for o, k, _v in after if o < active_base]
    assert len(cleaned_keys) == len(set(cleaned_keys))
    # Replaying the compacted log gives the same state as replaying the full history.
    assert _replay(after) == _replay(before)
    # The tombstone stays (retention not reached), and a pass right after changes nothing.
    assert (40, b"k0", None) in after
    assert _clean(log, state, clock.now).records_removed == 0
    log.close()


def _replay(records: list[tuple[int, bytes | None, bytes | None]]) -> dict[bytes, bytes]:
    state: dict[bytes, bytes] = {}
    for _o, k, v in records:
        assert k is not None
        if v is None:
            state.pop(k, None)
        else:
            state[k] = v
    return state


def test_tombstones_go_only_delete_retention_ms_after_their_first_cleaning_and_the_checkpoint_persists(
    tmp_path: Path,
) -> None:
    clock = Clock()
    config = LogConfig(segment_bytes=300, cleanup_policy="compact", delete_retention_ms=5_000)
    log = PartitionLog.open(tmp_path / "p", config, now_ms=clock)
    _append(log, [(b"a", b"1"), (b"b", b"1")], clock.now)
    _append(log, [(b"a", None)], clock.now)
    for i in range(20):
        _append(log, [(b"c", b"%d" % i)], clock.now)
    state = CleanerState()
    assert _clean(log, state, clock.now).completed
    assert (2, b"a", None) in _records(log)
    log.close()
    clock.now += 4_999
    log = PartitionLog.open(tmp_path / "p", config, now_ms=clock)
    state = CleanerState.load(log.directory)
    assert state.clean_offset > 2 and state.marks
    assert _clean(log, state, clock.now).tombstones_removed == 0
    clock.now += 1
    stats = _clean(log, state, clock.now)
    assert stats.tombstones_removed == 1
    keys = [k for _o, k, _v in _records(log)]
    assert b"a" not in keys and b"b" in keys
    log.close()


def test_an_idempotent_batch_that_loses_every_record_stays_as_an_empty_batch(tmp_path: Path) -> None:
    clock = Clock()
    log = PartitionLog.open(
        tmp_path / "p", LogConfig(segment_bytes=200, cleanup_policy="compact"), now_ms=clock
    )
    _append(log, [(b"x", b"old1"), (b"x", b"old2")], clock.now, pid=7)
    for i in range(12):
        _append(log, [(b"x", b"new%d" % i)], clock.now)
    state = CleanerState()
    assert _clean(log, state, clock.now).completed
    headers = list(log.iter_batch_headers(0))
    first = headers[0]
    assert (first.base_offset, first.last_offset, first.records_count, first.producer_id) == (0, 1, 0, 7)
    assert parse_header(log.read_bytes(0, 1 << 20)).last_offset == 1
    log.close()


def test_a_raft_log_keeps_one_batch_per_entry_when_cleaned(tmp_path: Path) -> None:
    """Replicated partitions: every batch survives (emptied ones as empty batches with the same offsets and
    leader epoch), so Raft entry i is still the batch at the same offset."""
    clock = Clock()
    log = PartitionLog.open(
        tmp_path / "p", LogConfig(segment_bytes=300, cleanup_policy="compact"), now_ms=clock
    )
    for i in range(30):
        _append(log, [(b"k", b"%d" % i), (b"j%d" % (i % 2), b"x")], clock.now)
    before = [(h.base_offset, h.last_offset, h.partition_leader_epoch) for h in log.iter_batch_headers(0)]
    state = CleanerState()
    stats = _clean(log, state, clock.now, keep_every_batch=True)
    assert stats.completed and stats.records_removed > 0
    headers = list(log.iter_batch_headers(0))
    assert [(h.base_offset, h.last_offset, h.partition_leader_epoch) for h in headers] == before
    assert any(h.records_count == 0 and h.producer_id == -1 for h in headers)
    _records(log)  # every batch, empty ones included, passes its CRC check
    log.close()


def test_transactional_batches_are_left_whole_and_supersede_nothing(tmp_path: Path) -> None:
    """Without the aborted-transaction index, a later transactional value might be aborted: the earlier
    value must stay, and the transactional batch itself is not rewritten."""
    clock = Clock()
    log = PartitionLog.open(
        tmp_path / "p", LogConfig(segment_bytes=200, cleanup_policy="compact"), now_ms=clock
    )
    _append(log, [(b"t", b"committed")], clock.now)
    txn = build_batch(
        [SimpleRecord(b"t", b"maybe-aborted", (), 0, 0), SimpleRecord(b"t", b"again", (), 1, 0)],
        timestamp_ms=clock.now,
        producer_id=9,
        producer_epoch=0,
        base_sequence=0,
        is_transactional=True,
    )
    log.append(txn)
    for i in range(10):
        _append(log, [(b"other", b"%d" % i)], clock.now)
    assert _clean(log, CleanerState(), clock.now).completed
    records = _records(log)
    assert (0, b"t", b"committed") in records
    assert (1, b"t", b"maybe-aborted") in records and (2, b"t", b"again") in records
    log.close()


def test_a_bounded_key_map_cleans_in_several_passes_to_the_same_log(tmp_path: Path) -> None:
    """With room for one segment's keys per pass, each pass maps the next dirty segment and cleans up to
    it; the passes end with the log one unbounded pass gives."""
    clock = Clock()
    config = LogConfig(segment_bytes=400, cleanup_policy="compact", min_cleanable_dirty_ratio=0.01)
    logs = [PartitionLog.open(tmp_path / name, config, now_ms=clock) for name in ("bounded", "unbounded")]
    for log in logs:
        for i in range(80):
            _append(log, [(b"k%d" % (i % 7), b"v%d" % i), (b"u%d" % i, b"once")], clock.now)
    bounded, unbounded = logs
    assert _clean(unbounded, CleanerState(), clock.now).completed
    state = CleanerState()
    passes = 0
    while passes < 100:
        _, plan = plan_pass(segment_infos(bounded), state, clock.now, bounded.config)
        if plan is None:
            break
        assert clean_now(bounded, plan, state, clock.now, max_map_bytes=1).completed
        passes += 1
    assert passes > 2
    assert _records(bounded) == _records(unbounded)
    for log in logs:
        log.close()


def test_a_pass_stops_when_its_segments_leave_the_log_meanwhile(tmp_path: Path) -> None:
    """DeleteRecords (or retention) may remove segments while a pass waits for its swap: the pass ends
    without touching them, leaves no .cleaned file and does not move the clean offset."""
    clock = Clock()
    config = LogConfig(segment_bytes=300, cleanup_policy="compact", min_cleanable_dirty_ratio=0.01)
    log = PartitionLog.open(tmp_path / "p", config, now_ms=clock)
    for i in range(60):
        _append(log, [(b"k%d" % (i % 3), b"v%d" % i)], clock.now)
    state = CleanerState()
    _, plan = plan_pass(segment_infos(log), state, clock.now, log.config)
    assert plan is not None and len(plan.bases) > 3
    stats = PassStats()
    steps = clean_steps(log, plan, state, clock.now, stats)
    step = next(steps)
    while step is None:
        step = next(steps)
    assert step.segment.base_offset == plan.bases[0]
    fresh = log.replace_cleaned(step.segment, step.cleaned)
    assert fresh is not None
    log.delete_records_before(plan.bases[2])  # the first two segments go, the second not yet cleaned
    with pytest.raises(StopIteration):
        steps.send(fresh)
    assert not stats.completed and state.clean_offset == 0
    assert not list(log.directory.glob("*.cleaned"))
    assert log.segment_base_offsets[0] == plan.bases[2]
    log.close()


def test_replaced_segments_release_their_descriptors_after_a_delay(tmp_path: Path) -> None:
    """A cleaned segment's old file stays readable for FileSlices already handed out, then its descriptor
    is closed (frequent cleaning must not pile up open files until the next retention pass)."""
    clock = Clock()
    log = PartitionLog.open(
        tmp_path / "p", LogConfig(segment_bytes=300, cleanup_policy="compact"), now_ms=clock
    )
    for i in range(40):
        _append(log, [(b"k%d" % (i % 2), b"v%d" % i)], clock.now)
    old = log.closed_segments()
    handed_out = log.read(0, 1 << 20)[0]
    stats = _clean(log, CleanerState(), clock.now)
    assert stats.segments_rewritten == len(old) > 1
    assert log.release_swapped(60_000) == 0
    assert handed_out.read()  # still readable from the replaced file
    clock.now += 60_000
    assert log.release_swapped(60_000) == len(old)
    assert all(s.reader.closed for s in old)
    assert not any(s.reader.closed for s in log.closed_segments())
    log.close()
