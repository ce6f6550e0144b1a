"""Topic administration through the controller group: every broker applies creates, partition additions
and deletions from the metadata log."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from confluent_kafka import KafkaException, Message, Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewPartitions, NewTopic

from tests.support.history import History
from tests.support.launcher import Cluster, consume_all, create_topic, partition_leader, wait_controller
from tests.support.membership import registered

pytestmark = pytest.mark.timeout(180)
TOPIC = "admin"


def _topic_on_every_broker(cluster: Cluster, partitions: int | None) -> bool:
    """True when each broker's own Metadata shows the topic with that many partitions (None: absent)."""
    for port in cluster.kafka_ports.values():
        admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{port}"})
        topics = admin.list_topics(timeout=5).topics
        got = len(topics[TOPIC].partitions) if TOPIC in topics and topics[TOPIC].error is None else None
        if got != partitions:
            return False
    return True


def _wait(cluster: Cluster, partitions: int | None) -> None:
    deadline = time.monotonic() + 30
    while not _topic_on_every_broker(cluster, partitions):
        assert time.monotonic() < deadline, f"brokers never agreed on {TOPIC} having {partitions} partitions"
        time.sleep(0.1)  # pacing between metadata polls


def test_even_replication_factor_and_illegal_names_are_refused(tmp_path: Path) -> None:
    with Cluster(tmp_path, 3) as cluster:
        create_topic(cluster, "ok", 1)
        admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
        futures = admin.create_topics([NewTopic("even", 1, 2)], operation_timeout=10)
        with pytest.raises(KafkaException, match="must be odd"):
            futures["even"].result(15)
        # Kafka's name rule on the replicated path too ('abc\n' used to pass the old regex).
        futures = admin.create_topics([NewTopic("abc\n", 1, 3)], operation_timeout=10)
        with pytest.raises(KafkaException, match="may only hold ASCII letters"):
            futures["abc\n"].result(15)


def test_add_partitions_then_delete_and_recreate(tmp_path: Path) -> None:
    with Cluster(tmp_path, 3) as cluster:
        create_topic(cluster, TOPIC, 1)
        admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
        admin.create_partitions([NewPartitions(TOPIC, 3)], operation_timeout=10)[TOPIC].result(15)
        _wait(cluster, 3)
        producer = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all"})
        partition_leader(producer, TOPIC, 2)
        history = History()

        def on_delivery(err: object, msg: Message) -> None:
            part, offset, value = msg.partition(), msg.offset(), msg.value()
            if err is None and part is not None and offset is not None and isinstance(value, bytes):
                history.acked.append((part, offset, value))

        for p in range(3):
            producer.produce(TOPIC, value=f"v{p}".encode(), partition=p, on_delivery=on_delivery)
        assert producer.flush(30) == 0
        assert len(history.acked) == 3
        consume_all(cluster.bootstrap, "reader", TOPIC, {0: 1, 1: 1, 2: 1}, history)
        assert not history.check(), history.check()

        admin.delete_topics([TOPIC], operation_timeout=10)[TOPIC].result(15)
        _wait(cluster, None)
        create_topic(cluster, TOPIC, 1)
        _wait(cluster, 1)
        # The new topic starts empty: the old partition's log and Raft group went with the delete.
        producer.produce(TOPIC, value=b"fresh", partition=0)
        assert producer.flush(30) == 0
        again = History()
        consume_all(cluster.bootstrap, "reader2", TOPIC, {0: 1}, again)
        assert again.reads["reader2"][0] == [(0, b"fresh")]


def test_leaders_move_to_preferred_replicas(tmp_path: Path) -> None:
    with Cluster(tmp_path, 3) as cluster:
        create_topic(cluster, TOPIC, 3)
        producer = Producer({"bootstrap.servers": cluster.bootstrap})
        deadline = time.monotonic() + 60
        while True:
            parts = producer.list_topics(TOPIC, timeout=5).topics[TOPIC].partitions
            leaders = {p: (m.leader, m.replicas[0]) for p, m in parts.items()}
            if len(leaders) == 3 and all(lead == first for lead, first in leaders.values()):
                break
            assert time.monotonic() < deadline, f"leaders never reached preferred replicas: {leaders}"
            time.sleep(0.2)  # pacing between metadata polls
        # Placement rotates first replicas, so preferred leadership spreads over all three brokers.
        assert {lead for lead, _ in leaders.values()} == {1, 2, 3}


def _kill_then_commit(cluster: Cluster, gone: int, producer: Producer, expected: int) -> list[bytes]:
    """SIGKILL broker ``gone``, produce to partition 0 until a record commits without it (60 s at most), then
    read the partition from the start: its first ``expected`` values."""
    cluster.brokers[gone].kill()
    deadline = time.monotonic() + 60
    while True:
        producer.produce(TOPIC, value=b"after-kill", partition=0)
        if producer.flush(10) == 0:
            break
        assert time.monotonic() < deadline, f"no commit without broker {gone}\n{cluster.logs()}"
    history = History()
    consume_all(cluster.bootstrap, "reader", TOPIC, {0: expected}, history)
    return [v for _, v in history.reads["reader"][0]]


def test_recreated_topic_survives_a_restart_that_replays_its_deletion(tmp_path: Path) -> None:
    """A broker restarting replays the controller log: the topic's first life, its deletion and its second
    life, all at the same partition directory. Its copy of the second life must come back whole (it once
    was wiped by the replayed deletion), so that it can carry the partition with one other broker down."""
    with Cluster(tmp_path, 3) as cluster:
        create_topic(cluster, TOPIC, 1)
        producer = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all"})
        producer.produce(TOPIC, value=b"first-life", partition=0)
        assert producer.flush(30) == 0
        admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
        admin.delete_topics([TOPIC], operation_timeout=10)[TOPIC].result(15)
        _wait(cluster, None)
        create_topic(cluster, TOPIC, 1)
        _wait(cluster, 1)
        fresh = [f"second-life-{i}".encode() for i in range(3)]
        for value in fresh:
            producer.produce(TOPIC, value=value, partition=0)
        assert producer.flush(30) == 0

        leader = partition_leader(producer, TOPIC, 0)
        victim = next(n for n in sorted(cluster.brokers) if n != leader)
        cluster.brokers[victim].kill()
        cluster.brokers[victim].start()
        _wait(cluster, 1)
        # With the leader gone, the partition needs the restarted broker's replica for every commit.
        values = _kill_then_commit(cluster, leader, producer, expected=4)
        assert values[:3] == fresh and b"first-life" not in values, values


def test_follower_applying_deletion_and_recreation_together_keeps_the_new_topic(tmp_path: Path) -> None:
    """A follower frozen (SIGSTOP) across DeleteTopics and CreateTopics of one name receives both entries
    at once on SIGCONT: its old partition is still closing in the directory the new one uses, so the new
    one opens only once it is gone. Then the follower's copy must carry the partition."""
    with Cluster(tmp_path, 3) as cluster:
        create_topic(cluster, TOPIC, 1)
        producer = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all"})
        producer.produce(TOPIC, value=b"first-life", partition=0)
        assert producer.flush(30) == 0
        controller = wait_controller(cluster)
        frozen = next(n for n in sorted(cluster.brokers) if n != controller)
        pid = cluster.brokers[frozen].pid
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)
        try:
            others = ",".join(f"127.0.0.1:{cluster.kafka_ports[n]}" for n in cluster.brokers if n != frozen)
            admin = AdminClient({"bootstrap.servers": others})
            admin.delete_topics([TOPIC], operation_timeout=10)[TOPIC].result(15)
            admin.create_topics([NewTopic(TOPIC, 1, 3)], operation_timeout=10)[TOPIC].result(15)
            fresh = Producer({"bootstrap.servers": others, "acks": "all"})
            fresh.produce(TOPIC, value=b"second-life", partition=0)
            assert fresh.flush(30) == 0
        finally:
            os.kill(pid, signal.SIGCONT)
        _wait(cluster, 1)
        survivor = next(n for n in sorted(cluster.brokers) if n not in (frozen, controller))
        # Only the thawed follower and the controller left: every commit needs the thawed follower's copy.
        values = _kill_then_commit(cluster, survivor, producer, expected=2)
        assert values[0] == b"second-life" and b"first-life" not in values, values


def test_topic_created_before_the_last_member_starts_gets_all_its_replicas(tmp_path: Path) -> None:
    """Two of three configured members up (a controller quorum), the third not started yet: CreateTopics
    with RF 3 places a replica on it too, and once it starts it hosts that replica."""
    cluster = Cluster(tmp_path, 3)
    try:
        for n in (1, 2):
            cluster.brokers[n].metrics = True  # the admin endpoint lists registrations
            cluster.brokers[n].start()
        deadline = time.monotonic() + 60
        while set(registered(cluster.brokers[1])) != {1, 2}:
            assert time.monotonic() < deadline, registered(cluster.brokers[1])
            time.sleep(0.2)  # pacing between admin polls
        early = ",".join(f"127.0.0.1:{cluster.kafka_ports[n]}" for n in (1, 2))
        admin = AdminClient({"bootstrap.servers": early})
        while True:
            try:
                admin.create_topics([NewTopic(TOPIC, 3, 3)], operation_timeout=10)[TOPIC].result(15)
                break
            except KafkaException as exc:
                # Only "no controller yet" may be retried; a refused replication factor fails the test.
                assert "REPLICATION_FACTOR" not in str(exc), exc
                assert time.monotonic() < deadline, exc
                time.sleep(0.2)  # pacing between attempts while the controller is elected
        parts = admin.list_topics(TOPIC, timeout=10).topics[TOPIC].partitions
        assert all(sorted(p.replicas) == [1, 2, 3] for p in parts.values()), parts
        cluster.brokers[3].start()
        _wait(cluster, 3)
        producer = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all"})
        for p in range(3):
            producer.produce(TOPIC, value=b"v", partition=p)
        assert producer.flush(30) == 0
    finally:
        for b in cluster.brokers.values():
            b.kill()
