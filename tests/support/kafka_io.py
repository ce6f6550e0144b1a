"""Produce with acks=all and read a partition back, with real confluent-kafka clients (bounded)."""

from __future__ import annotations

from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

from tests.support.poll import wait_for


def send(bootstrap: str, topic: str, partition: int, values: list[bytes]) -> list[bytes]:
    """Produce with acks=all; returns the acked values (all of them, or the test fails)."""
    acked: list[bytes] = []
    errors: list[str] = []

    def on_delivery(err: Any, msg: Any) -> None:
        if err is None:
            acked.append(msg.value())
        else:
            errors.append(str(err))

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "message.timeout.ms": 30000})
    for v in values:
        producer.produce(topic, v, partition=partition, on_delivery=on_delivery)
        producer.poll(0)
    assert producer.flush(60) == 0, "messages still in flight after 60 s"
    assert not errors, f"{len(errors)} not acked, e.g. {errors[:2]}"
    return acked


def read_all(bootstrap: str, topic: str, partition: int, want: int, logs: Any = str) -> list[bytes]:
    """Read ``topic``-``partition`` from offset 0 until ``want`` records (bounded)."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "moves-check", "enable.auto.commit": False}
    )
    consumer.assign([TopicPartition(topic, partition, 0)])
    got: list[bytes] = []
    errors: list[str] = []
    try:

        def poll() -> bool:
            for msg in consumer.consume(num_messages=1000, timeout=0.5):
                if msg.error() is None:
                    got.append(msg.value())
                else:
                    errors.append(str(msg.error()))
            return len(got) >= want

        wait_for(
            f"{want} records from {topic}-{partition}",
            poll,
            timeout=60,
            logs=lambda: f"got {len(got)} errors {errors[-5:]}\n{logs()}",
        )
    finally:
        consumer.close()
    return got
