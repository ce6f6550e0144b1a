"""kafka-delete-records (DeleteRecordsCommand): the partition's log start moves; readers start there."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from tests.compat.helpers import create_topic
from tests.compat.target import Target
from tests.javakafka.tools import DELETE_RECORDS, run_tool

pytestmark = [pytest.mark.java]

COUNT = 50
CUT = 30


def test_delete_records_command(target: Target, topic_name: str, tmp_path: Path) -> None:
    create_topic(target, topic_name, 1)
    producer = Producer({"bootstrap.servers": target.bootstrap, "acks": "all"})
    for i in range(COUNT):
        producer.produce(topic_name, value=f"v{i}".encode(), partition=0)
    assert producer.flush(30) == 0
    offsets = tmp_path / "offsets.json"
    offsets.write_text(
        json.dumps({"version": 1, "partitions": [{"topic": topic_name, "partition": 0, "offset": CUT}]})
    )
    out = run_tool(
        DELETE_RECORDS, ["--bootstrap-server", target.bootstrap, "--offset-json-file", str(offsets)]
    ).stdout
    assert f"partition: {topic_name}-0\tlow_watermark: {CUT}" in out, out
    consumer = Consumer(
        {
            "bootstrap.servers": target.bootstrap,
            "group.id": f"trim-{topic_name}",
            "auto.offset.reset": "earliest",
        }
    )
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic_name, 0), timeout=30)
        assert (low, high) == (CUT, COUNT)
        consumer.assign([TopicPartition(topic_name, 0, low)])
        first = None
        for _ in range(60):
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                first = (msg.offset(), msg.value())
                break
        assert first == (CUT, f"v{CUT}".encode())
    finally:
        consumer.close()
