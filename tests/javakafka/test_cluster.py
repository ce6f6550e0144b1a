"""The KRaft harness itself, against real Kafka: 3 nodes come up, a SIGKILLed leader is replaced and
acks=all produces resume, and the killed node rejoins the ISR after restart."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from tests.javakafka.cluster import KafkaCluster, partition_leader

pytestmark = pytest.mark.java


def _produce_one(bootstrap: str, topic: str, timeout_s: float) -> None:
    errors: list[KafkaError] = []
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "message.timeout.ms": int(timeout_s * 1000)})
    p.produce(topic, b"v", on_delivery=lambda err, _m: errors.append(err) if err else None)
    assert p.flush(timeout_s + 5) == 0, "produce not acknowledged"
    assert not errors, errors


def _isr(bootstrap: str, topic: str) -> tuple[int, int]:
    part = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic=topic, timeout=10).topics[topic]
    p0 = part.partitions[0]
    return len(p0.isrs), len(p0.replicas)


def test_three_nodes_survive_a_leader_sigkill() -> None:
    with KafkaCluster(3, fsync=True, heap="512m") as cluster:
        assert "log.flush.interval.messages=1" in cluster.nodes[0].config_path.read_text()
        topic = "harness"
        admin = AdminClient({"bootstrap.servers": cluster.bootstrap_servers})
        for fut in admin.create_topics([NewTopic(topic, 1, 3)]).values():
            fut.result(timeout=60)
        deadline = time.monotonic() + 60
        while _isr(cluster.bootstrap_servers, topic) != (3, 3):
            assert time.monotonic() < deadline, "replicas never all in sync"
            time.sleep(0.2)
        _produce_one(cluster.bootstrap_servers, topic, 30)

        leader = partition_leader(cluster.bootstrap_servers, topic, 0)
        assert leader in (1, 2, 3)
        cluster.kill(leader)
        assert not cluster.node(leader).alive()
        survivors = ",".join(n.address for n in cluster.nodes if n.node_id != leader)
        # min.insync.replicas=2 with two nodes left: acks=all still succeeds, on a new leader.
        _produce_one(survivors, topic, 60)
        assert partition_leader(survivors, topic, 0) not in (leader, -1)

        cluster.start_node(leader)
        cluster.wait_ready(expect=3)
        deadline = time.monotonic() + 90
        while _isr(cluster.bootstrap_servers, topic) != (3, 3):
            assert time.monotonic() < deadline, "restarted node never rejoined the ISR"
            time.sleep(0.2)
    assert not any(n.alive() for n in cluster.nodes)
