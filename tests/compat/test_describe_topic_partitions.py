"""DescribeTopicPartitions (KIP-966): Kafka 4's ``kafka-topics --describe`` lists every partition with its
leader, replicas and ISR across response pages; a client pages with the cursor."""

from __future__ import annotations

import re
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaAdminClient

from tests.compat.target import Target
from tests.javakafka.tools import TOPIC_COMMAND, run_tool

pytestmark = [pytest.mark.java]

PARTITIONS = 5
UNKNOWN_TOPIC_OR_PARTITION = 3
INVALID_REQUEST = 42

_ROW = re.compile(r"Partition: (\d+)\s+Leader: (-?\d+)\s+Replicas: ([\d,]+)\s+Isr: ([\d,]+)")


def _create(target: Target, topic: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": target.bootstrap})
    admin.create_topics([NewTopic(topic, partitions, target.replication_factor)])[topic].result(30)


def test_kafka_topics_describe_lists_every_partition_across_pages(target: Target, topic_name: str) -> None:
    _create(target, topic_name, PARTITIONS)
    out = run_tool(
        TOPIC_COMMAND,
        [
            "--bootstrap-server", target.bootstrap, "--describe", "--topic", topic_name,
            "--partition-size-limit-per-response", "2",
        ],
    ).stdout  # fmt: skip
    # The tool read DescribeTopicPartitions: from Metadata (its fallback) it prints "Elr: N/A".
    assert "Elr: N/A" not in out and "Elr:" in out, out
    rows = {int(m[1]): m for m in _ROW.finditer(out)}
    assert sorted(rows) == list(range(PARTITIONS)), out
    for m in rows.values():
        replicas = [int(n) for n in m[3].split(",")]
        assert len(replicas) == target.replication_factor, out
        assert int(m[2]) in replicas, out
        # Raft has no ISR: every replica is in sync, as Metadata answers.
        assert sorted(int(n) for n in m[4].split(",")) == sorted(replicas), out


def _page(admin: KafkaAdminClient, topics: list[str], limit: int, cursor: Any = None) -> Any:
    return admin.describe_topic_partitions(topics, response_partition_limit=limit, cursor=cursor)


def test_client_pages_with_the_cursor(target: Target, topic_name: str) -> None:
    second = f"{topic_name}-b"
    _create(target, topic_name, PARTITIONS)
    _create(target, second, 1)
    admin = KafkaAdminClient(bootstrap_servers=target.bootstrap)
    try:
        seen: list[tuple[str, int]] = []
        cursor = None
        for _ in range(10):
            page = _page(admin, [second, topic_name], 2, cursor)
            assert len([p for t in page["topics"] for p in t["partitions"]]) <= 2
            seen += [(t["name"], p["partition_index"]) for t in page["topics"] for p in t["partitions"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        # Topics come in name order, each partition once.
        assert seen == [(topic_name, p) for p in range(PARTITIONS)] + [(second, 0)]

        page = _page(admin, [topic_name, f"{topic_name}-missing"], 100)
        codes = {t["name"]: t["error_code"] for t in page["topics"]}
        assert codes == {topic_name: 0, f"{topic_name}-missing": UNKNOWN_TOPIC_OR_PARTITION}

        # A cursor outside the asked topics is refused with a clear error, not ignored.
        page = _page(admin, [topic_name], 100, {"topic_name": second, "partition_index": 0})
        assert [(t["name"], t["error_code"]) for t in page["topics"]] == [(topic_name, INVALID_REQUEST)]
    finally:
        admin.close()
