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
from tests.support.poll import wait_for

pytestmark = [pytest.mark.java]

PARTITIONS = 5
UNKNOWN_TOPIC_OR_PARTITION = 3
INVALID_REQUEST = 42

SHARED = ("error_code", "leader_id", "leader_epoch", "replica_nodes", "isr_nodes", "offline_replicas")
"""The partition fields Metadata and DescribeTopicPartitions both carry."""

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


def _views(partitions: list[dict[str, Any]]) -> dict[int, tuple[Any, ...]]:
    return {int(p["partition_index"]): tuple(p[f] for f in SHARED) for p in partitions}


def test_metadata_and_describe_topic_partitions_describe_partitions_alike(
    target: Target, topic_name: str
) -> None:
    _create(target, topic_name, PARTITIONS)
    admin = KafkaAdminClient(bootstrap_servers=target.bootstrap)
    try:

        def agreed() -> dict[int, tuple[Any, ...]] | None:
            # Both answers once every partition has a leader (an election may still be completing).
            (meta,) = admin.describe_topics([topic_name])
            (described,) = admin.describe_topic_partitions([topic_name])["topics"]
            views = _views(meta["partitions"])
            if views != _views(described["partitions"]) or any(v[0] for v in views.values()):
                return None
            return views

        views = wait_for("Metadata and DescribeTopicPartitions to agree on every partition", agreed, 30)
    finally:
        admin.close()
    assert sorted(views) == list(range(PARTITIONS))
    for _code, leader, epoch, replicas, isr, offline in views.values():
        assert leader in replicas and epoch >= 0 and len(replicas) == target.replication_factor
        assert sorted(isr) == sorted(replicas) and offline == []
