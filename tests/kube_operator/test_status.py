"""Conditions from observations, and status written only when it changes."""

from streamraft_operator.status import (
    BrokerObservation,
    ClusterObservation,
    cluster_conditions,
    render_conditions,
    status_patch,
)


def _brokers(*ready: bool) -> tuple[BrokerObservation, ...]:
    return tuple(BrokerObservation(i, f"demo-{i}", r) for i, r in enumerate(ready))


def _by_type(obs: ClusterObservation) -> dict[str, tuple[bool, str, str]]:
    return {c.type: (c.status, c.reason, c.message) for c in cluster_conditions(obs)}


def test_all_ready() -> None:
    got = _by_type(ClusterObservation(3, _brokers(True, True, True)))
    assert got["Ready"] == (True, "AllBrokersReady", "3/3 brokers ready")
    assert got["Progressing"][:2] == (False, "Reconciled")
    assert got["Degraded"][:2] == (False, "AsExpected")


def test_not_ready_names_the_pods() -> None:
    got = _by_type(ClusterObservation(3, _brokers(True, False, True)))
    assert got["Ready"] == (False, "BrokersNotReady", "2/3 brokers ready; waiting for demo-1")
    assert got["Degraded"] == (True, "BrokersNotReady", "not ready: demo-1")


def test_blocked_scale_down_says_why() -> None:
    obs = ClusterObservation(
        2, _brokers(True, True, True), blocked="broker 2 still hosts t-0", blocked_reason="ScaleDownBlocked"
    )
    got = _by_type(obs)
    assert got["Progressing"] == (False, "ScaleDownBlocked", "broker 2 still hosts t-0")
    assert got["Ready"][:2] == (False, "ScalingDown")


def test_invalid_spec() -> None:
    got = _by_type(ClusterObservation(3, (), invalid="spec.replicas is required"))
    assert got["Ready"] == (False, "InvalidSpec", "spec.replicas is required")


def test_transition_time_kept_while_status_unchanged() -> None:
    conds = cluster_conditions(ClusterObservation(3, _brokers(True, True, True)))
    first = render_conditions(conds, None, 1, "2026-01-01T00:00:00Z")
    again = render_conditions(conds, first, 1, "2026-01-01T00:05:00Z")
    assert again == first
    assert (
        status_patch({"conditions": first, "readyReplicas": 3}, {"conditions": again, "readyReplicas": 3})
        == {}
    )
    flipped = render_conditions(
        cluster_conditions(ClusterObservation(3, _brokers(True, False, True))),
        first,
        1,
        "2026-01-01T00:09:00Z",
    )
    ready = next(c for c in flipped if c["type"] == "Ready")
    assert ready["lastTransitionTime"] == "2026-01-01T00:09:00Z"
    assert status_patch({"conditions": first}, {"conditions": flipped}) == {"conditions": flipped}


def test_rollout_pacing_is_progress_not_degradation() -> None:
    obs = ClusterObservation(
        3, _brokers(True, True, True), outdated_pods=("demo-0",), waiting="waiting for demo-2 to be ready"
    )
    got = _by_type(obs)
    assert got["Progressing"] == (
        True,
        "RollingRestart",
        "restart pending for demo-0; waiting for demo-2 to be ready",
    )
    assert got["Degraded"][:2] == (False, "AsExpected")
    assert got["Ready"][:2] == (False, "RollingRestart")
