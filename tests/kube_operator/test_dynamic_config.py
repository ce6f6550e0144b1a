"""spec.config's dynamic broker keys: applied over the Admin API (a pure plan of operations), never part of
the config file or the hash that rolls the brokers; static keys still roll them."""

from streamraft_operator.configkeys import (
    BROKER_KEYS,
    DYNAMIC_BROKER_KEYS,
    dynamic_broker_configs,
    plan_dynamic_configs,
    validate_config,
)
from streamraft_operator.resources import broker_config, config_hash
from streamraft_operator.spec import parse_cluster
from streamraft_operator.status import BrokerObservation, ClusterObservation, cluster_conditions


def test_dynamic_keys_are_validated_like_static_ones() -> None:
    assert {"message.max.bytes", "log.retention.ms", "log.cleanup.policy"} <= DYNAMIC_BROKER_KEYS
    assert "num.partitions" not in DYNAMIC_BROKER_KEYS
    assert validate_config({"log.retention.ms": -2, "log.cleanup.policy": "shred"}, BROKER_KEYS) == [
        "log.cleanup.policy must be one of delete, compact, got 'shred'",
        "log.retention.ms must be >= -1, got -2",
    ]


def test_a_dynamic_key_changes_neither_the_config_file_nor_the_restart_hash() -> None:
    base = parse_cluster("demo", "ns", {"replicas": 3, "config": {"num.partitions": 3}})
    dynamic = parse_cluster(
        "demo", "ns", {"replicas": 3, "config": {"num.partitions": 3, "message.max.bytes": 3_000_000}}
    )
    assert broker_config(dynamic) == broker_config(base) == "default_partitions: 3\n"
    assert config_hash(dynamic) == config_hash(base)
    static = parse_cluster("demo", "ns", {"replicas": 3, "config": {"num.partitions": 4}})
    assert config_hash(static) != config_hash(base)  # a static key still rolls the brokers
    assert dynamic_broker_configs(dynamic.config) == {"message.max.bytes": "3000000"}


def test_the_plan_sets_what_differs_and_deletes_only_managed_keys_the_spec_dropped() -> None:
    desired = {"message.max.bytes": "3000000", "log.retention.ms": "60000"}
    assert plan_dynamic_configs(desired, desired) == {}
    current = {
        "message.max.bytes": "1000",  # changed behind the operator's back: set back
        "log.segment.bytes": "2000000",  # managed, no longer in the spec: deleted
        "log.cleaner.min.cleanable.ratio": "0.3",  # not the operator's: left alone
    }
    assert plan_dynamic_configs(desired, current) == {
        "log.retention.ms": "60000",
        "log.segment.bytes": None,
        "message.max.bytes": "3000000",
    }


def test_a_failed_apply_degrades_the_cluster_naming_why() -> None:
    brokers = tuple(BrokerObservation(i + 1, f"demo-{i}", True) for i in range(3))
    obs = ClusterObservation(3, brokers, config_failed="INVALID_REQUEST: no")
    ready, _, degraded = cluster_conditions(obs)
    assert ready.status  # the brokers serve; only the config is not what the spec says
    assert (degraded.status, degraded.reason) == (True, "AdminFailed")
    assert degraded.message == "dynamic broker configs not applied: INVALID_REQUEST: no"
