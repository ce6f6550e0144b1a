"""The operator's Kafka Admin calls and metadata reading against a real `streamraft broker` process."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from streamraft_operator import topicadmin
from streamraft_operator.brokers import BrokersUnreachable, partition_states
from streamraft_operator.spec import parse_topic
from streamraft_operator.topicplan import ObservedTopic, plan_topic

from tests.support.broker_process import BrokerProcess


@pytest.fixture
def bootstrap(tmp_path: Path) -> Iterator[list[str]]:
    with BrokerProcess(tmp_path / "data") as broker:
        yield [broker.bootstrap]


def test_create_grow_revert_drift_delete(bootstrap: list[str]) -> None:
    spec = parse_topic(
        "orders", "ns", {"clusterRef": "c", "partitions": 2, "replicas": 1, "config": {"retention.ms": 1000}}
    )
    keys = list(spec.config)
    assert topicadmin.describe(bootstrap, "orders", keys) is None
    plan = plan_topic(spec, None)
    topicadmin.create(bootstrap, "orders", spec.partitions, spec.replicas, plan.set_config)
    # A reconcile interrupted after the create repeats it: that must be harmless.
    topicadmin.create(bootstrap, "orders", spec.partitions, spec.replicas, plan.set_config)
    assert topicadmin.describe(bootstrap, "orders", keys) == ObservedTopic(2, 1, {"retention.ms": "1000"})

    topicadmin.set_config(bootstrap, "orders", {"retention.ms": "5"})  # drift made behind our back
    grown = parse_topic(
        "orders", "ns", {"clusterRef": "c", "partitions": 3, "replicas": 1, "config": {"retention.ms": 1000}}
    )
    plan = plan_topic(grown, topicadmin.describe(bootstrap, "orders", keys))
    assert (plan.grow_to, dict(plan.set_config)) == (3, {"retention.ms": "1000"})
    assert plan.grow_to is not None
    topicadmin.grow(bootstrap, "orders", plan.grow_to)
    topicadmin.set_config(bootstrap, "orders", plan.set_config)
    assert plan_topic(grown, topicadmin.describe(bootstrap, "orders", keys)).noop

    states = [s for s in partition_states(bootstrap) if s.topic == "orders"]
    assert [s.partition for s in states] == [0, 1, 2]
    assert all(s.leader >= 0 and s.replicas == s.isr for s in states)

    topicadmin.delete(bootstrap, "orders")
    topicadmin.delete(bootstrap, "orders")  # idempotent
    assert topicadmin.describe(bootstrap, "orders", keys) is None


def test_unreachable_brokers_give_a_clear_error(tmp_path: Path) -> None:
    with BrokerProcess(tmp_path / "data") as broker:
        address = broker.bootstrap
    with pytest.raises(BrokersUnreachable, match=address):
        partition_states([address])
