"""Runtime.leader_progress: the leader's read-only view of follower match indexes and lag."""

from __future__ import annotations

from tests.support.poll import wait_until
from tests.support.runtime_cluster import Cluster


async def test_leader_progress_reports_match_and_lag(cluster: Cluster) -> None:
    await cluster.create(5)
    leader = await cluster.wait_leader(5)
    rt = cluster.nodes[leader]
    followers = [n for n in (1, 2, 3) if n != leader]
    assert all(cluster.nodes[n].leader_progress(5) is None for n in followers)
    for i in range(20):
        await rt.propose(5, bytes([i]) * 100)

    def caught_up() -> bool:
        p = rt.leader_progress(5)
        return p is not None and all(p.match.get(n) == p.last_index for n in followers)

    await wait_until(caught_up)
    p = rt.leader_progress(5)
    assert p is not None
    assert set(p.match) == set(followers) and leader not in p.match
    assert p.commit == p.last_index >= 20
    assert 90 <= p.entry_bytes <= 100  # the leader's empty term-start entry pulls the average down a bit
    assert all(p.lag_entries(n) == 0 and p.lag_bytes(n) == 0 for n in followers)

    stopped = followers[0]
    await cluster.nodes[stopped].stop()
    for _ in range(10):
        await rt.propose(5, b"y" * 100)
    p = rt.leader_progress(5)
    assert p is not None
    assert p.lag_entries(stopped) >= 10
    assert 900 <= p.lag_bytes(stopped) <= 100 * p.lag_entries(stopped)
    await wait_until(lambda: (q := rt.leader_progress(5)) is not None and q.lag_entries(followers[1]) == 0)
