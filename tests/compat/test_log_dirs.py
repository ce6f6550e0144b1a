"""DescribeLogDirs and AlterReplicaLogDirs: ``kafka-log-dirs --describe`` shows each broker's one log
directory with the size of every partition replica it hosts; kafka-python's admin client reads the volume's
total/usable bytes and "moves" a replica to the directory it is in (any other path: LOG_DIR_NOT_FOUND)."""

from __future__ import annotations

import json
import time
from typing import Any

import kafka.errors
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaAdminClient, TopicPartitionReplica

from tests.compat.target import Target
from tests.javakafka.tools import LOG_DIRS, run_tool

pytestmark = [pytest.mark.java]

RECORDS = 20
VALUE = b"v" * 100


def _create_and_fill(target: Target, topic: str) -> None:
    admin = AdminClient({"bootstrap.servers": target.bootstrap})
    admin.create_topics([NewTopic(topic, 2, target.replication_factor)])[topic].result(30)
    producer = Producer({"bootstrap.servers": target.bootstrap, "acks": "all"})
    for _ in range(RECORDS):
        producer.produce(topic, VALUE, partition=0)
    assert producer.flush(30) == 0


def _sizes(dirs: list[dict[str, Any]], topic: str) -> dict[tuple[int, int], int]:
    """(broker, partition) -> size in bytes of that replica, from kafka-python's describe_log_dirs."""
    return {
        (b["broker"], p["partition_index"]): p["partition_size"]
        for b in dirs
        for d in b["log_dirs"]
        for t in d["topics"]
        if t["name"] == topic
        for p in t["partitions"]
    }


def test_log_dirs_describe_and_alter(target: Target, topic_name: str) -> None:
    _create_and_fill(target, topic_name)
    admin = KafkaAdminClient(bootstrap_servers=target.bootstrap)
    try:
        # Every replica of partition 0 holds the records once it has applied them (followers a moment later).
        deadline = time.monotonic() + 30
        while True:
            dirs = admin.describe_log_dirs()
            sizes = _sizes(dirs, topic_name)
            if len([s for (_, p), s in sizes.items() if p == 0 and s >= RECORDS * len(VALUE)]) == (
                target.replication_factor
            ):
                break
            assert time.monotonic() < deadline, f"replicas never reached their size: {sizes}"
            time.sleep(0.2)
        assert sorted(b["broker"] for b in dirs) == sorted({b["broker"] for b in dirs})
        assert len(dirs) == target.brokers
        for broker in dirs:
            (only,) = broker["log_dirs"]
            assert only["error_code"] == 0
            assert only["log_dir"].startswith("/")
            assert 0 <= only["usable_bytes"] <= only["total_bytes"]
        # Each partition has exactly its replication factor of replicas; partition 1 got no records.
        for p in (0, 1):
            assert len([k for k in sizes if k[1] == p]) == target.replication_factor, sizes
        assert all(s == 0 for (_, p), s in sizes.items() if p == 1), sizes

        broker, _ = next(k for k in sizes if k[1] == 0)
        where = next(d["log_dir"] for b in dirs if b["broker"] == broker for d in b["log_dirs"])
        replica = TopicPartitionReplica(topic_name, 0, broker)
        assert admin.alter_replica_log_dirs({replica: where}) == {replica: kafka.errors.NoError}
        elsewhere = f"{where}-elsewhere"
        assert admin.alter_replica_log_dirs({replica: elsewhere}) == {
            replica: kafka.errors.LogDirNotFoundError
        }
    finally:
        admin.close()

    out = run_tool(
        LOG_DIRS, ["--bootstrap-server", target.bootstrap, "--describe", "--topic-list", topic_name]
    )
    report = json.loads(next(line for line in out.stdout.splitlines() if line.startswith("{")))
    listed = {
        (b["broker"], p["partition"]): (p["size"], p["offsetLag"], d["error"])
        for b in report["brokers"]
        for d in b["logDirs"]
        for p in d["partitions"]
    }
    assert len(listed) == 2 * target.replication_factor, out.stdout
    for (_, name), (size, lag, error) in listed.items():
        assert (lag, error) == (0, None), out.stdout
        assert (size >= RECORDS * len(VALUE)) if name == f"{topic_name}-0" else size == 0, out.stdout
