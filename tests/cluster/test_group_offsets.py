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
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient
from kafka import KafkaAdminClient
from kafka.errors import KafkaError as KafkaPythonError

from tests.support.launcher import Cluster, create_topic

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


# The group moved on (a rebalance during the failover): this commit is lost and its record may come again.
_GROUP_MOVED = (KafkaError.ILLEGAL_GENERATION, KafkaError.UNKNOWN_MEMBER_ID, KafkaError.REBALANCE_IN_PROGRESS)
_COORDINATOR_MOVING = (
    KafkaError.NOT_COORDINATOR,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    KafkaError._WAIT_COORD,
    KafkaError.REQUEST_TIMED_OUT,
    KafkaError._TIMED_OUT,
    KafkaError._TRANSPORT,
)


def _commit(consumer: Consumer, tp: TopicPartition, deadline: float) -> bool:
    """Synchronous commit, retried while the coordinator moves (the client re-finds it). False when the
    group rebalanced under it, so the commit is refused as Kafka refuses it."""
    while True:
        try:
            consumer.commit(offsets=[tp], asynchronous=False)
            return True
        except KafkaException as exc:
            code = exc.args[0].code()
            if code in _GROUP_MOVED:
                return False
            assert time.monotonic() < deadline, f"commit of {tp} never succeeded: {exc}"
            assert exc.args[0].retriable() or code in _COORDINATOR_MOVING, exc


class _Reads:
    """What one test's consumers read and committed."""

    def __init__(self) -> None:
        self.seen: dict[int, list[int]] = {p: [] for p in range(PARTITIONS)}
        self.committed: dict[int, int] = {}
        self.uncommitted: set[tuple[int, int]] = set()
        """(partition, offset) read but whose commit was refused: the one window a re-read may come from."""

    def covered(self) -> bool:
        return all(set(self.seen[p]) >= set(range(RECORDS // PARTITIONS)) for p in range(PARTITIONS))


def _consume(consumer: Consumer, reads: _Reads, deadline: float, count: int | None = None) -> list[int]:
    """Poll `count` records (or until every record was read), committing each one's next offset
    synchronously before taking another; returns the partitions' first offsets read, in order."""
    got = 0
    firsts: dict[int, int] = {}
    while (got < count) if count is not None else not reads.covered():
        assert time.monotonic() < deadline, f"consumed {got} of {count}; seen {reads.seen}"
        msg = consumer.poll(0.5)
        if msg is None or msg.error() is not None:
            continue
        partition, offset = msg.partition(), msg.offset()
        assert partition is not None and offset is not None
        reads.seen[partition].append(offset)
        firsts.setdefault(partition, offset)
        if _commit(consumer, TopicPartition(TOPIC, partition, offset + 1), deadline):
            reads.committed[partition] = offset + 1
        else:
            reads.uncommitted.add((partition, offset))
        got += 1
    return [firsts.get(p, -1) for p in range(PARTITIONS)]


def _committed(consumer: Consumer, wanted: dict[int, int], deadline: float) -> dict[int, int]:
    asked = [TopicPartition(TOPIC, p) for p in wanted]
    while True:
        try:
            return {tp.partition: tp.offset for tp in consumer.committed(asked, timeout=10)}
        except KafkaException as exc:
            assert time.monotonic() < deadline, f"committed offsets never fetched: {exc}"
        time.sleep(0.2)  # pacing between retries while the restarted cluster elects


def _listed_groups(admin: AdminClient) -> set[str]:
    listed = admin.list_consumer_groups(request_timeout=10).result(20)
    return {g.group_id for g in listed.valid}


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


def _described_offsets(bootstrap: str, group: str, timeout: float = 60) -> dict[int, int]:
    """The group's committed offsets as an admin client lists them (kafka-consumer-groups --describe).

    kafka-python's admin client: librdkafka 2.16's ``list_consumer_group_offsets`` kills the whole process
    (SIGSEGV in its OffsetFetch response handling) when a coordinator answers with a coordinator error, which
    a cluster answers while a coordinator moves; a crash there would take the test run with it."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","), request_timeout_ms=15_000)
        try:
            listed = admin.list_group_offsets({group: None})[group]
            # A negative offset (OFFSET_INVALID) means the group committed nothing there.
            return {
                tp.partition: meta.offset
                for tp, meta in listed.items()
                if tp.topic == TOPIC and meta.offset >= 0
            }
        except KafkaPythonError as exc:
            last = exc  # coordinator not elected or still loading after a restart
        finally:
            admin.close()
        time.sleep(0.2)  # pacing between retries
    raise AssertionError(f"offsets of {group} never listed: {last}")


def test_group_resumes_from_committed_offsets_after_coordinator_sigkill(tmp_path: Path) -> None:
    with Cluster(tmp_path, 3) as cluster:
        create_topic(cluster, TOPIC, PARTITIONS)
        _produce_all(cluster.bootstrap)
        admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
        deadline = time.monotonic() + 150
        reads = _Reads()
        first = _consumer(cluster.bootstrap, "g1")
        first.subscribe([TOPIC])
        try:
            _consume(first, reads, deadline, RECORDS // 3)
            victim = _coordinator(admin, "g1")
            cluster.brokers[victim].kill()
            # The same member goes on through the failover: its commits reach the new coordinator.
            _consume(first, reads, deadline, RECORDS // 3)
        finally:
            first.close()
        assert _coordinator(admin, "g1") != victim
        committed_by_first = dict(reads.committed)
        assert _described_offsets(cluster.bootstrap, "g1") == committed_by_first
        # A new member of the group starts where the first one's commits left off.
        second = _consumer(cluster.bootstrap, "g1")
        second.subscribe([TOPIC])
        try:
            firsts = _consume(second, reads, deadline)
        finally:
            second.close()
        for p in range(PARTITIONS):
            if firsts[p] >= 0:
                assert firsts[p] == committed_by_first.get(p, 0), (p, firsts, committed_by_first)
            # None skipped (covered() ended the reading); read twice only where a commit was refused.
            twice = {o for o in reads.seen[p] if reads.seen[p].count(o) > 1}
            assert twice <= {o for q, o in reads.uncommitted if q == p}, (p, twice, reads.uncommitted)


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
        admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
        assert _described_offsets(cluster.bootstrap, "restart-group") == wanted
        deadline = time.monotonic() + 30
        # Retried: a broker still loading a partition (leaders move back to preferred replicas after a
        # restart) answers LOAD_IN_PROGRESS rather than a list missing that partition's groups.
        while "restart-group" not in _listed_groups(admin):
            assert time.monotonic() < deadline, "restart-group is not listed"
            time.sleep(0.2)  # pacing between polls
        # Deleting the topic deletes the group's offsets for it (tombstones through the coordinator).
        admin.delete_topics([TOPIC], operation_timeout=10)[TOPIC].result(30)
        deadline = time.monotonic() + 30
        while _described_offsets(cluster.bootstrap, "restart-group"):
            assert time.monotonic() < deadline, "offsets of the deleted topic are still listed"
            time.sleep(0.2)  # pacing between polls
