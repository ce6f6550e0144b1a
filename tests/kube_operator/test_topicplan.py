"""Topic plans: create, grow, revert config drift, and refuse what Kafka cannot do."""

from streamraft_operator.spec import parse_topic
from streamraft_operator.topicplan import ObservedTopic, plan_topic

SPEC = parse_topic(
    "orders", "ns", {"clusterRef": "demo", "partitions": 6, "replicas": 3, "config": {"retention.ms": 1000}}
)


def test_missing_topic_is_created_with_its_config() -> None:
    plan = plan_topic(SPEC, None)
    assert plan.create and plan.set_config == {"retention.ms": "1000"}


def test_in_sync_topic_needs_nothing() -> None:
    plan = plan_topic(SPEC, ObservedTopic(6, 3, {"retention.ms": "1000", "other": "x"}))
    assert plan.noop and plan.problems == ()


def test_growth_and_drift_are_planned() -> None:
    plan = plan_topic(SPEC, ObservedTopic(4, 3, {"retention.ms": "5"}))
    assert plan.grow_to == 6
    assert plan.set_config == {"retention.ms": "1000"}


def test_shrink_and_replica_change_are_reported_not_attempted() -> None:
    plan = plan_topic(SPEC, ObservedTopic(8, 1, {"retention.ms": "1000"}))
    assert plan.noop
    assert len(plan.problems) == 2
    assert "Kafka cannot remove partitions" in plan.problems[0]
    assert "has 1 replicas, spec asks 3" in plan.problems[1]
