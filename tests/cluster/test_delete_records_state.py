"""DeleteRecords and config changes in a replicated cluster, below the network: the controller commands
that record new log starts and topic configs (applied, snapshotted, replayed as a change) and the partition
storage dropping whole Raft entries before a log start (as retention does, through a snapshot)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from streamraft_broker.controller.commands import AlterConfigs, CreateTopic, DeleteRecords, encode
from streamraft_broker.controller.state import (
    ControllerState,
    changes_between,
)
from streamraft_broker.log.config import LogConfig
from streamraft_broker.log.partition import PartitionLog
from streamraft_broker.records.builder import SimpleRecord, build_batch
from streamraft_broker.replication.partition_storage import PartitionRaftStorage
from streamraft_consensus.core.storage import Compacted
from streamraft_consensus.core.types import ConfState, Entry


def _batch(n: int, tag: str) -> bytes:
    return build_batch([SimpleRecord(key=None, value=f"{tag}{i}".encode()) for i in range(n)], timestamp_ms=1)


def test_delete_records_command_only_moves_log_starts_forward_and_survives_snapshots() -> None:
    state = ControllerState()
    topic_id = uuid.uuid4()
    state.apply(encode(CreateTopic("t", topic_id, ((1, 2, 3), (2, 3, 1)), {})))
    before = ControllerState.from_snapshot(state.to_snapshot())
    change = state.apply(encode(DeleteRecords("t", topic_id, {0: 7, 1: 3})))
    assert change is not None and change.kind == "records_deleted"
    assert state.topics["t"].log_start == {0: 7, 1: 3}
    # Never backwards, and a command for an older incarnation of the name changes nothing.
    assert state.apply(encode(DeleteRecords("t", topic_id, {0: 5}))) is None
    assert state.apply(encode(DeleteRecords("t", uuid.uuid4(), {0: 99}))) is None
    assert state.apply(encode(DeleteRecords("t", topic_id, {5: 99}))) is None  # no such partition
    restored = ControllerState.from_snapshot(state.to_snapshot())
    assert restored.topics["t"].log_start == {0: 7, 1: 3}
    # A broker whose state jumps to that snapshot acts on the new log starts.
    assert [c.kind for c in changes_between(before, restored)] == ["records_deleted"]


def test_retain_before_drops_whole_entries_before_the_batch_holding_the_offset(tmp_path: Path) -> None:
    s = PartitionRaftStorage(
        PartitionLog.open(tmp_path / "log", LogConfig(segment_bytes=200)), tmp_path / "raft"
    )
    # Entry 1 is a new leader's empty entry; entries 2..11 are batches of 3 records: offsets 0..29.
    s.append([Entry(1, 1)] + [Entry(1, i, data=_batch(3, str(i))) for i in range(2, 12)])
    cs = ConfState(voters=(1, 2, 3))
    # Offset 10 is inside the batch at 9..11 (entry 5): entries up to 4 go, the log starts at 9.
    assert s.retain_before(10, applied=11, conf_state=cs) > 0
    assert (s.snapshot_offset, s.log.log_start_offset, s.first_index()) == (9, 9, 5)
    with pytest.raises(Compacted):
        s.entries(4, 5)
    # Never past what is applied here: entry 6 (offsets 12..14) is the last applied, so the log starts at 15.
    assert s.retain_before(25, applied=6, conf_state=cs) > 0
    assert s.snapshot_offset == 15 and s.first_index() == 7
    assert s.retain_before(12, applied=11, conf_state=cs) == 0  # already there
    s.close()
    again = PartitionRaftStorage(
        PartitionLog.open(tmp_path / "log", LogConfig(segment_bytes=200)), tmp_path / "raft"
    )
    assert (again.snapshot_offset, again.first_index(), again.last_index()) == (15, 7, 11)
    assert again.data_range(11) == (27, 30)
    again.close()


def test_alter_configs_command_replaces_a_topics_overrides_and_survives_snapshots() -> None:
    state = ControllerState()
    topic_id = uuid.uuid4()
    state.apply(encode(CreateTopic("t", topic_id, ((1, 2, 3),), {"retention.ms": "1"})))
    before = ControllerState.from_snapshot(state.to_snapshot())
    change = state.apply(encode(AlterConfigs("t", topic_id, {"segment.ms": "5"})))
    assert change is not None and change.kind == "configs"
    assert state.topics["t"].configs == {"segment.ms": "5"}
    assert state.apply(encode(AlterConfigs("t", uuid.uuid4(), {}))) is None  # an older incarnation
    restored = ControllerState.from_snapshot(state.to_snapshot())
    assert [c.kind for c in changes_between(before, restored)] == ["configs"]
