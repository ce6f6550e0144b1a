"""Manual rolling updates: which pods roll, and how the request is recorded and cleared (pure plan)."""

from streamraft_operator.manualroll import (
    MANUAL_ROLL_ANNOTATION,
    MANUAL_ROLL_PENDING_ANNOTATION,
    PodView,
    parse_pending,
    plan_manual_roll,
)
from streamraft_operator.rollout import PartitionState, next_restart
from streamraft_operator.status import BrokerObservation, ClusterObservation, cluster_conditions

PODS = {"demo-0": PodView("u0"), "demo-1": PodView("u1"), "demo-2": PodView("u2")}
HEALTHY = [PartitionState("t", 0, 1, (1, 2, 3), (1, 2, 3))]
READY = {"demo-0": True, "demo-1": True, "demo-2": True}


def test_nothing_requested_changes_nothing() -> None:
    plan = plan_manual_roll({"other": "x"}, PODS)
    assert plan.pods == () and plan.accepted == () and plan.annotations == {}


def test_cluster_request_covers_every_live_pod_and_is_replaced_by_a_record() -> None:
    plan = plan_manual_roll({MANUAL_ROLL_ANNOTATION: "true"}, PODS)
    assert plan.pods == ("demo-0", "demo-1", "demo-2") and plan.accepted == plan.pods
    assert plan.annotations == {
        MANUAL_ROLL_ANNOTATION: None,  # removed, as Strimzi removes its annotation
        MANUAL_ROLL_PENDING_ANNOTATION: "demo-0=u0,demo-1=u1,demo-2=u2",
    }


def test_a_restarted_pod_leaves_the_record_and_the_record_goes_when_empty() -> None:
    recorded = {MANUAL_ROLL_PENDING_ANNOTATION: "demo-0=u0,demo-1=u1,demo-2=u2"}
    # demo-2 was deleted and re-created (new uid); demo-1 is being re-created (absent).
    pods = {"demo-0": PodView("u0"), "demo-2": PodView("u2-new")}
    plan = plan_manual_roll(recorded, pods)
    assert plan.pods == ("demo-0",) and plan.accepted == ()
    assert plan.annotations == {MANUAL_ROLL_PENDING_ANNOTATION: "demo-0=u0"}
    done = plan_manual_roll({MANUAL_ROLL_PENDING_ANNOTATION: "demo-0=u0"}, {"demo-0": PodView("u0-new")})
    assert done.pods == () and done.annotations == {MANUAL_ROLL_PENDING_ANNOTATION: None}


def test_an_unchanged_record_is_not_rewritten() -> None:
    plan = plan_manual_roll({MANUAL_ROLL_PENDING_ANNOTATION: "demo-1=u1"}, PODS)
    assert plan.pods == ("demo-1",) and plan.annotations == {}


def test_pod_annotation_rolls_only_that_pod_without_any_record() -> None:
    pods = {**PODS, "demo-1": PodView("u1", {MANUAL_ROLL_ANNOTATION: "true"})}
    plan = plan_manual_roll({}, pods)
    assert plan.pods == ("demo-1",) and plan.annotations == {}
    # Only "true" asks for a roll, as with Strimzi's annotation.
    assert plan_manual_roll({}, {"demo-0": PodView("u0", {MANUAL_ROLL_ANNOTATION: "no"})}).pods == ()


def test_a_hand_edited_record_is_tolerated() -> None:
    assert parse_pending("demo-0=u0,, garbage ,=x,demo-1=") == {"demo-0": "u0"}
    plan = plan_manual_roll({MANUAL_ROLL_PENDING_ANNOTATION: "junk"}, PODS)
    assert plan.pods == () and plan.annotations == {MANUAL_ROLL_PENDING_ANNOTATION: None}


def test_manual_pods_go_through_the_quorum_gated_rollout() -> None:
    plan = plan_manual_roll({MANUAL_ROLL_ANNOTATION: "true"}, PODS)
    # One at a time, and never while a pod is not Ready or a partition would lose its majority.
    assert next_restart(plan.pods, READY, HEALTHY).pod == "demo-2"
    waiting = next_restart(plan.pods[:2], {**READY, "demo-2": False}, HEALTHY)
    assert waiting.pod is None and waiting.waiting
    solo = [PartitionState("solo", 0, 1, (1,), (1,))]
    d = next_restart(("demo-0",), READY, solo)
    assert d.pod is None and d.blocked == "demo-0 would break the quorum of solo-0"


def test_status_says_the_roll_is_manual() -> None:
    brokers = tuple(BrokerObservation(i + 1, f"demo-{i}", True) for i in range(3))
    obs = ClusterObservation(3, brokers, outdated_pods=("demo-0", "demo-1"), manual_pods=("demo-0", "demo-1"))
    ready, progressing, _ = cluster_conditions(obs)
    expected = "restart pending for demo-0, demo-1 (manual rolling update: demo-0, demo-1)"
    assert ready.reason == "RollingRestart" and ready.message == expected
    assert progressing.status and progressing.message == expected
