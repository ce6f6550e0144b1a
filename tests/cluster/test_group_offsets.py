"""Replicated consumer-group offsets (3 real brokers, confluent-kafka): a group's committed offsets survive
a SIGKILL of its coordinator (the group finds the new one and resumes from them) and a SIGKILL of the
whole cluster followed by a restart; AdminClient describes them like kafka-consumer-groups does."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import (
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from tests.cluster.launcher import Cluster, create_topic

pytestmark = pytest.mark.timeout(240)

TOPIC = "orders"
PARTITIONS = 3
RECORDS = 240


def _produce_all(bootstrap: str) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True})
    errors: list[Any] = []
    for i in range(RECORDS):
        producer.produce(
            TOPIC,
            value=str(i).encode(),
            partition=i % PARTITIONS,
            on_delivery=lambda err, _msg: errors.append(err) if err else None,
        )
        producer.poll(0)
    assert producer.flush(60) == 0 and not errors, errors[:3]


def _consumer(bootstrap: str, group: str) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 10_000,
            "heartbeat.interval.ms": 500,
        }
    )


def _commit(consumer: Consumer, tp: TopicPartition, deadline: float) -> None:
    """Synchronous commit, retried while the coordinator moves (the client re-finds it)."""
    while True:
        try:
            consumer.commit(offsets=[tp], asynchronous=False)
            return
        except KafkaException as exc:
            assert time.monotonic() < deadline, f"commit of {tp} never succeeded: {exc}"
            assert exc.args[0].retriable() or exc.args[0].code() in (
                KafkaError.NOT_COORDINATOR,
                KafkaError.COORDINATOR_NOT_AVAILABLE,
                KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
                KafkaError._WAIT_COORD,
                KafkaError.REQUEST_TIMED_OUT,
                KafkaError._TIMED_OUT,
                KafkaError._TRANSPORT,
            ), exc


def _consume(
    consumer: Consumer, count: int, seen: dict[int, list[int]], committed: dict[int, int], deadline: float
) -> None:
    """Poll `count` records, committing each one's next offset synchronously before taking another."""
    got = 0
    while got < count:
        assert time.monotonic() < deadline, f"consumed {got} of {count}; seen {seen}"
        msg = consumer.poll(0.5)
        if msg is None or msg.error() is not None:
            continue
        partition, offset = msg.partition(), msg.offset()
        assert partition is not None and offset is not None
        seen[partition].append(offset)
        _commit(consumer, TopicPartition(TOPIC, partition, offset + 1), deadline)
        committed[partition] = offset + 1
        got += 1


def _committed(consumer: Consumer, wanted: dict[int, int], deadline: float) -> dict[int, int]:
    asked = [TopicPartition(TOPIC, p) for p in wanted]
    while True:
        try:
            return {tp.partition: tp.offset for tp in consumer.committed(asked, timeout=10)}
        except KafkaException as exc:
            assert time.monotonic() < deadline, f"committed offsets never fetched: {exc}"
        time.sleep(0.2)  # pacing between retries while the restarted cluster elects


def _coordinator(admin: AdminClient, group: str) -> int:
    deadline = time.monotonic() + 30
    while True:
        try:
            desc = admin.describe_consumer_groups([group], request_timeout=15)[group].result(30)
            if desc.coordinator is not None and desc.coordinator.id > 0:
                return int(desc.coordinator.id)
        except KafkaException:
            pass  # coordinator moving or loading: ask again
        assert time.monotonic() < deadline, f"no coordinator for {group}"
        time.sleep(0.2)  # pacing between describe calls


def _described_offsets(admin: AdminClient, group: str, timeout: float = 60) -> dict[int, int]:
    """The group's committed offsets as AdminClient lists them (kafka-consumer-groups --describe)."""

    deadline = time.monotonic() + timeout
    request = ConsumerGroupTopicPartitions(group, [TopicPartition(TOPIC, p) for p in range(PARTITIONS)])
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = admin.list_consumer_group_offsets([request], request_timeout=15)[group].result(30)
            # A negative offset (OFFSET_INVALID) means the group committed nothing there.
            return {tp.partition: tp.offset for tp in result.topic_partitions if tp.offset >= 0}
        except KafkaException as exc:
            last = exc  # coordinator not elected or still loading after a restart
        time.sleep(0.2)  # pacing between retries
    raise AssertionError(f"offsets of {group} never listed: {last}")


def test_group_resumes_from_committed_offsets_after_coordinator_sigkill(tmp_path: Path) -> None:
    with Cluster(tmp_path, 3) as cluster:
        create_topic(cluster, TOPIC, PARTITIONS)
        _produce_all(cluster.bootstrap)
        admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
        deadline = time.monotonic() + 150
        seen_a: dict[int, list[int]] = {p: [] for p in range(PARTITIONS)}
        committed: dict[int, int] = {}
        first = _consumer(cluster.bootstrap, "g1")
        first.subscribe([TOPIC])
        try:
            _consume(first, RECORDS // 3, seen_a, committed, deadline)
            victim = _coordinator(admin, "g1")
            cluster.brokers[victim].kill()
            # The same member goes on through the failover: its commits reach the new coordinator.
            _consume(first, RECORDS // 3, seen_a, committed, deadline)
        finally:
            first.close()
        assert _coordinator(admin, "g1") != victim
        assert _described_offsets(admin, "g1") == committed
        # A new member of the group starts where the first one's commits left off.
        seen_b: dict[int, list[int]] = {p: [] for p in range(PARTITIONS)}
        second = _consumer(cluster.bootstrap, "g1")
        second.subscribe([TOPIC])
        try:
            _consume(second, RECORDS - sum(len(v) for v in seen_a.values()), seen_b, committed, deadline)
        finally:
            second.close()
        for p in range(PARTITIONS):
            # Every offset once: none skipped, none read again (every read was committed before the next).
            assert sorted(seen_a[p] + seen_b[p]) == list(range(RECORDS // PARTITIONS)), (p, seen_a, seen_b)
            if seen_b[p]:
                assert seen_b[p][0] == (seen_a[p][-1] + 1 if seen_a[p] else 0)


def test_committed_offsets_survive_whole_cluster_sigkill_and_restart(tmp_path: Path) -> None:
    with Cluster(tmp_path, 3) as cluster:
        create_topic(cluster, TOPIC, PARTITIONS)
        wanted = {0: 7, 1: 0, 2: 123}
        consumer = _consumer(cluster.bootstrap, "restart-group")
        deadline = time.monotonic() + 60
        try:
            for p, offset in wanted.items():
                _commit(consumer, TopicPartition(TOPIC, p, offset), deadline)
            assert _committed(consumer, wanted, deadline) == wanted
        finally:
            consumer.close()
        for broker in cluster.brokers.values():
            broker.kill()
        for broker in cluster.brokers.values():
            broker.start()
        after = _consumer(cluster.bootstrap, "restart-group")
        try:
            assert _committed(after, wanted, deadline=time.monotonic() + 90) == wanted
        finally:
            after.close()
        # Asked only once the coordinator answers: librdkafka 2.16's admin client aborts the process
        # (rd_kafka_enq_once_del_source_return assertion) when its group requests time out repeatedly.
        admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
        assert _described_offsets(admin, "restart-group") == wanted
        listed = admin.list_consumer_groups(request_timeout=10).result(20)
        assert "restart-group" in {g.group_id for g in listed.valid}
        # Deleting the topic deletes the group's offsets for it (tombstones through the coordinator).
        admin.delete_topics([TOPIC], operation_timeout=10)[TOPIC].result(30)
        deadline = time.monotonic() + 30
        while _described_offsets(admin, "restart-group"):
            assert time.monotonic() < deadline, "offsets of the deleted topic are still listed"
            time.sleep(0.2)  # pacing between polls
