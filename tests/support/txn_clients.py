"""Reading a partition to its end with a real confluent-kafka consumer at a chosen isolation level."""

from __future__ import annotations

import time

from confluent_kafka import Consumer, KafkaError, TopicPartition

READ_DEADLINE_S = 30.0


def read_partition(bootstrap: str, topic: str, partition: int, *, isolation: str) -> list[bytes]:
    """Every record value from offset 0 until the consumer reports the end of the partition (for
    read_committed that is the last stable offset). Fails after READ_DEADLINE_S."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{time.monotonic_ns()}",
            "isolation.level": isolation,
            "enable.partition.eof": True,
            "enable.auto.commit": False,
        }
    )
    values: list[bytes] = []
    try:
        consumer.assign([TopicPartition(topic, partition, 0)])
        deadline = time.monotonic() + READ_DEADLINE_S
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            error = msg.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    return values
                raise AssertionError(f"consumer error: {error}")
            values.append(msg.value())
        raise AssertionError(
            f"{topic}-{partition}: no end of partition within {READ_DEADLINE_S} s; read {values}"
        )
    finally:
        consumer.close()
