"""Restart and scale-down decisions keep every partition's Raft majority."""

from streamraft_operator.rollout import (
    PartitionState,
    majority,
    next_restart,
    partitions_led,
    quorum_blockers,
    scale_down_blocker,
)

HEALTHY = [
    PartitionState("t", 0, 0, (0, 1, 2), (0, 1, 2)),
    PartitionState("t", 1, 1, (0, 1, 2), (0, 1, 2)),
    PartitionState("t", 2, 1, (1, 2, 0), (1, 2, 0)),
]
READY = {"demo-0": True, "demo-1": True, "demo-2": True}


def test_majority() -> None:
    assert [majority(n) for n in (1, 2, 3, 5)] == [1, 2, 2, 3]


def test_quorum_blockers_counts_only_other_in_sync_replicas() -> None:
    lagging = [PartitionState("t", 0, 0, (0, 1, 2), (0, 1))]
    assert quorum_blockers(0, lagging) == ["t-0"]
    assert quorum_blockers(2, lagging) == []
    assert quorum_blockers(0, [PartitionState("solo", 0, 0, (0,), (0,))]) == ["solo-0"]


def test_restart_picks_least_leading_pod_when_healthy() -> None:
    d = next_restart(["demo-0", "demo-1", "demo-2"], READY, HEALTHY)
    assert d.pod == "demo-2" and d.blocked is None
    assert partitions_led(HEALTHY) == {0: 1, 1: 2}


def test_restart_waits_for_not_ready_pod_and_for_catch_up() -> None:
    d = next_restart(["demo-0"], {**READY, "demo-1": False}, HEALTHY)
    assert (
        d.pod is None and d.blocked == "waiting for demo-1 to be ready before the next restart" and d.waiting
    )
    behind = [*HEALTHY[:2], PartitionState("t", 2, 1, (1, 2, 0), (1, 2))]
    d = next_restart(["demo-0"], READY, behind)
    assert d.pod is None and d.blocked is not None and "t-2" in d.blocked


def test_restart_refuses_to_break_a_single_replica_partition() -> None:
    parts = [PartitionState("solo", 0, 0, (0,), (0,))]
    d = next_restart(["demo-0"], READY, parts)
    assert d.pod is None and d.blocked == "demo-0 would break the quorum of solo-0"
    assert next_restart(["demo-1"], READY, parts).pod == "demo-1"


def test_restart_does_not_go_blind() -> None:
    assert next_restart(["demo-0"], READY, None).pod is None
    assert next_restart([], READY, None).blocked is None


def test_scale_down_blocked_while_broker_hosts_replicas() -> None:
    why = scale_down_blocker(2, HEALTHY)
    assert why is not None and why.startswith("broker 2 still hosts replicas of 3 partition(s)")
    assert scale_down_blocker(3, HEALTHY) is None
    assert scale_down_blocker(3, None) is not None
