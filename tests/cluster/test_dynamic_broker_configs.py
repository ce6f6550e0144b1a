"""Dynamic broker configs with Kafka's own `kafka-configs --entity-type brokers` on three replicated brokers:
a cluster-wide value changes what every broker accepts without a restart, a broker's own value beats it,
both survive a SIGKILL and restart (they live in the controller log), deleting them reverts, and a setting
that only takes effect at start is refused by name. A topic-level config change keeps the broker-level
defaults under the topic's own overrides."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    ResourceType,
)
from kio.schema.describe_configs.v1 import request as describe_req
from kio.static.primitive import i8

from tests.javakafka.fetch import is_fetched
from tests.javakafka.tools import CONFIG_COMMAND, run_tool
from tests.support.launcher import Cluster, create_topic, wait_controller
from tests.support.wire import WireClient

pytestmark = [pytest.mark.java]

TOPIC = "dyn"
PARTITIONS = 3
STATIC = "2000000"
"""The brokers' own --message-max-bytes (STATIC_BROKER_CONFIG)."""
MEDIUM = b"m" * 1_500_000
"""Under STATIC, over Kafka's built-in default (1048588)."""
BIG = b"x" * 2_500_000
"""Over STATIC, under the raised value."""
RAISED, LOWERED = "3000000", "1000000"
DEADLINE_S = 60.0


def _configs(cluster: Cluster, *args: str, check: bool = True) -> str:
    proc = run_tool(CONFIG_COMMAND, ["--bootstrap-server", cluster.bootstrap, *args], check=check)
    return proc.stdout + proc.stderr


def _broker_value(cluster: Cluster, node: int) -> tuple[str, ConfigSource]:
    """message.max.bytes as broker ``node`` itself describes it (the Admin client asks that broker)."""
    admin = AdminClient({"bootstrap.servers": cluster.brokers[node].bootstrap})
    res = ConfigResource(ResourceType.BROKER, str(node))
    entry = admin.describe_configs([res])[res].result(10)["message.max.bytes"]
    return str(entry.value), ConfigSource(entry.source)


def _wait_value(cluster: Cluster, nodes: list[int], value: str, source: ConfigSource) -> None:
    """Each broker applies a committed change from the controller log a moment later."""
    deadline = time.monotonic() + DEADLINE_S
    for node in nodes:
        while (seen := _broker_value(cluster, node)) != (value, source):
            assert time.monotonic() < deadline, f"broker {node}: {seen}, expected {(value, source)}"
            time.sleep(0.1)  # pacing between DescribeConfigs polls


def _leaders(cluster: Cluster) -> dict[int, int]:
    deadline = time.monotonic() + DEADLINE_S
    while True:
        md = AdminClient({"bootstrap.servers": cluster.bootstrap}).list_topics(TOPIC, timeout=5).topics[TOPIC]
        if len(md.partitions) == PARTITIONS and all(p.leader > 0 for p in md.partitions.values()):
            return {i: p.leader for i, p in md.partitions.items()}
        assert time.monotonic() < deadline, f"partitions without a leader: {md.partitions}"
        time.sleep(0.1)  # pacing between metadata polls


def _topic_config(cluster: Cluster, node: int, name: str) -> str | None:
    """A config of TOPIC as broker ``node`` itself holds it (asked over its own connection)."""
    request = describe_req.DescribeConfigsRequest(
        resources=(
            describe_req.DescribeConfigsResource(
                resource_type=i8(2), resource_name=TOPIC, configuration_keys=(name,)
            ),
        )
    )
    with WireClient("127.0.0.1", cluster.kafka_ports[node]) as c:
        (result,) = c.request(32, 1, request).results
    return next((e.value for e in result.configs if e.name == name), None)


def _produce(cluster: Cluster, partition: int, value: bytes = BIG) -> KafkaError | None:
    """One record to ``partition``: None when acknowledged, else the broker's error."""
    producer = Producer(
        {
            "bootstrap.servers": cluster.bootstrap,
            "message.max.bytes": 10_000_000,
            "acks": "all",
            "message.timeout.ms": 30_000,
        }
    )
    outcome: list[KafkaError | None] = []
    producer.produce(TOPIC, value, partition=partition, on_delivery=lambda err, _msg: outcome.append(err))
    producer.flush(40)
    assert outcome, "no delivery report"
    return outcome[0]


def _too_large(err: KafkaError | None) -> bool:
    return err is not None and err.code() == KafkaError.MSG_SIZE_TOO_LARGE


def test_kafka_configs_changes_broker_configs_live_everywhere_and_durably(tmp_path: Path) -> None:
    if not is_fetched():
        pytest.fail("Apache Kafka jars missing; run `bash .ci/prepare-kafka`")
    with Cluster(tmp_path, 3, ("--message-max-bytes", STATIC)) as cluster:
        wait_controller(cluster)
        create_topic(cluster, TOPIC, PARTITIONS)
        everyone = sorted(cluster.brokers)
        _wait_value(cluster, everyone, STATIC, ConfigSource.STATIC_BROKER_CONFIG)
        assert _too_large(_produce(cluster, 0))

        # A topic config change rebuilds the topic's logs' config over the broker-level defaults, not over
        # Kafka's built-in ones: the static 2 MB still holds for a topic that only changed its retention.
        admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
        retention = ConfigEntry("retention.ms", "3600000", incremental_operation=AlterConfigOpType.SET)
        res = ConfigResource(ResourceType.TOPIC, TOPIC, incremental_configs=[retention])
        admin.incremental_alter_configs([res])[res].result(30)
        deadline = time.monotonic() + DEADLINE_S
        while any(_topic_config(cluster, n, "retention.ms") != "3600000" for n in everyone):
            assert time.monotonic() < deadline, "the topic config change did not reach every broker"
            time.sleep(0.1)  # pacing between DescribeConfigs polls
        for partition in range(PARTITIONS):
            assert _produce(cluster, partition, MEDIUM) is None, partition

        # Cluster-wide: every broker takes it without a restart, and every partition leader accepts more.
        out = _configs(cluster, "--entity-type", "brokers", "--entity-default", "--alter",
                       "--add-config", f"message.max.bytes={RAISED}")  # fmt: skip
        assert "Completed updating default config for brokers in the cluster" in out, out
        _wait_value(cluster, everyone, RAISED, ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG)
        leaders = _leaders(cluster)
        for partition in range(PARTITIONS):
            assert _produce(cluster, partition) is None, (partition, leaders)
        out = _configs(cluster, "--entity-type", "brokers", "--entity-default", "--describe")
        assert f"message.max.bytes={RAISED} sensitive=false" in out, out

        # One broker's own value beats the cluster-wide one, there only.
        node = leaders[0]
        others = [n for n in everyone if n != node]
        out = _configs(cluster, "--entity-type", "brokers", "--entity-name", str(node), "--alter",
                       "--add-config", f"message.max.bytes={LOWERED}")  # fmt: skip
        assert f"Completed updating config for broker {node}" in out, out
        _wait_value(cluster, [node], LOWERED, ConfigSource.DYNAMIC_BROKER_CONFIG)
        _wait_value(cluster, others, RAISED, ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG)
        # Each partition's leader checks the size: only where `node` leads is the big record refused.
        for partition, leader in _leaders(cluster).items():
            assert _too_large(_produce(cluster, partition)) == (leader == node), (partition, leader)
        out = _configs(cluster, "--entity-type", "brokers", "--entity-name", str(node), "--describe")
        assert (
            f"message.max.bytes={LOWERED} sensitive=false synonyms={{DYNAMIC_BROKER_CONFIG:message.max.bytes="
            f"{LOWERED}, DYNAMIC_DEFAULT_BROKER_CONFIG:message.max.bytes={RAISED}, STATIC_BROKER_CONFIG:"
            f"message.max.bytes={STATIC}, DEFAULT_CONFIG:message.max.bytes=1048588}}"
        ) in out, out

        # Both survive a SIGKILL: the restarted broker reads them back from the controller log.
        cluster.brokers[node].kill()
        cluster.brokers[node].start()
        _wait_value(cluster, [node], LOWERED, ConfigSource.DYNAMIC_BROKER_CONFIG)
        _wait_value(cluster, others, RAISED, ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG)

        # Deleting reverts: the broker's own value first, then the cluster-wide one.
        _configs(cluster, "--entity-type", "brokers", "--entity-name", str(node), "--alter",
                 "--delete-config", "message.max.bytes")  # fmt: skip
        _wait_value(cluster, everyone, RAISED, ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG)
        _configs(cluster, "--entity-type", "brokers", "--entity-default", "--alter",
                 "--delete-config", "message.max.bytes")  # fmt: skip
        _wait_value(cluster, everyone, STATIC, ConfigSource.STATIC_BROKER_CONFIG)
        for partition in range(PARTITIONS):
            assert _too_large(_produce(cluster, partition)), partition

        # A setting read only at start is refused, by name, and nothing changes.
        out = _configs(cluster, "--entity-type", "brokers", "--entity-default", "--alter",
                       "--add-config", "auto.create.topics.enable=false", check=False)  # fmt: skip
        assert "Cannot update these configs dynamically: auto.create.topics.enable" in out, out
        out = _configs(cluster, "--entity-type", "brokers", "--entity-default", "--describe")
        assert "auto.create.topics.enable" not in out, out
