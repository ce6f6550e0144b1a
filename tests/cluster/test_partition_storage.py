"""PartitionRaftStorage: the Raft log of a partition is its Kafka log (one write per produced byte)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from streamraft_broker.log.config import LogConfig
from streamraft_broker.log.partition import PartitionLog
from streamraft_broker.records.batch import iter_batches, parse_header, validate_batch
from streamraft_broker.records.builder import SimpleRecord, build_batch
from streamraft_broker.replication.partition_storage import PartitionRaftStorage, RaftPartitionLogError
from streamraft_consensus.core.storage import Compacted
from streamraft_consensus.core.types import ConfChange, ConfChangeType, ConfState, Entry, EntryType, HardState


def batch(n: int, tag: str = "v") -> bytes:
    records = [SimpleRecord(key=None, value=f"{tag}{i}".encode()) for i in range(n)]
    return build_batch(records, timestamp_ms=1_700_000_000_000)


def conf_entry(term: int, index: int) -> Entry:
    data = ConfChange(((ConfChangeType.ADD_LEARNER, 9),)).encode()
    return Entry(term, index, EntryType.CONF_CHANGE, data)


def open_storage(root: Path, config: LogConfig | None = None) -> PartitionRaftStorage:
    plog = PartitionLog.open(root / "log", config or LogConfig())
    return PartitionRaftStorage(plog, root / "raft")


def kill(storage: PartitionRaftStorage) -> None:
    """What SIGKILL leaves: file descriptors closed, nothing flushed or checkpointed beyond what was."""
    os.close(storage._journal_fd)
    storage.log._closed = True  # never written again; its OS-level writes stay as they are


def test_batches_get_offsets_as_they_reach_the_log_and_raft_entries_take_none(tmp_path: Path) -> None:
    s = open_storage(tmp_path)
    s.append(
        [
            Entry(1, 1),  # a new leader's empty entry
            Entry(1, 2, data=batch(3)),
            conf_entry(1, 3),
            Entry(1, 4, data=batch(2)),
        ]
    )
    assert s.last_index() == 4
    assert s.data_range(2) == (0, 3)
    assert s.data_range(3) is None
    assert s.data_range(4) == (3, 5)
    assert s.log.log_end_offset == 5  # no offset for Raft's own entries: no gap for consumers
    got = s.entries(1, 5)
    assert [e.index for e in got] == [1, 2, 3, 4]
    assert got[2].type == EntryType.CONF_CHANGE
    header = parse_header(got[3].data)
    assert (header.base_offset, header.partition_leader_epoch) == (3, 1)
    validate_batch(got[3].data)  # the CRC still holds: only uncovered fields were rewritten
    # Only the produced batches are in the partition log, stored once.
    stored = s.log.read_bytes(0, 1 << 20)
    assert [h.base_offset for _, h in iter_batches(stored)] == [0, 3]


def test_max_bytes_returns_at_least_one_entry_and_stops_at_the_budget(tmp_path: Path) -> None:
    s = open_storage(tmp_path)
    s.append([Entry(1, 1)] + [Entry(1, i, data=batch(5, str(i))) for i in range(2, 12)])
    one = len(batch(5, "2"))
    assert len(s.entries(2, 12, max_bytes=1)) == 1
    assert len(s.entries(2, 12, max_bytes=3 * (one + 24))) == 3
    assert len(s.entries(1, 12)) == 11


def test_conflicting_suffix_is_cut_from_both_logs_and_new_entries_get_the_freed_offsets(
    tmp_path: Path,
) -> None:
    s = open_storage(tmp_path)
    s.append([Entry(1, 1), Entry(1, 2, data=batch(2)), Entry(1, 3, data=batch(2)), conf_entry(1, 4)])
    s.set_hard_state(HardState(2, 0, 2))
    s.append([Entry(2, 3), Entry(2, 4, data=batch(4, "new"))])
    assert s.last_index() == 4
    assert s.term(3) == 2
    assert s.data_range(4) == (2, 6)
    assert s.log.log_end_offset == 6
    with pytest.raises(ValueError, match="committed"):
        s.append([Entry(3, 2)])
    s.close()
    again = open_storage(tmp_path)
    assert [(e.index, e.term, e.type) for e in again.entries(1, 5)] == [
        (1, 1, EntryType.NORMAL),
        (2, 1, EntryType.NORMAL),
        (3, 2, EntryType.NORMAL),
        (4, 2, EntryType.NORMAL),
    ]
    assert again.data_range(4) == (2, 6)


def test_reopen_after_sigkill_keeps_everything_synced(tmp_path: Path) -> None:
    s = open_storage(tmp_path)
    s.append([Entry(1, 1), Entry(1, 2, data=batch(3)), conf_entry(1, 3), Entry(1, 4, data=batch(1))])
    s.set_hard_state(HardState(1, 1, 4))
    s.sync()
    kill(s)
    again = open_storage(tmp_path)
    assert again.last_index() == 4
    assert again.initial_state()[0] == HardState(1, 1, 0) or again.initial_state()[0].term == 1
    assert again.data_range(4) == (3, 4)
    assert again.entries(3, 4)[0].type == EntryType.CONF_CHANGE


def test_batch_whose_leaders_first_entry_was_lost_is_dropped_with_the_tail(tmp_path: Path) -> None:
    """The journal write of term 2's empty entry did not survive the crash, the batch after it did: the
    batch cannot be placed (its index would be wrong), so it and everything after it go."""
    s = open_storage(tmp_path)
    s.append([Entry(1, 1), Entry(1, 2, data=batch(2))])
    s.sync()
    size = os.path.getsize(tmp_path / "raft" / "entries")
    s.append([Entry(2, 3), Entry(2, 4, data=batch(2, "t2"))])
    s.sync()
    kill(s)
    os.truncate(tmp_path / "raft" / "entries", size)  # the page with the empty entry never reached disk
    again = open_storage(tmp_path)
    assert again.last_index() == 2
    assert again.log.log_end_offset == 2


def test_journal_entry_whose_data_before_it_was_lost_goes(tmp_path: Path) -> None:
    s = open_storage(tmp_path)
    s.append([Entry(1, 1), Entry(1, 2, data=batch(2))])
    s.sync()
    s.append([Entry(1, 3, data=batch(2, "lost")), conf_entry(1, 4)])
    s.sync()
    kill(s)
    # The batch at index 3 did not survive; the configuration change after it (fsynced inline) did.
    s.log.close()
    plog = PartitionLog.open(tmp_path / "log", LogConfig())
    plog.truncate_to(2)
    plog.close()
    again = open_storage(tmp_path)
    assert again.last_index() == 2
    assert again.log.log_end_offset == 2


def test_missing_committed_entries_are_corruption_not_a_silent_truncation(tmp_path: Path) -> None:
    s = open_storage(tmp_path)
    s.append([Entry(1, 1), Entry(1, 2, data=batch(2)), Entry(1, 3, data=batch(2))])
    s.set_hard_state(HardState(1, 1, 3))
    s.set_hard_state(HardState(2, 1, 3))  # a term change writes the commit index too
    s.close()
    plog = PartitionLog.open(tmp_path / "log", LogConfig())
    plog.truncate_to(2)
    plog.close()
    with pytest.raises(RaftPartitionLogError, match="below the durable commit index 3"):
        open_storage(tmp_path)


def test_retention_moves_the_raft_log_start_with_a_snapshot(tmp_path: Path) -> None:
    config = LogConfig(segment_bytes=400, retention_bytes=1)
    s = open_storage(tmp_path, config)
    entries = [Entry(1, 1)] + [Entry(1, i, data=batch(3, str(i))) for i in range(2, 20)]
    s.append(entries)
    segments = s.log.segment_count
    assert segments > 3
    cs = ConfState(voters=(1, 2, 3))
    assert s.retain(applied=5, conf_state=cs) > 0  # only what is applied can go
    assert s.snapshot_offset <= s.offset_after(5)
    first = s.first_index()
    assert first > 1
    assert s.log.log_start_offset == s.snapshot_offset
    with pytest.raises(Compacted):
        s.entries(1, 3)
    snap = s.snapshot()
    assert snap.meta.index == first - 1
    assert snap.meta.conf_state == cs
    assert s.retain(applied=19, conf_state=cs) > 0
    assert s.log.segment_count < segments
    start = s.snapshot_offset
    s.close()
    again = open_storage(tmp_path, config)
    assert again.snapshot_offset == start
    assert again.first_index() == s.first_index()
    assert again.last_index() == 19
    assert again.data_range(19) == (3 * 17, 3 * 18)


def test_installing_a_snapshot_restarts_the_log_at_its_offset(tmp_path: Path) -> None:
    leader = open_storage(tmp_path / "a", LogConfig(segment_bytes=400, retention_bytes=1))
    leader.append([Entry(1, 1)] + [Entry(1, i, data=batch(3, str(i))) for i in range(2, 20)])
    leader.retain(applied=19, conf_state=ConfState(voters=(1, 2, 3)))
    snap = leader.snapshot()
    follower = open_storage(tmp_path / "b")
    follower.append([Entry(1, 1), Entry(1, 2, data=batch(1))])
    follower.apply_snapshot(snap)
    assert follower.first_index() == snap.meta.index + 1
    assert follower.log.log_start_offset == follower.log.log_end_offset == leader.snapshot_offset
    follower.append(leader.entries(snap.meta.index + 1, leader.last_index() + 1))
    assert follower.log.log_end_offset == leader.log.log_end_offset
    assert follower.data_range(19) == leader.data_range(19)


def test_unapplied_batches_are_served_from_memory_and_read_back_alike_once_released(tmp_path: Path) -> None:
    s = open_storage(tmp_path)
    s.append([Entry(1, 1)] + [Entry(1, i, data=batch(2, str(i))) for i in range(2, 6)])
    cached = s.entries(1, 6)
    assert len(s._cache) == 4
    s.release(3)
    assert sorted(s._cache) == [4, 5]
    mixed = s.entries(1, 6)  # 2..3 from the file, 4..5 from memory
    s.release(5)
    assert not s._cache
    from_file = s.entries(1, 6)
    assert cached == mixed == from_file
    s.append([Entry(2, 6, data=batch(1))])
    s.set_hard_state(HardState(2, 0, 5))
    s.append([Entry(3, 6, data=batch(3))])  # a conflict drops the cached entry it replaces
    assert parse_header(s.entries(6, 7)[0].data).last_offset_delta == 2
