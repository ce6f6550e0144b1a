"""Small wrappers over Kafka's CLI tools and a confluent-kafka reader, shared by the compat tests."""

from __future__ import annotations

import re
import time

from confluent_kafka import Consumer, TopicPartition

from tests.compat.target import Target
from tests.javakafka.tools import TOPIC_COMMAND, run_tool


def create_topic(target: Target, topic: str, partitions: int) -> None:
    run_tool(
        TOPIC_COMMAND,
        [
            "--bootstrap-server", target.bootstrap,
            "--create", "--topic", topic,
            "--partitions", str(partitions),
            "--replication-factor", str(target.replication_factor),
        ],
    )  # fmt: skip


def describe_partition_count(target: Target, topic: str) -> int:
    out = run_tool(
        TOPIC_COMMAND, ["--bootstrap-server", target.bootstrap, "--describe", "--topic", topic]
    ).stdout
    match = re.search(r"PartitionCount:\s*(\d+)", out)
    assert match is not None, f"no PartitionCount in describe output:\n{out}"
    return int(match.group(1))


def end_offsets(target: Target, topic: str, partitions: int, timeout_s: float = 30.0) -> dict[int, int]:
    """High watermarks per partition, read with librdkafka (a client independent of the Java tools)."""
    c = Consumer({"bootstrap.servers": target.bootstrap, "group.id": f"hw-{time.monotonic_ns()}"})
    try:
        result: dict[int, int] = {}
        for p in range(partitions):
            _low, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s)
            result[p] = int(high)
        return result
    finally:
        c.close()
