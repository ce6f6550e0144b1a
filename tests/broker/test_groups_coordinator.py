"""Group coordinator state machine: join/sync/heartbeat/leave/expiry sequences driven by a fake clock."""

from __future__ import annotations

import asyncio
import time

import pytest
from kio.schema.errors import ErrorCode
from streamraft_broker.groups import (
    GroupConfig,
    GroupCoordinator,
    GroupState,
    JoinRequest,
    JoinResult,
    MemberIdentity,
    OffsetCommitEntry,
)

SESSION_MS = 10_000
REBALANCE_MS = 30_000
RANGE = (("range", b"range-meta"),)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000

    def __call__(self) -> int:
        return self.now

    def advance(self, ms: int) -> None:
        self.now += ms


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def coord(clock: FakeClock) -> GroupCoordinator:
    return GroupCoordinator(clock=clock)


def request(
    member_id: str = "",
    *,
    group: str = "g",
    protocols: tuple[tuple[str, bytes], ...] = RANGE,
    instance: str | None = None,
    session_ms: int = SESSION_MS,
    client_id: str = "client",
) -> JoinRequest:
    return JoinRequest(
        group_id=group,
        member_id=member_id,
        protocol_type="consumer",
        protocols=protocols,
        session_timeout_ms=session_ms,
        rebalance_timeout_ms=REBALANCE_MS,
        group_instance_id=instance,
        client_id=client_id,
    )


def done(fut: asyncio.Future[JoinResult]) -> JoinResult:
    assert fut.done(), "join should have been answered"
    return fut.result()


async def new_member_id(coord: GroupCoordinator, group: str = "g") -> str:
    first = await coord.join(request(group=group))
    assert first.error_code == ErrorCode.member_id_required
    assert first.member_id.startswith("client-")
    return first.member_id


async def single_member_stable(coord: GroupCoordinator) -> str:
    mid = await new_member_id(coord)
    joined = done(coord.join_nowait(request(mid)))
    assert joined.error_code == ErrorCode.none and joined.leader_id == mid
    synced = await coord.sync("g", joined.generation_id, mid, {mid: b"all"})
    assert synced.error_code == ErrorCode.none and synced.assignment == b"all"
    return mid


async def test_first_member_gets_id_then_leads_generation_one(coord: GroupCoordinator) -> None:
    mid = await new_member_id(coord)
    group = coord.group("g")
    assert group is not None and group.state is GroupState.EMPTY and not group.members
    joined = done(coord.join_nowait(request(mid)))
    assert joined.generation_id == 1
    assert joined.protocol_name == "range" and joined.protocol_type == "consumer"
    assert [m.member_id for m in joined.members] == [mid]
    assert joined.members[0].metadata == b"range-meta"
    assert group.state is GroupState.COMPLETING_REBALANCE
    synced = await coord.sync("g", 1, mid, {mid: b"p0,p1"})
    assert synced.assignment == b"p0,p1"
    assert group.state is GroupState.STABLE
    assert await coord.heartbeat("g", 1, mid) == ErrorCode.none


async def test_second_member_triggers_rebalance_and_both_get_assignments(coord: GroupCoordinator) -> None:
    a = await single_member_stable(coord)
    b = await new_member_id(coord)
    b_join = coord.join_nowait(request(b))
    assert not b_join.done(), "b must wait until a rejoins"
    assert await coord.heartbeat("g", 1, a) == ErrorCode.rebalance_in_progress
    a_join = coord.join_nowait(request(a))
    ra, rb = done(a_join), done(b_join)
    assert ra.generation_id == rb.generation_id == 2
    assert ra.leader_id == rb.leader_id == a
    assert {m.member_id for m in ra.members} == {a, b}
    assert rb.members == (), "only the leader receives member metadata"
    b_sync = coord.sync_nowait("g", 2, b, {})
    assert not b_sync.done(), "followers wait for the leader's assignment"
    a_sync = coord.sync_nowait("g", 2, a, {a: b"p0", b: b"p1"})
    assert a_sync.result().assignment == b"p0"
    assert b_sync.result().assignment == b"p1"
    assert await coord.heartbeat("g", 2, b) == ErrorCode.none
    assert await coord.heartbeat("g", 1, b) == ErrorCode.illegal_generation


async def test_session_expiry_removes_silent_member_and_rebalances(
    coord: GroupCoordinator, clock: FakeClock
) -> None:
    a = await single_member_stable(coord)
    b = await new_member_id(coord)
    b_join = coord.join_nowait(request(b))
    done(coord.join_nowait(request(a)))
    done(b_join)
    await coord.sync("g", 2, a, {a: b"x", b: b"y"})
    for _ in range(2):  # a keeps heartbeating, b has gone silent
        clock.advance(SESSION_MS // 2)
        assert await coord.heartbeat("g", 2, a) == ErrorCode.none
        coord.tick()
    group = coord.group("g")
    assert group is not None and b not in group.members
    assert group.state is GroupState.PREPARING_REBALANCE
    assert await coord.heartbeat("g", 2, a) == ErrorCode.rebalance_in_progress
    rejoin = done(coord.join_nowait(request(a)))
    assert rejoin.generation_id == 3 and [m.member_id for m in rejoin.members] == [a]


async def test_session_not_expired_just_before_timeout(coord: GroupCoordinator, clock: FakeClock) -> None:
    a = await single_member_stable(coord)
    clock.advance(SESSION_MS - 1)
    coord.tick()
    assert await coord.heartbeat("g", 1, a) == ErrorCode.none
    clock.advance(SESSION_MS)
    coord.tick()
    group = coord.group("g")
    assert group is not None and not group.members
    assert group.state is GroupState.EMPTY and group.generation_id == 2
    assert await coord.heartbeat("g", 1, a) == ErrorCode.unknown_member_id


async def test_rebalance_timeout_drops_members_that_do_not_rejoin(
    coord: GroupCoordinator, clock: FakeClock
) -> None:
    a = await single_member_stable(coord)
    b = await new_member_id(coord)
    b_join = coord.join_nowait(request(b))
    # a never rejoins but keeps heartbeating (told REBALANCE_IN_PROGRESS each time).
    for _ in range(REBALANCE_MS // 5_000 - 1):
        clock.advance(5_000)
        assert await coord.heartbeat("g", 1, a) == ErrorCode.rebalance_in_progress
        coord.tick()
        assert not b_join.done()
    clock.advance(5_000)
    coord.tick()
    rb = done(b_join)
    assert rb.error_code == ErrorCode.none and rb.generation_id == 2 and rb.leader_id == b
    assert await coord.heartbeat("g", 2, a) == ErrorCode.unknown_member_id


async def test_member_id_required_member_that_never_returns_stops_blocking(
    coord: GroupCoordinator, clock: FakeClock
) -> None:
    a = await single_member_stable(coord)
    await new_member_id(coord)  # gets an id, never rejoins
    # A pending member blocks completion of the next rebalance until its session timeout passes.
    b = await new_member_id(coord)
    b_join = coord.join_nowait(request(b))
    a_join = coord.join_nowait(request(a))
    assert not a_join.done() and not b_join.done()
    clock.advance(SESSION_MS)
    coord.tick()
    assert done(a_join).generation_id == done(b_join).generation_id == 2
    assert len(done(a_join).members) == 2


async def test_leave_rebalances_and_last_leave_empties_group(coord: GroupCoordinator) -> None:
    a = await single_member_stable(coord)
    b = await new_member_id(coord)
    b_join = coord.join_nowait(request(b))
    done(coord.join_nowait(request(a)))
    done(b_join)
    await coord.sync("g", 2, a, {a: b"x", b: b"y"})
    left = await coord.leave("g", [MemberIdentity(a), MemberIdentity("nobody")])
    assert [code for _, code in left.members] == [ErrorCode.none, ErrorCode.unknown_member_id]
    group = coord.group("g")
    assert group is not None and group.state is GroupState.PREPARING_REBALANCE
    rb = done(coord.join_nowait(request(b)))
    assert rb.generation_id == 3 and rb.leader_id == b, "leadership passes to a remaining member"
    await coord.sync("g", 3, b, {b: b"xy"})
    await coord.leave("g", [MemberIdentity(b)])
    assert group.state is GroupState.EMPTY and group.generation_id == 4


async def test_leader_leaving_during_sync_fails_waiting_followers(coord: GroupCoordinator) -> None:
    a = await single_member_stable(coord)
    b = await new_member_id(coord)
    b_join = coord.join_nowait(request(b))
    done(coord.join_nowait(request(a)))
    done(b_join)
    b_sync = coord.sync_nowait("g", 2, b, {})
    await coord.leave("g", [MemberIdentity(a)])
    assert b_sync.result().error_code == ErrorCode.rebalance_in_progress


async def test_request_validation_errors(coord: GroupCoordinator) -> None:
    assert (await coord.join(request(session_ms=1))).error_code == ErrorCode.invalid_session_timeout
    assert (await coord.join(request(session_ms=10**9))).error_code == ErrorCode.invalid_session_timeout
    assert (await coord.join(request(group=""))).error_code == ErrorCode.invalid_group_id
    assert (await coord.join(request("ghost"))).error_code == ErrorCode.unknown_member_id
    no_proto = JoinRequest("g", "", "consumer", (), SESSION_MS, REBALANCE_MS)
    assert (await coord.join(no_proto)).error_code == ErrorCode.inconsistent_group_protocol
    a = await single_member_stable(coord)
    other = await coord.join(request(protocols=(("roundrobin", b""),)))
    assert other.error_code == ErrorCode.inconsistent_group_protocol
    assert (await coord.sync("g", 7, a, {})).error_code == ErrorCode.illegal_generation
    assert (await coord.sync("g", 1, "ghost", {})).error_code == ErrorCode.unknown_member_id
    assert (await coord.sync("nope", 1, a, {})).error_code == ErrorCode.unknown_member_id
    assert (await coord.sync("g", 1, a, {}, protocol_name="sticky")).error_code == (
        ErrorCode.inconsistent_group_protocol
    )
    assert await coord.heartbeat("nope", 1, a) == ErrorCode.unknown_member_id
    assert await coord.heartbeat("g", 1, "ghost") == ErrorCode.unknown_member_id


async def test_join_without_required_known_member_id_joins_directly(coord: GroupCoordinator) -> None:
    old_client = JoinRequest(
        "g", "", "consumer", RANGE, SESSION_MS, REBALANCE_MS, require_known_member_id=False
    )
    joined = await coord.join(old_client)
    assert joined.error_code == ErrorCode.none and joined.generation_id == 1
    assert joined.leader_id == joined.member_id


async def test_protocol_chosen_by_vote_among_common_protocols(coord: GroupCoordinator) -> None:
    both = (("range", b"r"), ("roundrobin", b"rr"))
    prefers_rr = (("roundrobin", b"rr"), ("range", b"r"))
    ids = [await new_member_id(coord) for _ in range(3)]
    futs = [
        coord.join_nowait(request(ids[0], protocols=both)),
        coord.join_nowait(request(ids[1], protocols=prefers_rr)),
        coord.join_nowait(request(ids[2], protocols=prefers_rr)),
    ]
    results = [done(f) for f in futs]
    assert {r.protocol_name for r in results} == {"roundrobin"}
    leader = next(r for r in results if r.members)
    assert {m.metadata for m in leader.members} == {b"rr"}


async def test_follower_rejoin_with_same_metadata_in_stable_keeps_generation(coord: GroupCoordinator) -> None:
    a = await single_member_stable(coord)
    b = await new_member_id(coord)
    b_join = coord.join_nowait(request(b))
    done(coord.join_nowait(request(a)))
    done(b_join)
    await coord.sync("g", 2, a, {a: b"x", b: b"y"})
    again = done(coord.join_nowait(request(b)))
    assert again.generation_id == 2 and again.members == ()
    group = coord.group("g")
    assert group is not None and group.state is GroupState.STABLE
    changed = coord.join_nowait(request(b, protocols=(("range", b"new-subscription"),)))
    assert not changed.done() and group.state is GroupState.PREPARING_REBALANCE


async def test_static_member_restart_takes_over_without_rebalance(coord: GroupCoordinator) -> None:
    first = await coord.join(request(instance="host-1"))
    assert first.error_code == ErrorCode.none, "static members skip MEMBER_ID_REQUIRED"
    leader = first.member_id
    b = await coord.join_nowait(request(instance="host-2")) if False else None
    assert b is None
    b_fut = coord.join_nowait(request(instance="host-2"))
    # host-2 joining triggers a rebalance that host-1 completes by rejoining.
    a_fut = coord.join_nowait(request(leader, instance="host-1"))
    ra, rb = done(a_fut), done(b_fut)
    gen = ra.generation_id
    await coord.sync("g", gen, leader, {leader: b"p0", rb.member_id: b"p1"})
    # host-2 restarts: it comes back with no member id but the same instance id.
    restarted = done(coord.join_nowait(request(instance="host-2")))
    assert restarted.error_code == ErrorCode.none
    assert restarted.member_id != rb.member_id and restarted.generation_id == gen
    synced = await coord.sync("g", gen, restarted.member_id, {}, group_instance_id="host-2")
    assert synced.assignment == b"p1"
    assert await coord.heartbeat("g", gen, rb.member_id, "host-2") == ErrorCode.fenced_instance_id
    assert await coord.heartbeat("g", gen, restarted.member_id, "host-2") == ErrorCode.none
    group = coord.group("g")
    assert group is not None and group.state is GroupState.STABLE


async def test_commit_and_fetch_offsets_follow_kafka_rules(coord: GroupCoordinator) -> None:
    # Generation -1 with no member: a client managing its own assignment may still store offsets.
    res = await coord.commit_offsets("manual", -1, "", [OffsetCommitEntry("t", 0, 42, "m")])
    assert [r.error_code for r in res] == [ErrorCode.none]
    fetched = await coord.fetch_offsets("manual", [("t", 0), ("t", 1)])
    assert [(p.offset, p.metadata) for p in fetched.partitions] == [(42, "m"), (-1, "")]
    # Committing a lower offset is an explicit rewind and wins, as in Kafka.
    await coord.commit_offsets("manual", -1, "", [OffsetCommitEntry("t", 0, 7)])
    assert (await coord.fetch_offsets("manual")).partitions[0].offset == 7
    unknown = await coord.commit_offsets("other", 3, "m", [OffsetCommitEntry("t", 0, 1)])
    assert unknown[0].error_code == ErrorCode.illegal_generation

    a = await single_member_stable(coord)
    ok = await coord.commit_offsets("g", 1, a, [OffsetCommitEntry("t", 0, 5)])
    assert ok[0].error_code == ErrorCode.none
    assert (await coord.commit_offsets("g", 0, a, [OffsetCommitEntry("t", 0, 6)]))[0].error_code == (
        ErrorCode.illegal_generation
    )
    assert (await coord.commit_offsets("g", 1, "x", [OffsetCommitEntry("t", 0, 6)]))[0].error_code == (
        ErrorCode.unknown_member_id
    )
    big = "x" * (coord.config.offset_metadata_max_bytes + 1)
    mixed = await coord.commit_offsets(
        "g", 1, a, [OffsetCommitEntry("t", 1, 9, big), OffsetCommitEntry("t", 2, 9)]
    )
    assert [r.error_code for r in mixed] == [ErrorCode.offset_metadata_too_large, ErrorCode.none]
    b = await new_member_id(coord)
    b_join = coord.join_nowait(request(b))
    # PreparingRebalance: the current generation may still commit (eager consumers commit on revoke).
    assert (await coord.commit_offsets("g", 1, a, [OffsetCommitEntry("t", 0, 8)]))[
        0
    ].error_code == ErrorCode.none
    done(coord.join_nowait(request(a)))
    done(b_join)
    assert (await coord.commit_offsets("g", 2, a, [OffsetCommitEntry("t", 0, 9)]))[0].error_code == (
        ErrorCode.rebalance_in_progress
    )
    offsets = {(g, t, p): o for g, t, p, o in coord.committed_offsets()}
    assert offsets[("g", "t", 0)] == 8 and offsets[("manual", "t", 0)] == 7


async def test_commit_rejects_unknown_partitions_when_told_how_to_check(clock: FakeClock) -> None:
    coord = GroupCoordinator(clock=clock, partition_exists=lambda topic, p: topic == "t" and p < 2)
    res = await coord.commit_offsets(
        "g", -1, "", [OffsetCommitEntry("t", 1, 1), OffsetCommitEntry("t", 2, 1)]
    )
    assert [r.error_code for r in res] == [ErrorCode.none, ErrorCode.unknown_topic_or_partition]


async def test_list_describe_delete(coord: GroupCoordinator) -> None:
    a = await single_member_stable(coord)
    await coord.commit_offsets("idle", -1, "", [OffsetCommitEntry("t", 0, 1)])
    listed = {(g.group_id, g.state) for g in await coord.list_groups()}
    assert listed == {("g", "Stable"), ("idle", "Empty")}
    assert [g.group_id for g in await coord.list_groups(["stable"])] == ["g"]
    desc, missing = await coord.describe_groups(["g", "missing"])
    assert desc.state == "Stable" and desc.protocol_data == "range"
    assert [(m.member_id, m.assignment, m.metadata) for m in desc.members] == [(a, b"all", b"range-meta")]
    assert missing.state == "Dead" and missing.members == ()
    deleted = dict(await coord.delete_groups(["g", "idle", "missing"]))
    assert deleted == {
        "g": ErrorCode.non_empty_group,
        "idle": ErrorCode.none,
        "missing": ErrorCode.group_id_not_found,
    }
    assert (await coord.fetch_offsets("idle", [("t", 0)])).partitions[0].offset == -1


async def test_initial_rebalance_delay_holds_first_join(clock: FakeClock) -> None:
    coord = GroupCoordinator(clock=clock, config=GroupConfig(group_initial_rebalance_delay_ms=3_000))
    mid = await new_member_id(coord)
    fut = coord.join_nowait(request(mid))
    clock.advance(2_999)
    coord.tick()
    assert not fut.done()
    clock.advance(1)
    coord.tick()
    assert done(fut).generation_id == 1


async def test_background_task_expires_sessions_on_a_real_clock() -> None:
    def now_ms() -> int:
        return time.monotonic_ns() // 1_000_000

    coord = GroupCoordinator(clock=now_ms, config=GroupConfig(group_min_session_timeout_ms=50))
    task = asyncio.create_task(coord.run(max_wait_ms=50))
    try:
        joined = await coord.join(request(session_ms=200, instance="s"))
        assert joined.error_code == ErrorCode.none
        await coord.sync("g", 1, joined.member_id, {})
        group = coord.group("g")
        assert group is not None
        for _ in range(500):  # poll for up to ~10 s
            if not group.members:
                break
            await asyncio.sleep(0.02)
        assert not group.members and group.state is GroupState.EMPTY
    finally:
        task.cancel()


async def test_group_max_size_refuses_new_members_but_not_a_returning_static_one(clock: FakeClock) -> None:
    coord = GroupCoordinator(clock=clock, config=GroupConfig(group_max_size=1))
    first = await coord.join(request(instance="only"))
    assert first.error_code == ErrorCode.none
    await coord.sync("g", first.generation_id, first.member_id, {first.member_id: b"a"})
    assert (await coord.join(request())).error_code == ErrorCode.group_max_size_reached
    assert (await coord.join(request(instance="other"))).error_code == ErrorCode.group_max_size_reached
    returning = await coord.join(request(instance="only"))
    assert returning.error_code == ErrorCode.none and returning.member_id != first.member_id


async def test_leader_that_heartbeats_but_never_syncs_is_removed(
    coord: GroupCoordinator, clock: FakeClock
) -> None:
    a = await single_member_stable(coord)
    b = await new_member_id(coord)
    b_join = coord.join_nowait(request(b))
    done(coord.join_nowait(request(a)))  # a leads generation 2 ...
    done(b_join)
    b_sync = coord.sync_nowait("g", 2, b, {})
    for _ in range(REBALANCE_MS // 5_000 - 1):  # ... and keeps heartbeating without ever syncing
        clock.advance(5_000)
        assert await coord.heartbeat("g", 2, a) == ErrorCode.none
        coord.tick()
        assert not b_sync.done()
    clock.advance(5_000)
    assert await coord.heartbeat("g", 2, a) == ErrorCode.none
    coord.tick()
    assert b_sync.result().error_code == ErrorCode.rebalance_in_progress
    assert await coord.heartbeat("g", 2, a) == ErrorCode.unknown_member_id
    rb = done(coord.join_nowait(request(b)))
    assert rb.generation_id == 3 and rb.leader_id == b
