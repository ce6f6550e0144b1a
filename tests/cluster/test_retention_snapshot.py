"""Retention on a replicated partition whose log is its Raft log: the log start moves through a Raft snapshot,
and a replica that was down past it catches up by installing that snapshot (its log restarts at the leader's
log start, as a new Kafka replica's does), then holds the same records as the leader from there on."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from tests.support.launcher import Cluster, partition_leader, wait_controller

pytestmark = pytest.mark.timeout(240)

TOPIC = "retained"
CONFIGS = {"segment.bytes": "8192", "retention.bytes": "16384"}


def _produce(producer: Producer, acked: dict[int, bytes], tag: str, count: int) -> None:
    errors: list[Any] = []

    def on_delivery(err: Any, msg: Any) -> None:
        if err is not None:
            errors.append(err)
        else:
            acked[int(msg.offset())] = bytes(msg.value())

    for i in range(count):
        producer.produce(
            TOPIC, value=f"{tag}-{i:05d}-".encode() + b"x" * 100, partition=0, on_delivery=on_delivery
        )
        producer.poll(0)
    assert producer.flush(60) == 0
    assert not errors, errors[:3]


def _low_watermark(bootstrap: str) -> int:
    """The partition's log start as its leader answers it; -1 while no leader answers (an election)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "watermarks"})
    try:
        low, _high = consumer.get_watermark_offsets(TopicPartition(TOPIC, 0), timeout=10)
        return int(low)
    except KafkaException:
        return -1
    finally:
        consumer.close()


def _wait(what: str, check: Any, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_replica_behind_the_log_start_installs_a_snapshot_and_serves_the_same_records(tmp_path: Path) -> None:
    with Cluster(tmp_path, 3, extra_args=("--retention-check-ms", "200")) as cluster:
        wait_controller(cluster)
        admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
        futures = admin.create_topics([NewTopic(TOPIC, 1, 3, config=CONFIGS)], operation_timeout=30)
        futures[TOPIC].result(30)
        producer = Producer(
            {"bootstrap.servers": cluster.bootstrap, "acks": "all", "linger.ms": 5, "batch.size": 2000}
        )
        acked: dict[int, bytes] = {}
        _produce(producer, acked, "warm", 10)
        leader = partition_leader(producer, TOPIC, 0)
        lagging, other = (n for n in cluster.brokers if n != leader)
        cluster.brokers[lagging].kill()

        _produce(producer, acked, "while-down", 1500)
        # Retention drops whole segments, through a snapshot, on the leader (and the live follower).
        _wait("the log start to move past most of it", lambda: _low_watermark(cluster.bootstrap) > 1000)
        low = _wait("the log start", lambda: max(_low_watermark(cluster.bootstrap), 0))

        cluster.brokers[lagging].start()
        restored = _wait(
            "the lagging replica to install the snapshot",
            lambda: re.findall(
                r"event=partition_snapshot_restored group=\d+ topic=retained partition=0 index=\d+ "
                r"offset=(\d+)",
                cluster.brokers[lagging].log_path.read_text(errors="replace"),
            ),
        )
        assert int(restored[-1]) >= low

        # With the other follower down, the next writes commit only with the restored replica's acks.
        cluster.brokers[other].kill()
        _produce(producer, acked, "after-restore", 200)
        # The restored replica holds the newest records; the one restarted now does not: it must lead.
        cluster.brokers[leader].kill()
        cluster.brokers[other].start()
        assert _wait("a new leader", lambda: partition_leader(producer, TOPIC, 0) == lagging)

        end = max(acked) + 1
        start = _wait("the log start", lambda: max(_low_watermark(cluster.bootstrap), 0))
        assert start >= low
        consumer = Consumer(
            {"bootstrap.servers": cluster.bootstrap, "group.id": "reader", "enable.auto.commit": False}
        )
        consumer.assign([TopicPartition(TOPIC, 0, start)])
        read: dict[int, bytes] = {}
        deadline = time.monotonic() + 60
        try:
            while len(read) < end - start:
                assert time.monotonic() < deadline, f"read {len(read)} of {end - start}"
                msg = consumer.poll(0.5)
                if msg is None or msg.error() is not None:
                    continue
                read[int(msg.offset())] = bytes(msg.value())
        finally:
            consumer.close()
        assert sorted(read) == list(range(start, end))  # no gap, nothing Raft-only shows up
        assert all(read[o] == acked[o] for o in range(start, end))
        producer.flush(5)
