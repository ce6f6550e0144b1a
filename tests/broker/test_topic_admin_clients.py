"""Topic administration on a single broker as Kafka clients use it: auto-creation on by default,
ListOffsets by timestamps past the end, every topic config Kafka 4 documents (validated and described),
and DeleteRecords."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

from tests.support.broker_process import BrokerProcess
from tests.support.fixtures import module_broker

DEADLINE_S = 30.0


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    # Default settings: auto.create.topics.enable is true, as in Kafka.
    yield from module_broker(tmp_path_factory)


def _produce(bootstrap: str, topic: str, timestamps: list[int]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for i, ts in enumerate(timestamps):
        producer.send(topic, value=f"v{i}".encode(), partition=0, timestamp_ms=ts)
    producer.flush(timeout=DEADLINE_S)
    producer.close(timeout=10)


def test_offsets_for_times_after_the_last_record_is_none(broker: BrokerProcess) -> None:
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    admin.create_topics([NewTopic("by-time", num_partitions=1, replication_factor=1)])
    admin.close()
    base = 1_700_000_000_000
    _produce(broker.bootstrap, "by-time", [base + 10 * i for i in range(5)])
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False)
    tp = TopicPartition("by-time", 0)
    try:
        found = consumer.offsets_for_times({tp: base + 15})
        assert (found[tp].offset, found[tp].timestamp) == (2, base + 20)
        # Kafka answers offset -1 and timestamp -1; kafka-python turns that into None.
        assert consumer.offsets_for_times({tp: base + 41}) == {tp: None}
    finally:
        consumer.close()


def test_producing_to_an_unknown_topic_creates_it(broker: BrokerProcess) -> None:
    _produce(broker.bootstrap, "made-on-produce", [1, 2])
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False)
    try:
        assert consumer.partitions_for_topic("made-on-produce") == {0}
        assert consumer.end_offsets([TopicPartition("made-on-produce", 0)]) == {
            TopicPartition("made-on-produce", 0): 2
        }
    finally:
        consumer.close()
