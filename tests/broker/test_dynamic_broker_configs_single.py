"""Dynamic broker configs on one broker without replication: kept in a file of its data directory, applied
at once, still in force after a SIGKILL and restart, and gone when deleted."""

from __future__ import annotations

from pathlib import Path

from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewTopic,
    ResourceType,
)

from tests.support.broker_process import BrokerProcess

TOPIC = "solo-dyn"
BIG = b"x" * 1_500_000
"""Over the default message.max.bytes (1048588)."""


def _alter(broker: BrokerProcess, op: AlterConfigOpType, value: str | None = None) -> None:
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    entry = ConfigEntry("message.max.bytes", value, incremental_operation=op)
    res = ConfigResource(ResourceType.BROKER, str(broker.node_id), incremental_configs=[entry])
    admin.incremental_alter_configs([res])[res].result(10)


def _described(broker: BrokerProcess) -> tuple[str, ConfigSource]:
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    res = ConfigResource(ResourceType.BROKER, str(broker.node_id))
    entry = admin.describe_configs([res])[res].result(10)["message.max.bytes"]
    return str(entry.value), ConfigSource(entry.source)


def _produce_big(broker: BrokerProcess) -> KafkaError | None:
    producer = Producer(
        {"bootstrap.servers": broker.bootstrap, "message.max.bytes": 10_000_000, "message.timeout.ms": 20_000}
    )
    outcome: list[KafkaError | None] = []
    producer.produce(TOPIC, BIG, on_delivery=lambda err, _msg: outcome.append(err))
    producer.flush(30)
    assert outcome, "no delivery report"
    return outcome[0]


def test_a_single_broker_keeps_its_dynamic_configs_across_a_crash(tmp_path: Path) -> None:
    broker = BrokerProcess(tmp_path / "data", metrics=False)
    try:
        broker.start()
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        admin.create_topics([NewTopic(TOPIC, 1, 1)])[TOPIC].result(10)
        first = _produce_big(broker)
        assert first is not None and first.code() == KafkaError.MSG_SIZE_TOO_LARGE

        _alter(broker, AlterConfigOpType.SET, "3000000")
        assert _described(broker) == ("3000000", ConfigSource.DYNAMIC_BROKER_CONFIG)
        assert _produce_big(broker) is None  # applied at once, no restart

        broker.kill()
        broker.start()
        assert _described(broker) == ("3000000", ConfigSource.DYNAMIC_BROKER_CONFIG)
        assert _produce_big(broker) is None

        _alter(broker, AlterConfigOpType.DELETE)
        assert _described(broker) == ("1048588", ConfigSource.STATIC_BROKER_CONFIG)
        last = _produce_big(broker)
        assert last is not None and last.code() == KafkaError.MSG_SIZE_TOO_LARGE, last
    finally:
        broker.kill()
