"""Spec parsing and config validation: bad input gets one message naming every offending field."""

import pytest
from streamraft_operator.configkeys import BROKER_KEYS, TOPIC_KEYS, as_kafka_strings, validate_config
from streamraft_operator.spec import SpecError, parse_cluster, parse_topic


def test_valid_broker_config_passes() -> None:
    assert validate_config({"auto.create.topics.enable": False, "num.partitions": 3}, BROKER_KEYS) == []


def test_unknown_and_mistyped_keys_are_named() -> None:
    problems = validate_config(
        {"socket.request.max.bytes": 10, "bogus.key": 1, "auto.create.topics.enable": "yes"}, BROKER_KEYS
    )
    assert len(problems) == 3
    assert problems[0].startswith("auto.create.topics.enable must be a boolean")
    assert problems[1].startswith("unknown config key 'bogus.key'")
    assert problems[2] == "socket.request.max.bytes must be >= 1024, got 10"


def test_topic_config_enum_and_kafka_strings() -> None:
    assert validate_config({"cleanup.policy": "shred"}, TOPIC_KEYS) == [
        "cleanup.policy must be one of delete, compact, got 'shred'"
    ]
    assert as_kafka_strings({"retention.ms": 5, "x": True}) == {"retention.ms": "5", "x": "true"}


def test_cluster_defaults() -> None:
    c = parse_cluster("demo", "ns", {"replicas": 3})
    assert (c.replicas, c.kafka_port, c.storage_size, c.pdb_max_unavailable) == (3, 9092, "10Gi", 1)


def test_cluster_problems_are_collected() -> None:
    with pytest.raises(SpecError) as err:
        parse_cluster(
            "demo", "ns", {"replicas": 0, "listeners": {"kafka": {"port": 9644}}, "config": {"nope": 1}}
        )
    text = str(err.value)
    assert "spec.replicas must be between 1 and 99, got 0" in text
    assert "spec.listeners.kafka.port must not be 9644" in text
    assert "spec.config: unknown config key 'nope'" in text


def test_missing_replicas() -> None:
    with pytest.raises(SpecError, match=r"spec\.replicas is required"):
        parse_cluster("demo", "ns", {})


def test_topic_defaults_name_and_rejects_even_replicas() -> None:
    t = parse_topic("orders", "ns", {"clusterRef": "demo", "partitions": 4, "replicas": 3})
    assert (t.topic, t.cluster, t.partitions, t.replicas) == ("orders", "demo", 4, 3)
    with pytest.raises(SpecError, match=r"spec\.replicas must be odd"):
        parse_topic("orders", "ns", {"clusterRef": "demo", "replicas": 2})
    with pytest.raises(SpecError, match=r"spec\.clusterRef is required"):
        parse_topic("orders", "ns", {"partitions": 1})


def test_pdb_budget_keeps_a_majority() -> None:
    budgets = {
        n: parse_cluster("d", "ns", {"replicas": n, "pdb": {"maxUnavailable": 5}}).pdb_max_unavailable
        for n in (1, 2, 3, 5, 7)
    }
    assert budgets == {1: 1, 2: 1, 3: 1, 5: 2, 7: 3}
    assert parse_cluster("d", "ns", {"replicas": 5, "pdb": {"maxUnavailable": 0}}).pdb_max_unavailable == 0
