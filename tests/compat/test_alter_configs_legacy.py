"""AlterConfigs (the legacy, non-incremental API that confluent-kafka's AdminClient.alter_configs sends): the
given configs replace the topic's whole set of dynamic configs; a bad value changes nothing."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, ConfigSource, NewTopic, ResourceType

from tests.compat.target import Target

pytestmark = [pytest.mark.java]


def _overrides(admin: AdminClient, topic: str) -> dict[str, str]:
    resource = ConfigResource(ResourceType.TOPIC, topic)
    described = admin.describe_configs([resource])[resource].result(30)
    return {
        name: entry.value
        for name, entry in described.items()
        if entry.source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    }


def test_alter_configs_replaces_every_override(target: Target, topic_name: str) -> None:
    admin = AdminClient({"bootstrap.servers": target.bootstrap})
    created = NewTopic(
        topic_name,
        1,
        target.replication_factor,
        config={"cleanup.policy": "compact", "retention.ms": "100000"},
    )
    admin.create_topics([created])[topic_name].result(30)
    assert _overrides(admin, topic_name) == {"cleanup.policy": "compact", "retention.ms": "100000"}

    resource = ConfigResource(ResourceType.TOPIC, topic_name, set_config={"retention.ms": "5000"})
    admin.alter_configs([resource])[resource].result(30)
    # cleanup.policy was not given: the legacy API drops it (back to the default), unlike the incremental one.
    assert _overrides(admin, topic_name) == {"retention.ms": "5000"}

    bad = ConfigResource(
        ResourceType.TOPIC, topic_name, set_config={"retention.ms": "soon", "segment.ms": "60000"}
    )
    with pytest.raises(KafkaException) as refused:
        admin.alter_configs([bad])[bad].result(30)
    assert refused.value.args[0].code() == KafkaError.INVALID_CONFIG
    assert _overrides(admin, topic_name) == {"retention.ms": "5000"}

    missing = ConfigResource(ResourceType.TOPIC, f"{topic_name}-missing", set_config={"retention.ms": "5000"})
    with pytest.raises(KafkaException) as unknown:
        admin.alter_configs([missing])[missing].result(30)
    assert unknown.value.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART
