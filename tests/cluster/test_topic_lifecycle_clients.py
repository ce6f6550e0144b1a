"""What Kafka clients expect of topic creation in a replicated cluster: topics they name are auto-created
(Kafka's auto.create.topics.enable=true), CreateTopics/CreatePartitions answer once the new partitions have
leaders (the first produce to each succeeds without a retry), __consumer_offsets is internal, and
DeleteRecords moves a partition's start through its Raft group."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from kafka import KafkaAdminClient, KafkaProducer
from kafka import TopicPartition as KafkaTopicPartition
from kafka.admin import NewPartitions, NewTopic
from kio.schema.describe_configs.v4 import request as dc_req
from kio.schema.incremental_alter_configs.v1 import request as iac_req
from kio.schema.metadata.v12.request import MetadataRequest, MetadataRequestTopic
from kio.static.primitive import i8

from tests.support.launcher import Cluster, wait_controller
from tests.support.wire import WireClient

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with Cluster(Path(tmp_path_factory.mktemp("lifecycle")), 3) as c:
        wait_controller(c)
        yield c


def _no_retry_producer(cluster: Cluster) -> KafkaProducer:
    """kafka-python with retries=0: a NOT_LEADER_OR_FOLLOWER answer fails the send instead of being hidden
    by a retry (a partition without a leader yet only delays it: the client waits for metadata)."""
    return KafkaProducer(bootstrap_servers=cluster.bootstrap, acks="all", retries=0, max_block_ms=30_000)


def _send_one_to_each(producer: KafkaProducer, topic: str, partitions: range) -> list[int]:
    futures = [producer.send(topic, value=f"p{p}".encode(), partition=p) for p in partitions]
    return [f.get(timeout=30).offset for f in futures]


def _leaders(port: int, name: str) -> dict[int, int]:
    """partition -> leader named by that broker's Metadata (-1 when it names none)."""
    with WireClient("127.0.0.1", port) as wire:
        answer = wire.request(
            3,
            12,
            MetadataRequest(
                topics=(MetadataRequestTopic(topic_id=None, name=name),),
                allow_auto_topic_creation=False,
                include_topic_authorized_operations=False,
            ),
        )
    return {
        int(p.partition_index): int(p.leader_id) if int(p.error_code) == 0 else -1
        for p in answer.topics[0].partitions
    }


def test_create_topics_answers_once_every_partition_has_a_leader(cluster: Cluster) -> None:
    controller_port = cluster.kafka_ports[wait_controller(cluster)]
    admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap, request_timeout_ms=30_000)
    producer = _no_retry_producer(cluster)
    try:
        admin.create_topics([NewTopic("fresh", 6, 3)], timeout_ms=20_000)
        # The controller answered: it names an elected leader for each partition right away.
        leaders = _leaders(controller_port, "fresh")
        assert sorted(leaders) == list(range(6)) and min(leaders.values()) > 0, leaders
        assert _send_one_to_each(producer, "fresh", range(6)) == [0] * 6
        admin.create_partitions({"fresh": NewPartitions(total_count=9)}, timeout_ms=20_000)
        leaders = _leaders(controller_port, "fresh")
        assert sorted(leaders) == list(range(9)) and min(leaders.values()) > 0, leaders
        # A new producer: its first metadata already has the new partitions.
        producer.close(timeout=10)
        producer = _no_retry_producer(cluster)
        assert _send_one_to_each(producer, "fresh", range(6, 9)) == [0] * 3
    finally:
        producer.close(timeout=10)
        admin.close()


def _metadata_error(port: int, name: str, *, allow_auto: bool) -> int:
    with WireClient("127.0.0.1", port) as wire:
        answer = wire.request(
            3,
            12,
            MetadataRequest(
                topics=(MetadataRequestTopic(topic_id=None, name=name),),
                allow_auto_topic_creation=allow_auto,
                include_topic_authorized_operations=False,
            ),
        )
    return int(answer.topics[0].error_code)


def test_producing_to_an_unknown_topic_creates_it_through_the_controller(cluster: Cluster) -> None:
    """Kafka's default auto.create.topics.enable=true: kafka-python's producer asks Metadata to create the
    topic, then its first send succeeds at once (a leader is named), on a broker that may not lead the
    controller group. The topic gets num.partitions (1) and default.replication.factor (3 here)."""
    for node, port in sorted(cluster.kafka_ports.items()):
        topic = f"auto-made-{node}"
        producer = KafkaProducer(
            bootstrap_servers=f"127.0.0.1:{port}", acks="all", retries=0, max_block_ms=30_000
        )
        try:
            assert producer.send(topic, value=b"first").get(timeout=30).offset == 0
        finally:
            producer.close(timeout=10)
        listed = AdminClient({"bootstrap.servers": cluster.bootstrap}).list_topics(topic, timeout=10)
        partitions = listed.topics[topic].partitions
        assert len(partitions) == 1 and sorted(partitions[0].replicas) == [1, 2, 3], partitions


def test_auto_creation_needs_the_clients_consent_and_a_legal_name(cluster: Cluster) -> None:
    port = next(iter(cluster.kafka_ports.values()))
    assert _metadata_error(port, "not-asked-for", allow_auto=False) == 3  # UNKNOWN_TOPIC_OR_PARTITION
    assert _metadata_error(port, "not-asked-for", allow_auto=False) == 3  # and it was not created
    assert _metadata_error(port, "bad name!", allow_auto=True) == 17  # INVALID_TOPIC_EXCEPTION
    assert _metadata_error(port, "x" * 250, allow_auto=True) == 17
    assert _metadata_error(port, "..", allow_auto=True) == 17


def test_consumer_offsets_is_flagged_internal(cluster: Cluster) -> None:
    admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap)
    try:
        deadline = time.monotonic() + 30
        while "__consumer_offsets" not in admin.list_topics():
            assert time.monotonic() < deadline, "the cluster never created __consumer_offsets"
            time.sleep(0.1)  # pacing between metadata polls
        described = admin.describe_topics(["__consumer_offsets", "fresh-internal-check"])
        flags = {d["name"]: d["is_internal"] for d in described}
        assert flags["__consumer_offsets"] is True
        assert flags["fresh-internal-check"] is False
    finally:
        admin.close()


def _topic_config(port: int, topic: str, name: str) -> str | None:
    with WireClient("127.0.0.1", port) as wire:
        answer = wire.request(
            32,
            4,
            dc_req.DescribeConfigsRequest(
                resources=(
                    dc_req.DescribeConfigsResource(
                        resource_type=i8(2), resource_name=topic, configuration_keys=(name,)
                    ),
                ),
                include_synonyms=False,
                include_documentation=False,
            ),
        )
    configs = answer.results[0].configs
    return configs[0].value if configs else None


def test_config_changes_go_through_the_controller_to_every_broker(cluster: Cluster) -> None:
    """IncrementalAlterConfigs sent to a broker that does not lead the controller group is forwarded there;
    every broker then applies and reports the new value."""
    admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap, request_timeout_ms=30_000)
    try:
        admin.create_topics([NewTopic("tuned", 1, 3)], timeout_ms=20_000)
    finally:
        admin.close()
    controller = wait_controller(cluster)
    other = next(n for n in sorted(cluster.kafka_ports) if n != controller)
    with WireClient("127.0.0.1", cluster.kafka_ports[other]) as wire:
        answer = wire.request(
            44,
            1,
            iac_req.IncrementalAlterConfigsRequest(
                resources=(
                    iac_req.AlterConfigsResource(
                        resource_type=i8(2),
                        resource_name="tuned",
                        configs=(
                            iac_req.AlterableConfig(
                                name="retention.ms", config_operation=i8(0), value="3600000"
                            ),
                        ),
                    ),
                ),
                validate_only=False,
            ),
        )
    assert int(answer.responses[0].error_code) == 0, answer
    deadline = time.monotonic() + 10
    values = {}
    while time.monotonic() < deadline:
        values = {n: _topic_config(port, "tuned", "retention.ms") for n, port in cluster.kafka_ports.items()}
        if set(values.values()) == {"3600000"}:
            break
        time.sleep(0.05)  # pacing: the followers apply the controller's commit a moment later
    assert set(values.values()) == {"3600000"}, values


def _low_watermark(bootstrap: str, topic: str) -> int:
    """The partition's log start as its leader reports it (ListOffsets earliest), retried while a leader
    is being elected."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "watermarks"})
    deadline = time.monotonic() + 60
    try:
        while True:
            try:
                low, _high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=5)
                return int(low)
            except KafkaException:
                assert time.monotonic() < deadline, "no leader answered ListOffsets"
    finally:
        consumer.close()


def test_delete_records_moves_the_log_start_on_every_replica(cluster: Cluster) -> None:
    """Last in this module: it kills the partition's leader (restarted at the end)."""
    admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap, request_timeout_ms=30_000)
    producer = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all", "linger.ms": 50})
    try:
        # Three partitions: their leaders are likely not all the controller's leader, so some requests
        # take the path where the partition leader forwards the new log start to the controller.
        admin.create_topics([NewTopic("trim", 3, 3)], timeout_ms=20_000)
        for p in range(3):
            for i in range(10):
                producer.produce("trim", value=f"v{i}".encode(), partition=p)
        assert producer.flush(30) == 0
        parts = [KafkaTopicPartition("trim", p) for p in range(3)]
        answer = admin.delete_records({tp: 4 + tp.partition for tp in parts}, timeout_ms=20_000)
        assert [answer[tp]["low_watermark"] for tp in parts] == [4, 5, 6]
    finally:
        admin.close()
    assert _low_watermark(cluster.bootstrap, "trim") == 4
    # The new log start is the cluster's, not the leader's alone: a new leader reports it too.
    leader = _leaders(cluster.kafka_ports[1], "trim")[0]
    cluster.brokers[leader].kill()
    try:
        assert _low_watermark(cluster.bootstrap, "trim") == 4
        consumer = Consumer(
            {
                "bootstrap.servers": cluster.bootstrap,
                "group.id": "after-trim",
                "auto.offset.reset": "earliest",
            }
        )
        try:
            consumer.assign([TopicPartition("trim", 0, OFFSET_BEGINNING)])
            deadline = time.monotonic() + 60
            first = None
            while first is None:
                assert time.monotonic() < deadline, "the consumer read nothing"
                msg = consumer.poll(0.5)
                if msg is not None and msg.error() is None:
                    first = msg.offset()
            assert first == 4
        finally:
            consumer.close()
    finally:
        cluster.brokers[leader].start()
