"""Topic administration through the controller group: every broker applies creates, partition additions
and deletions from the metadata log."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from confluent_kafka import KafkaException, Message, Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewPartitions, NewTopic

from tests.cluster.history import History
from tests.cluster.launcher import Cluster, consume_all, create_topic, partition_leader

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


def test_even_replication_factor_is_refused(tmp_path: Path) -> None:
    with Cluster(tmp_path, 3) as cluster:
        create_topic(cluster, "ok", 1)
        admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
        futures = admin.create_topics([NewTopic("even", 1, 2)], operation_timeout=10)
        with pytest.raises(KafkaException, match="must be odd"):
            futures["even"].result(15)


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
