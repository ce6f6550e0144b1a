"""API versions raised to what Apache Kafka 4.3 serves: each new version's new fields, on a real broker."""

from __future__ import annotations

import datetime
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import Producer
from kafka import KafkaAdminClient, KafkaConsumer
from kio.index import load_request_schema

from tests.support.broker_process import BrokerProcess
from tests.support.fixtures import module_broker
from tests.support.wire import WireClient

FETCH, METADATA = 1, 3
UNKNOWN_TOPIC_ID = 100
TOPIC = "kafka4-versions"
VALUES = [f"value-{i}".encode() for i in range(5)]


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    for b in module_broker(tmp_path_factory):
        producer = Producer({"bootstrap.servers": b.bootstrap})
        for value in VALUES:
            producer.produce(TOPIC, value)
        assert producer.flush(30) == 0, "the records were not acknowledged"
        yield b


def _wire(broker: BrokerProcess) -> WireClient:
    host, port = broker.bootstrap.rsplit(":", 1)
    return WireClient(host, int(port))


def _schema(api_key: int, version: int) -> Any:
    """The kio module of a request version (its nested entity types live beside the request type)."""
    return sys.modules[load_request_schema(api_key, version).__module__]


def _topic_id(wire: WireClient) -> uuid.UUID:
    module = _schema(METADATA, 12)
    request = module.MetadataRequest(
        topics=(module.MetadataRequestTopic(name=TOPIC, topic_id=None),),
        allow_auto_topic_creation=False,
        include_topic_authorized_operations=False,
    )
    (topic,) = wire.request(METADATA, 12, request).topics
    assert (topic.error_code, topic.name) == (0, TOPIC)
    return topic.topic_id


def _fetch(wire: WireClient, version: int, topic_id: uuid.UUID) -> Any:
    module = _schema(FETCH, version)
    request = module.FetchRequest(
        max_wait=datetime.timedelta(milliseconds=0),
        min_bytes=0,
        topics=(
            module.FetchTopic(
                topic_id=topic_id,
                partitions=(module.FetchPartition(partition=0, fetch_offset=0, partition_max_bytes=1 << 20),),
            ),
        ),
        forgotten_topics_data=(),
    )
    return wire.request(FETCH, version, request)


@pytest.mark.parametrize("version", [13, 15, 16, 17, 18])
def test_fetch_by_topic_id_returns_the_records_of_that_topic(broker: BrokerProcess, version: int) -> None:
    with _wire(broker) as wire:
        topic_id = _topic_id(wire)
        assert topic_id != uuid.UUID(int=0)
        response = _fetch(wire, version, topic_id)
    (topic,) = response.responses
    assert topic.topic_id == topic_id
    (part,) = topic.partitions
    assert (part.partition_index, part.error_code, part.high_watermark) == (0, 0, len(VALUES))
    assert part.records is not None
    for value in VALUES:
        assert value in part.records


def test_fetch_by_an_unknown_topic_id_answers_unknown_topic_id(broker: BrokerProcess) -> None:
    stranger = uuid.uuid4()
    with _wire(broker) as wire:
        response = _fetch(wire, 13, stranger)
    (topic,) = response.responses
    assert topic.topic_id == stranger
    assert [(p.partition_index, p.error_code) for p in topic.partitions] == [(0, UNKNOWN_TOPIC_ID)]


def test_kafka_python_detects_a_kafka_4_broker_and_consumes_with_it(broker: BrokerProcess) -> None:
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        assert admin._manager.broker_version >= (4, 0)
    finally:
        admin.close()
    consumer = KafkaConsumer(
        TOPIC, bootstrap_servers=broker.bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=15000
    )
    try:
        assert consumer.config["api_version"] >= (4, 0)
        got: list[bytes] = []
        for message in consumer:
            got.append(message.value)
            if len(got) == len(VALUES):
                break
        assert got == VALUES
    finally:
        consumer.close()
