"""The multi-group runtime: three real runtimes in one event loop, talking gRPC over loopback, with
durable SegmentLog storage."""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path

import pytest
from streamraft_consensus.core.types import Message, MessageType
from streamraft_consensus.runtime import (
    LeaderChange,
    NotLeaderError,
    StoppedError,
    UnknownGroupError,
)
from streamraft_consensus.storage.segment_log import SegmentLog
from streamraft_consensus.transport import FaultInjector

from tests.support.poll import wait_until
from tests.support.runtime_cluster import Cluster


async def test_propose_commits_and_applies_everywhere(cluster: Cluster) -> None:
    await cluster.create(1)
    await cluster.create(2)
    leader = await cluster.wait_leader(1)
    rt = cluster.nodes[leader]
    passes = rt.fsync_passes
    indexes = await asyncio.gather(*(rt.propose(1, b"v%d" % i) for i in range(50)))
    assert len(set(indexes)) == 50 and indexes == sorted(indexes)
    # Group commit: concurrent proposals share fsync passes.
    assert rt.fsync_passes - passes < 50
    want = [b"v%d" % i for i in range(50)]
    await wait_until(lambda: all(sm.data(1) == want for sm in cluster.sms.values()))
    assert all(sm.data(2) == [] for sm in cluster.sms.values())  # groups are independent
    follower = next(n for n in (1, 2, 3) if n != leader)
    with pytest.raises(NotLeaderError) as err:
        await cluster.nodes[follower].propose(1, b"nope")
    assert err.value.leader_hint == leader
    with pytest.raises(UnknownGroupError):
        await rt.propose(99, b"x")
    assert any(c.group == 1 and c.leader == leader and c.is_self for c in cluster.changes)


async def test_leadership_transfer_and_read_index(cluster: Cluster) -> None:
    await cluster.create(7)
    leader = await cluster.wait_leader(7)
    target = next(n for n in (1, 2, 3) if n != leader)
    await cluster.nodes[leader].propose(7, b"before")
    changes = cluster.nodes[target].leadership_changes()
    seen: list[LeaderChange] = []

    async def watch() -> None:
        async for change in changes:
            seen.append(change)
            if change.group == 7 and change.leader == target:
                return

    watcher = asyncio.ensure_future(watch())
    await asyncio.sleep(0)  # let the iterator subscribe before the transfer starts
    await cluster.nodes[leader].transfer_leadership(7, target)
    await wait_until(lambda: cluster.leader(7) == target)
    async with asyncio.timeout(15):
        await watcher
    assert seen[-1] == LeaderChange(7, target, cluster.nodes[target].term(7), True)
    await changes.aclose()
    index = await cluster.nodes[target].propose(7, b"after")
    read = await cluster.nodes[target].read_index(7)
    assert read >= index
    assert cluster.nodes[target].applied(7) >= read


async def test_membership_changes(cluster: Cluster) -> None:
    await cluster.create(3)
    leader = await cluster.wait_leader(3)
    rt = cluster.nodes[leader]
    await rt.propose(3, b"a")
    n4 = await cluster.start_node(4)
    await n4.create_group(3, voters=(1, 2, 3), learners=(4,))
    await rt.add_learner(3, 4)
    await wait_until(lambda: cluster.sms[4].data(3) == [b"a"])
    await rt.promote(3, 4)
    assert 4 in rt.conf_state(3).voters
    victim = next(n for n in (1, 2, 3) if n != leader)
    await rt.remove_member(3, victim)
    assert victim not in rt.conf_state(3).voters
    await rt.propose(3, b"b")
    await wait_until(lambda: cluster.sms[4].data(3) == [b"a", b"b"])


async def test_groups_created_and_removed_at_run_time(
    cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="streamraft.consensus.runtime")
    await cluster.create(5)
    leader = await cluster.wait_leader(5)
    waiting = asyncio.ensure_future(cluster.nodes[leader].read_index(5))
    await asyncio.sleep(0)  # let the read enqueue itself; the loop cannot serve it before removal below
    await cluster.nodes[leader].remove_group(5, delete_data=True)
    with pytest.raises(StoppedError):
        await waiting
    assert not (cluster.base / f"n{leader}" / "group-5").exists()
    # The other nodes still host group 5 and keep talking to this node about it: dropped and logged.
    await wait_until(lambda: any("message_for_unknown_group" in r.getMessage() for r in caplog.records))
    # A message for an unknown group over the real transport does not disturb anything else.
    other = next(n for n in (1, 2, 3) if n != leader)
    cluster.nodes[other].transport.send(4242, Message(MessageType.HEARTBEAT, leader, other, term=1))
    cluster.nodes[other].transport.flush()
    await wait_until(lambda: any("group=4242" in r.getMessage() for r in caplog.records))
    await cluster.create(6)
    new_leader = await cluster.wait_leader(6)
    assert await cluster.nodes[new_leader].propose(6, b"ok") > 0


async def test_idle_groups_quiesce_and_wake(cluster: Cluster) -> None:
    groups = range(10, 30)
    for g in groups:
        await cluster.create(g)
    for g in groups:
        await cluster.wait_leader(g)
    await wait_until(lambda: all(rt.is_quiesced(g) for rt in cluster.nodes.values() for g in groups))
    # Quiet means quiet: over an interval no group is ticked at all, on any node.
    before = {n: rt.group_ticks for n, rt in cluster.nodes.items()}
    await asyncio.sleep(0.5)  # an interval to measure idle work over, not a synchronisation
    assert {n: rt.group_ticks for n, rt in cluster.nodes.items()} == before
    g = groups[0]
    leader = cluster.leader(g)
    await cluster.nodes[leader].propose(g, b"wake")
    assert not cluster.nodes[leader].is_quiesced(g)  # woken, and it takes 30 idle ticks to go quiet again
    assert all(rt.is_quiesced(other) for rt in cluster.nodes.values() for other in groups[1:])
    await wait_until(lambda: all(sm.data(g) == [b"wake"] for sm in cluster.sms.values()))


async def test_quiesced_groups_fail_over_when_the_leader_node_stops(cluster: Cluster) -> None:
    groups = range(40, 46)
    for g in groups:
        await cluster.create(g)
    for g in groups:
        await cluster.wait_leader(g)
    await wait_until(lambda: all(rt.is_quiesced(g) for rt in cluster.nodes.values() for g in groups))
    victim = cluster.leader(groups[0])
    await cluster.nodes.pop(victim).stop()
    for g in groups:
        await wait_until(lambda g=g: cluster.leader(g) not in (0, victim))  # type: ignore[misc]
        assert await cluster.nodes[cluster.leader(g)].propose(g, b"after") > 0


async def test_restart_recovers_the_log(tmp_path: Path) -> None:
    c = Cluster(tmp_path)
    try:
        for n in (1, 2, 3):
            await c.start_node(n)
        await c.create(1)
        leader = await c.wait_leader(1)
        for i in range(20):
            await c.nodes[leader].propose(1, b"e%d" % i)
        await c.stop()
        c.nodes.clear()
        for n in (1, 2, 3):
            await c.start_node(n)
        await c.create(1)
        want = [b"e%d" % i for i in range(20)]
        leader = await c.wait_leader(1)
        await c.nodes[leader].propose(1, b"more")
        await wait_until(lambda: all(sm.data(1) == [*want, b"more"] for sm in c.sms.values()))
    finally:
        await c.stop()


async def test_lagging_learner_catches_up_from_a_snapshot(cluster: Cluster) -> None:
    await cluster.create(8)
    leader = await cluster.wait_leader(8)
    rt = cluster.nodes[leader]
    for i in range(30):
        await rt.propose(8, b"s%d" % i)
    # The core only restores a snapshot whose configuration includes the receiver: snapshot after the
    # learner joined, then compact, so the learner cannot get the early entries any other way.
    last = await rt.add_learner(8, 4)
    await rt.snapshot(8, last, b"state-at-%d" % last)
    n4 = await cluster.start_node(4)
    await n4.create_group(8, voters=(1, 2, 3), learners=(4,))
    await wait_until(lambda: any(g == 8 for g, _ in cluster.sms[4].restored))
    (snap,) = [s for g, s in cluster.sms[4].restored if g == 8]
    assert snap.meta.index >= last and snap.data == b"state-at-%d" % last
    await rt.propose(8, b"after-snapshot")
    await wait_until(lambda: cluster.sms[4].data(8)[-1:] == [b"after-snapshot"])
    assert b"s0" not in cluster.sms[4].data(8)  # the early entries came inside the snapshot


async def test_partitioned_leader_is_replaced_and_rejoins(tmp_path: Path) -> None:
    faults = FaultInjector()
    c = Cluster(tmp_path, faults)
    try:
        for n in (1, 2, 3):
            await c.start_node(n)
        await c.create(9)
        old = await c.wait_leader(9)
        await c.nodes[old].propose(9, b"before")
        # Quiet first: the isolated leader must notice through node-level liveness, not its own ticks.
        await wait_until(lambda: all(rt.is_quiesced(9) for rt in c.nodes.values()))
        others = [n for n in (1, 2, 3) if n != old]
        faults.isolate(old, others)

        def new_leader() -> int:
            leaders = {n for n in others if c.nodes[n].is_leader(9)}
            return leaders.pop() if len(leaders) == 1 else 0

        await wait_until(lambda: new_leader() != 0)
        new = new_leader()
        await c.nodes[new].propose(9, b"during")
        # check_quorum: the isolated leader notices it lost its quorum and steps down.
        await wait_until(lambda: not c.nodes[old].is_leader(9))
        faults.heal()
        await wait_until(lambda: c.nodes[old].leader(9) == new)
        await c.nodes[new].propose(9, b"after")
        want = [b"before", b"during", b"after"]
        await wait_until(lambda: all(sm.data(9) == want for sm in c.sms.values()))
    finally:
        await c.stop()


async def test_the_longest_running_survivor_succeeds_a_dead_leader(tmp_path: Path) -> None:
    """Node 1 restarted a moment ago, node 2 has run all along: when leader 3 dies, node 2 takes over at
    once (the lowest id, node 1, would be the one clients just saw fail and back off from)."""
    c = Cluster(tmp_path, successor_tie_s=0.05)
    try:
        for n in (1, 2, 3):
            await c.start_node(n)
        await c.create(5)
        leader = await c.wait_leader(5)
        if leader != 3:
            await c.nodes[leader].transfer_leadership(5, 3)
            await wait_until(lambda: c.leader(5) == 3)
        await c.nodes[3].propose(5, b"before")
        await wait_until(lambda: c.nodes[2].transport.uptime() > 0.3)
        await c.nodes.pop(1).stop()
        n1 = await c.start_node(1)
        await n1.create_group(5, (1, 2, 3))
        await wait_until(lambda: c.sms[1].data(5) == [b"before"])
        # Both survivors know the other's uptime (every envelope carries it).
        await wait_until(lambda: n1.transport.peer_uptime(2) is not None)
        await wait_until(lambda: c.nodes[2].transport.peer_uptime(1) is not None)
        c.changes.clear()
        await c.nodes.pop(3).stop()
        await wait_until(lambda: c.leader(5) in (1, 2))
        # The first leader elected after the death is node 2, found by node 2's immediate campaign.
        elected = [ch.leader for ch in c.changes if ch.group == 5 and ch.is_self]
        assert elected[:1] == [2], c.changes
        assert await c.nodes[2].propose(5, b"after") > 0
    finally:
        await c.stop()


class GatedLog(SegmentLog):
    """A SegmentLog whose fsync waits for ``gate`` (a disk that is slow right now)."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.gate = threading.Event()
        self.gate.set()
        self.syncs_waiting = 0

    def sync(self) -> None:
        if not self.gate.is_set():
            self.syncs_waiting += 1
            assert self.gate.wait(30), "gate never opened"
        super().sync()


async def test_leader_replicates_while_its_own_fsync_runs(cluster: Cluster, tmp_path: Path) -> None:
    """The leader's appends go out before its own fsync (Raft thesis 10.2.1), so the two disk writes of a
    commit overlap; the commit still waits for the leader's own copy to be durable."""
    logs = {n: GatedLog(tmp_path / f"gated-{n}") for n in (1, 2, 3)}
    for n in (1, 2, 3):
        await cluster.nodes[n].create_group(9, (1, 2, 3), storage=logs[n])
    leader = await cluster.wait_leader(9)
    rt = cluster.nodes[leader]
    await rt.propose(9, b"warm")
    followers = [n for n in (1, 2, 3) if n != leader]
    gate = logs[leader].gate
    gate.clear()
    try:
        pending = asyncio.ensure_future(rt.propose(9, b"x"))
        await wait_until(lambda: logs[leader].syncs_waiting > 0)
        target = logs[leader].last_index()

        # Both followers hold (and have synced) the entry while the leader's own sync has not finished.
        def replicated(n: int) -> bool:
            got = logs[n].entries(target, target + 1) if logs[n].last_index() >= target else []
            return [e.data for e in got] == [b"x"]

        await wait_until(lambda: all(replicated(n) for n in followers), limit_s=5)
        assert not pending.done(), "committed before the leader's own copy was durable"
    finally:
        gate.set()
    assert await pending == target
