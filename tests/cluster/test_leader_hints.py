"""KIP-951: a Produce (v10+) that reaches a follower is told where the leader is, so the client moves
there without first refreshing its metadata."""

from __future__ import annotations

import time
from pathlib import Path

from confluent_kafka import Producer
from kio.schema.produce.v11 import request as pr
from streamraft_broker.protocol.codec import build
from streamraft_broker.records import SimpleRecord, build_batch

from tests.support.launcher import Cluster, create_topic, partition_leader
from tests.support.wire import WireClient

TOPIC = "hinted"
NOT_LEADER_OR_FOLLOWER = 6


def _produce_to(port: int) -> tuple[int, tuple[int, int], list[tuple[int, str, int]]]:
    """(error, (hinted leader, epoch), node endpoints) of a v11 produce of one record sent to ``port``."""
    batch = build_batch(
        [SimpleRecord(key=None, value=b"v", offset_delta=0)], timestamp_ms=int(time.time() * 1000)
    )
    request = build(
        pr.ProduceRequest,
        transactional_id=None,
        acks=-1,
        timeout=10000,
        topic_data=(
            build(
                pr.TopicProduceData,
                name=TOPIC,
                partition_data=(build(pr.PartitionProduceData, index=0, records=batch),),
            ),
        ),
    )
    with WireClient("127.0.0.1", port, timeout=30) as client:
        response = client.request(0, 11, request)
    part = response.responses[0].partition_responses[0]
    leader = (int(part.current_leader.leader_id), int(part.current_leader.leader_epoch))
    return int(part.error_code), leader, [(n.node_id, n.host, n.port) for n in response.node_endpoints]


def test_produce_to_a_follower_names_the_leader_and_its_endpoint(tmp_path: Path) -> None:
    with Cluster(tmp_path, 3) as cluster:
        create_topic(cluster, TOPIC, 1)
        producer = Producer({"bootstrap.servers": cluster.bootstrap})
        for _ in range(3):  # leaders are rebalanced after start: a move between the two looks is retried
            leader = partition_leader(producer, TOPIC, 0)
            follower = min(n for n in cluster.kafka_ports if n != leader)
            code, (hinted, epoch), endpoints = _produce_to(cluster.kafka_ports[follower])
            assert code == NOT_LEADER_OR_FOLLOWER, code
            if hinted == leader:
                break
        assert hinted == leader, (hinted, leader)
        assert epoch > 0
        assert endpoints == [(leader, "127.0.0.1", cluster.kafka_ports[leader])]
        # The leader itself takes the batch, and its answer carries no hint.
        code, (hinted, _), endpoints = _produce_to(cluster.kafka_ports[leader])
        assert (code, hinted, endpoints) == (0, -1, [])
