"""Property test of the coordinator: random interleavings of joins, syncs, heartbeats, leaves and clock
advances keep the group's invariants, and once clients go quiet every parked request is answered."""

from __future__ import annotations

import asyncio

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kio.schema.errors import ErrorCode
from streamraft_broker.groups import GroupCoordinator, GroupState, JoinRequest, JoinResult, MemberIdentity
from streamraft_broker.groups.model import SyncResult

SESSION_MS = 10_000
REBALANCE_MS = 20_000

Op = tuple[str, int, int]
ops = st.lists(
    st.tuples(
        st.sampled_from(["join", "join", "rejoin", "sync", "heartbeat", "leave", "advance", "static"]),
        st.integers(0, 3),  # which client
        st.integers(1, 8_000),  # ms for advance
    ),
    max_size=40,
)


class Clock:
    def __init__(self) -> None:
        self.now = 0

    def __call__(self) -> int:
        return self.now


def check_invariants(coord: GroupCoordinator, last_generation: int) -> int:
    group = coord.group("g")
    if group is None:
        return last_generation
    assert group.generation_id >= last_generation
    if not group.members:
        assert group.state in (GroupState.EMPTY, GroupState.PREPARING_REBALANCE)
        if group.state is GroupState.PREPARING_REBALANCE:
            assert group.pending_members, "an empty rebalance only waits for members still to come"
    if group.state is GroupState.EMPTY:
        assert not group.members
    if group.state in (GroupState.COMPLETING_REBALANCE, GroupState.STABLE):
        assert group.leader_id in group.members
        assert all(m.join_future is None for m in group.members.values())
    if group.state is not GroupState.COMPLETING_REBALANCE:
        assert all(m.sync_future is None for m in group.members.values())
    for instance, member_id in group.static_members.items():
        assert group.members[member_id].group_instance_id == instance
    return group.generation_id


async def run(seq: list[Op]) -> None:
    clock = Clock()
    coord = GroupCoordinator(clock=clock)
    ids: dict[int, str] = {}
    generation: dict[int, int] = {}
    joins: list[asyncio.Future[JoinResult]] = []
    syncs: list[asyncio.Future[SyncResult]] = []
    last_gen = 0

    def request(client: int, *, static: bool = False) -> JoinRequest:
        return JoinRequest(
            "g",
            ids.get(client, ""),
            "consumer",
            (("range", bytes([client])),),
            SESSION_MS,
            REBALANCE_MS,
            group_instance_id=f"host-{client}" if static else None,
        )

    def remember(client: int, fut: asyncio.Future[JoinResult]) -> None:
        joins.append(fut)

        def done(f: asyncio.Future[JoinResult]) -> None:
            r = f.result()
            if r.error_code in (ErrorCode.none, ErrorCode.member_id_required):
                ids[client] = r.member_id
                generation[client] = r.generation_id

        fut.add_done_callback(done)

    for kind, client, ms in seq:
        if kind in ("join", "rejoin", "static"):
            if kind == "join":
                ids.pop(client, None)
            remember(client, coord.join_nowait(request(client, static=kind == "static")))
        elif kind == "sync" and client in ids:
            group = coord.group("g")
            members = list(group.members) if group else []
            syncs.append(
                coord.sync_nowait("g", generation.get(client, -1), ids[client], {m: b"a" for m in members})
            )
        elif kind == "heartbeat" and client in ids:
            await coord.heartbeat("g", generation.get(client, -1), ids[client])
        elif kind == "leave" and client in ids:
            await coord.leave("g", [MemberIdentity(ids[client])])
        elif kind == "advance":
            clock.now += ms
            coord.tick()
        await asyncio.sleep(0)  # let done-callbacks record member ids, as a client would
        last_gen = check_invariants(coord, last_gen)

    # Every client goes quiet: all parked JoinGroup/SyncGroup requests get an answer, the group empties.
    for _ in range(10):
        clock.now += REBALANCE_MS + SESSION_MS
        coord.tick()
        check_invariants(coord, last_gen)
    assert all(f.done() for f in joins), "a JoinGroup was never answered"
    assert all(f.done() for f in syncs), "a SyncGroup was never answered"
    group = coord.group("g")
    assert group is None or (group.state is GroupState.EMPTY and not group.members)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops)
def test_random_interleavings_keep_invariants(seq: list[Op]) -> None:
    asyncio.run(run(seq))
