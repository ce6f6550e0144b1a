"""Restart and scale-down decisions keep every partition's Raft majority (broker id = pod ordinal + 1)."""

from streamraft_operator.brokers import BrokerHealth
from streamraft_operator.clusterreconcile import brokers_behind
from streamraft_operator.rollout import (
    LAG_LIMIT,
    PartitionState,
    broker_of,
    in_sync_view,
    majority,
    next_restart,
    partitions_led,
    quorum_blockers,
    scale_down_blocker,
)

HEALTHY = [
    PartitionState("t", 0, 1, (1, 2, 3), (1, 2, 3)),
    PartitionState("t", 1, 2, (1, 2, 3), (1, 2, 3)),
    PartitionState("t", 2, 2, (2, 3, 1), (2, 3, 1)),
]
READY = {"demo-0": True, "demo-1": True, "demo-2": True}


def test_majority_and_broker_ids() -> None:
    assert [majority(n) for n in (1, 2, 3, 5)] == [1, 2, 2, 3]
    assert [broker_of(p) for p in ("demo-0", "demo-1", "my-cluster-12")] == [1, 2, 13]


def test_quorum_blockers_counts_only_other_in_sync_replicas() -> None:
    lagging = [PartitionState("t", 0, 1, (1, 2, 3), (1, 2))]
    assert quorum_blockers(1, lagging) == ["t-0"]
    assert quorum_blockers(3, lagging) == []
    assert quorum_blockers(1, [PartitionState("solo", 0, 1, (1,), (1,))]) == ["solo-0"]


def test_in_sync_view_drops_lagging_and_down_replicas() -> None:
    lag = {("t", 0): {2: LAG_LIMIT + 1, 3: 0}, ("t", 1): {1: LAG_LIMIT}}
    view = {p.name: p.isr for p in in_sync_view(HEALTHY, lag, up={1, 2, 3})}
    assert view == {"t-0": (1, 3), "t-1": (1, 2, 3), "t-2": (2, 3, 1)}
    down = {p.name: p.isr for p in in_sync_view(HEALTHY, {}, up={1, 2})}
    assert down == {"t-0": (1, 2), "t-1": (1, 2), "t-2": (2, 1)}


def test_restart_picks_least_leading_pod_when_healthy() -> None:
    d = next_restart(["demo-0", "demo-1", "demo-2"], READY, HEALTHY)
    assert d.pod == "demo-2" and d.blocked is None
    assert partitions_led(HEALTHY) == {1: 1, 2: 2}


def test_restart_waits_for_not_ready_pod_and_for_catch_up() -> None:
    d = next_restart(["demo-0"], {**READY, "demo-1": False}, HEALTHY)
    assert (
        d.pod is None and d.blocked == "waiting for demo-1 to be ready before the next restart" and d.waiting
    )
    behind = [*HEALTHY[:2], PartitionState("t", 2, 2, (2, 3, 1), (2, 3))]
    d = next_restart(["demo-0"], READY, behind)
    assert d.pod is None and d.blocked is not None and "t-2" in d.blocked and d.waiting


def test_restart_waits_for_leaders_and_for_what_brokers_report() -> None:
    leaderless = [*HEALTHY[:2], PartitionState("t", 2, -1, (2, 3, 1), (2, 3, 1))]
    d = next_restart(["demo-0"], READY, leaderless)
    assert d.pod is None and d.waiting and d.blocked == "waiting for a leader of t-2"
    d = next_restart(["demo-0"], READY, HEALTHY, behind="1 under-replicated partition(s)")
    assert d.pod is None and d.waiting
    assert d.blocked == "waiting for catch-up: 1 under-replicated partition(s)"


def test_restart_refuses_to_break_a_single_replica_partition() -> None:
    parts = [PartitionState("solo", 0, 1, (1,), (1,))]
    d = next_restart(["demo-0"], READY, parts)
    assert d.pod is None and d.blocked == "demo-0 would break the quorum of solo-0" and not d.waiting
    assert next_restart(["demo-1"], READY, parts).pod == "demo-1"


def test_restart_does_not_go_blind() -> None:
    assert next_restart(["demo-0"], READY, None).pod is None
    assert next_restart([], READY, None).blocked is None


def test_scale_down_blocked_while_broker_hosts_replicas() -> None:
    why = scale_down_blocker(3, HEALTHY)
    assert why is not None and why.startswith("broker 3 still hosts replicas of 3 partition(s)")
    assert scale_down_blocker(4, HEALTHY) is None
    assert scale_down_blocker(4, None) is not None


def test_what_the_brokers_report_as_behind_holds_the_rollout() -> None:
    healthy = {1: BrokerHealth(under_replicated=0, leaderless=0), 2: BrokerHealth()}
    assert brokers_behind(healthy) is None
    behind = {1: BrokerHealth(under_replicated=2), 2: BrokerHealth(under_replicated=1, leaderless=1)}
    assert brokers_behind(behind) == (
        "3 under-replicated partition(s) and 1 partition replica(s) without a known leader"
        " reported by the brokers"
    )
    d = next_restart(["demo-0"], READY, HEALTHY, behind=brokers_behind(behind))
    assert d.pod is None and d.waiting
