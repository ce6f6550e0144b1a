"""`__consumer_offsets` on a real compacted PartitionLog: Kafka key/value encodings, offsets and group
metadata reloaded after reopening (also after SIGKILL of the committing process), tombstones honoured.

Run as a module (`python -m tests.broker.test_groups_offsets_store DIR`) it is the committing process."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from kio.schema.errors import ErrorCode
from streamraft_broker.groups import GroupState, JoinRequest, OffsetCommitEntry
from streamraft_broker.groups.codec import (
    CodecError,
    GroupKey,
    OffsetKey,
    StoredGroup,
    StoredMember,
    decode_group_value,
    decode_key,
    decode_offset_value,
    encode_group_key,
    encode_group_value,
    encode_offset_key,
    encode_offset_value,
)
from streamraft_broker.groups.model import CommittedOffset
from streamraft_broker.groups.service import GroupService, offsets_log_dir
from streamraft_broker.records import decode_records


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_700_000_000_000

    def __call__(self) -> int:
        return self.now


def test_offset_key_and_value_match_kafka_layout() -> None:
    key = encode_offset_key(OffsetKey("g", "t", 3))
    # int16 version 1, string "g", string "t", int32 3
    assert key == b"\x00\x01" + b"\x00\x01g" + b"\x00\x01t" + b"\x00\x00\x00\x03"
    value = encode_offset_value(CommittedOffset(42, 5, "meta", 1234))
    assert value[:2] == b"\x00\x03" and len(value) == 2 + 8 + 4 + 2 + 4 + 8
    assert decode_key(key) == OffsetKey("g", "t", 3)
    assert decode_offset_value(value) == CommittedOffset(42, 5, "meta", 1234)
    # v1 values (with an expire timestamp) from older brokers still decode.
    v1 = b"\x00\x01" + (7).to_bytes(8, "big") + b"\x00\x00" + (99).to_bytes(8, "big") + (0).to_bytes(8, "big")
    assert decode_offset_value(v1) == CommittedOffset(7, -1, "", 99)
    with pytest.raises(CodecError, match="truncated"):
        decode_offset_value(value[:-1])
    with pytest.raises(CodecError, match="key version 9"):
        decode_key(b"\x00\x09")


def test_group_value_round_trip() -> None:
    stored = StoredGroup(
        "consumer",
        7,
        "range",
        "m-1",
        55,
        (StoredMember("m-1", None, "c", "/127.0.0.1", 300_000, 45_000, b"sub", b"assign"),),
    )
    assert decode_key(encode_group_key(GroupKey("g"))) == GroupKey("g")
    assert decode_group_value(encode_group_value(stored)) == stored


async def stable_member(coord_service: GroupService, group: str) -> tuple[str, int]:
    coord = coord_service.coordinator
    req = JoinRequest(group, "", "consumer", (("range", b"sub"),), 10_000, 30_000, group_instance_id="i-1")
    joined = await coord.join(req)
    assert joined.error_code == ErrorCode.none
    synced = await coord.sync(group, joined.generation_id, joined.member_id, {joined.member_id: b"p0"})
    assert synced.error_code == ErrorCode.none
    return joined.member_id, joined.generation_id


async def test_offsets_and_group_metadata_survive_reopen(tmp_path: Path) -> None:
    clock = FakeClock()
    service = GroupService.open(tmp_path, clock=clock)
    member, generation = await stable_member(service, "g")
    coord = service.coordinator
    await coord.commit_offsets("g", generation, member, [OffsetCommitEntry("t", 0, 10, "first")])
    await coord.commit_offsets("g", generation, member, [OffsetCommitEntry("t", 0, 25, "second")])
    await coord.commit_offsets("g", generation, member, [OffsetCommitEntry("t", 1, 3)])
    await coord.commit_offsets("manual", -1, "", [OffsetCommitEntry("t", 0, 99)])
    service.close()

    reopened = GroupService.open(tmp_path, clock=clock)
    coord = reopened.coordinator
    fetched = await coord.fetch_offsets("g")
    assert [(p.topic, p.partition, p.offset, p.metadata) for p in fetched.partitions] == [
        ("t", 0, 25, "second"),
        ("t", 1, 3, ""),
    ]
    assert (await coord.fetch_offsets("manual", [("t", 0)])).partitions[0].offset == 99
    group = coord.group("g")
    assert group is not None and group.state is GroupState.STABLE
    assert group.generation_id == generation and group.protocol_name == "range"
    # The member carries on with its generation after the coordinator restarts.
    assert await coord.heartbeat("g", generation, member) == ErrorCode.none
    assert (await coord.sync("g", generation, member, {})).assignment == b"p0"
    # ...and a restarted static member still takes over its slot (as the leader, it gets a rebalance so it
    # can compute assignments again).
    again = await coord.join(
        JoinRequest("g", "", "consumer", (("range", b"sub"),), 10_000, 30_000, group_instance_id="i-1")
    )
    assert again.error_code == ErrorCode.none and again.generation_id == generation + 1
    assert again.member_id != member and again.leader_id == again.member_id
    assert await coord.heartbeat("g", generation, member, "i-1") == ErrorCode.fenced_instance_id
    reopened.close()


async def test_deleted_group_stays_deleted_after_reopen(tmp_path: Path) -> None:
    clock = FakeClock()
    service = GroupService.open(tmp_path, clock=clock)
    coord = service.coordinator
    await coord.commit_offsets("gone", -1, "", [OffsetCommitEntry("t", 0, 5), OffsetCommitEntry("u", 2, 6)])
    await coord.commit_offsets("kept", -1, "", [OffsetCommitEntry("t", 0, 8)])
    assert dict(await coord.delete_groups(["gone"])) == {"gone": ErrorCode.none}
    service.close()

    reopened = GroupService.open(tmp_path, clock=clock)
    coord = reopened.coordinator
    assert (await coord.fetch_offsets("gone")).partitions == ()
    assert coord.group("gone") is None
    assert (await coord.fetch_offsets("kept")).partitions[0].offset == 8
    # The tombstones are in the log as null-valued records, for compaction to act on.
    data = reopened.offsets_log.read_bytes(0, 1 << 20)
    assert data
    reopened.close()
    values = []
    pos = 0
    while pos < len(data):
        size = int.from_bytes(data[pos + 8 : pos + 12], "big") + 12
        values += [r.value for r in decode_records(data[pos : pos + size])]
        pos += size
    assert values.count(None) == 3  # two offsets and the group


async def test_store_is_under_the_data_dir(tmp_path: Path) -> None:
    service = GroupService.open(tmp_path, clock=FakeClock())
    await service.coordinator.commit_offsets("g", -1, "", [OffsetCommitEntry("t", 0, 1)])
    assert service.offsets_log.directory == offsets_log_dir(tmp_path)
    assert service.offsets_log.log_end_offset == 1
    assert service.offsets_log.config.cleanup_policy == "compact"
    service.close()


async def test_failed_write_is_not_acknowledged(tmp_path: Path) -> None:
    service = GroupService.open(tmp_path, clock=FakeClock())
    coord = service.coordinator
    await coord.commit_offsets("g", -1, "", [OffsetCommitEntry("t", 0, 4)])
    service.offsets_log.close()  # the log refuses writes from now on, as during shutdown
    failed = await coord.commit_offsets("g", -1, "", [OffsetCommitEntry("t", 0, 9)])
    assert [r.error_code for r in failed] == [ErrorCode.coordinator_not_available]
    assert (await coord.fetch_offsets("g")).partitions[0].offset == 4, "the failed commit is not visible"


async def test_offsets_of_deleted_topic_are_removed_durably(tmp_path: Path) -> None:
    clock = FakeClock()
    service = GroupService.open(tmp_path, clock=clock)
    coord = service.coordinator
    await coord.commit_offsets(
        "a", -1, "", [OffsetCommitEntry("gone", 0, 1), OffsetCommitEntry("kept", 0, 2)]
    )
    await coord.commit_offsets("b", -1, "", [OffsetCommitEntry("gone", 1, 3)])
    assert coord.delete_topic_offsets("gone") == 2
    service.close()
    reopened = GroupService.open(tmp_path, clock=clock)
    remaining = sorted((g, t, p, o) for g, t, p, o in reopened.coordinator.committed_offsets())
    assert remaining == [("a", "kept", 0, 2)]
    reopened.close()


ROOT = Path(__file__).resolve().parents[2]
COMMITTER_MAX = 100_000


async def committer(data_dir: Path) -> None:
    """Commit ever-increasing offsets for two partitions, printing each one once it is acknowledged."""
    service = GroupService.open(data_dir)
    coord = service.coordinator
    for n in range(1, COMMITTER_MAX):
        result = await coord.commit_offsets("g", -1, "", [OffsetCommitEntry("t", n % 2, n, f"m{n}")])
        assert result[0].error_code == ErrorCode.none
        print(n, flush=True)


def test_acknowledged_commits_survive_sigkill(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.broker.test_groups_offsets_store", str(tmp_path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    acked: list[int] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            acked.append(int(line))
            if len(acked) >= 200:
                break
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert len(acked) >= 200, "the committer died before acknowledging enough commits"

    async def reload() -> dict[int, tuple[int, str]]:
        service = GroupService.open(tmp_path, clock=FakeClock())
        result = await service.coordinator.fetch_offsets("g")
        service.close()
        return {p.partition: (p.offset, p.metadata) for p in result.partitions}

    fetched = asyncio.run(reload())
    for partition in (0, 1):
        newest_acked = max(n for n in acked if n % 2 == partition)
        offset, metadata = fetched[partition]
        # Every acknowledged commit is there (later ones, made before the kill landed, may be too), and
        # offset and metadata come from the same commit.
        assert offset >= newest_acked and offset % 2 == partition and metadata == f"m{offset}"


if __name__ == "__main__":
    asyncio.run(committer(Path(sys.argv[1])))


async def test_concurrent_commits_share_one_disk_write(tmp_path: Path) -> None:
    service = GroupService.open(tmp_path, clock=FakeClock())
    coord = service.coordinator
    results = await asyncio.gather(
        *(coord.commit_offsets(f"g{i}", -1, "", [OffsetCommitEntry("t", 0, i)]) for i in range(50))
    )
    assert all(r[0].error_code == ErrorCode.none for r in results)
    # Commits arriving while a write is pending join the next one: a handful of fsyncs, not fifty.
    assert service.store.records_written == 50 and service.store.writes <= 2
    assert sorted(o for _, _, _, o in coord.committed_offsets()) == list(range(50))
    service.close()


async def test_restored_members_that_never_return_expire(tmp_path: Path) -> None:
    clock = FakeClock()
    service = GroupService.open(tmp_path, clock=clock)
    member, generation = await stable_member(service, "g")
    await service.coordinator.commit_offsets("g", generation, member, [OffsetCommitEntry("t", 0, 5)])
    service.close()

    reopened = GroupService.open(tmp_path, clock=clock)
    coord = reopened.coordinator
    clock.now += 10_000  # the member's session timeout, with no heartbeat since the restart
    coord.tick()
    group = coord.group("g")
    assert group is not None and group.state is GroupState.EMPTY and group.generation_id == generation + 1
    assert (await coord.fetch_offsets("g")).partitions[0].offset == 5, "offsets outlive the members"
    reopened.close()
    again = GroupService.open(tmp_path, clock=clock)
    regrouped = again.coordinator.group("g")
    assert regrouped is not None and regrouped.state is GroupState.EMPTY and not regrouped.members
    again.close()


async def test_offsets_log_is_compacted_as_segments_roll(tmp_path: Path) -> None:
    clock = FakeClock()
    small = {"segment.bytes": "1024"}
    service = GroupService.open(tmp_path, clock=clock, topic_configs=small)
    coord = service.coordinator
    for n in range(120):
        await coord.commit_offsets("g", -1, "", [OffsetCommitEntry("t", n % 2, n)])
    assert service.store.compactions > 0
    written = service.store.records_written
    # Each commit is a ~110-byte batch; compaction keeps about one per key per closed segment.
    assert service.offsets_log.size_bytes < written * 110 // 4
    service.close()
    reopened = GroupService.open(tmp_path, clock=clock, topic_configs=small)
    fetched = await reopened.coordinator.fetch_offsets("g")
    assert [(p.partition, p.offset) for p in fetched.partitions] == [(0, 118), (1, 119)]
    reopened.close()


async def test_commit_larger_than_one_batch_is_split(tmp_path: Path) -> None:
    service = GroupService.open(tmp_path, clock=FakeClock())
    entries = [OffsetCommitEntry("t", p, p, "x" * 40) for p in range(15_000)]  # ~1.5 MB of records
    results = await service.coordinator.commit_offsets("big", -1, "", entries)
    assert {r.error_code for r in results} == {ErrorCode.none}
    assert service.store.writes == 1, "several batches, one fsync"
    service.close()
    reopened = GroupService.open(tmp_path, clock=FakeClock())
    fetched = await reopened.coordinator.fetch_offsets("big")
    assert [p.offset for p in fetched.partitions] == list(range(15_000))
    reopened.close()
