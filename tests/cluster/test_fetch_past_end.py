"""Fetching past the end: only a caught-up leader says OFFSET_OUT_OF_RANGE (which makes consumers reset
their position); a replica that may still be applying committed batches answers the retriable
NOT_LEADER_OR_FOLLOWER instead."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from confluent_kafka import Producer
from kio.schema.fetch.v12 import request as fr
from streamraft_broker.protocol.codec import build

from tests.support.launcher import Cluster, create_topic, partition_leader
from tests.support.wire import WireClient

TOPIC = "edge"
OFFSET_OUT_OF_RANGE, NOT_LEADER_OR_FOLLOWER = 1, 6


def _fetch_error(port: int, offset: int) -> int:
    part = build(
        fr.FetchPartition,
        partition=0,
        current_leader_epoch=-1,
        fetch_offset=offset,
        last_fetched_epoch=-1,
        log_start_offset=-1,
        partition_max_bytes=1 << 20,
    )
    req = build(
        fr.FetchRequest,
        replica_id=-1,
        max_wait=0,
        min_bytes=0,
        max_bytes=1 << 20,
        isolation_level=0,
        session_id=0,
        session_epoch=-1,
        topics=(build(fr.FetchTopic, topic=TOPIC, partitions=(part,)),),
        forgotten_topics_data=(),
        rack_id="",
    )
    with WireClient("127.0.0.1", port) as c:
        result: Any = c.request(1, 12, req).responses[0].partitions[0]
    return int(result.error_code)


def test_only_a_caught_up_leader_answers_offset_out_of_range(tmp_path: Path) -> None:
    with Cluster(tmp_path, 3) as cluster:
        create_topic(cluster, TOPIC, 1)
        producer = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all"})
        producer.produce(TOPIC, value=b"one", partition=0)
        assert producer.flush(30) == 0
        leader = partition_leader(producer, TOPIC, 0)
        follower = next(n for n in cluster.brokers if n != leader)
        assert _fetch_error(cluster.kafka_ports[leader], 0) == 0
        assert _fetch_error(cluster.kafka_ports[leader], 5) == OFFSET_OUT_OF_RANGE
        assert _fetch_error(cluster.kafka_ports[follower], 5) == NOT_LEADER_OR_FOLLOWER
