"""acks=1 against a replicated partition: answered once the batch is in the leader's log, without waiting
for a majority; acks=all waits for the commit. Shown with both followers frozen (SIGSTOP)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from tests.support.launcher import Cluster, create_topic, partition_leader

pytestmark = pytest.mark.timeout(180)

TOPIC = "acks"


def _send(bootstrap: str, acks: str, value: bytes, timeout_ms: int) -> tuple[Any, int]:
    """(error or None, offset) of one record produced with ``acks``."""
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": acks,
            "message.timeout.ms": timeout_ms,
            "enable.idempotence": False,
        }
    )
    outcome: list[tuple[Any, int]] = []
    producer.produce(
        TOPIC, value=value, partition=0, on_delivery=lambda err, msg: outcome.append((err, msg.offset()))
    )
    producer.flush(timeout_ms / 1000 + 10)
    assert len(outcome) == 1
    return outcome[0]


def test_acks_1_is_answered_from_the_leader_log_while_acks_all_waits_for_a_majority(tmp_path: Path) -> None:
    with Cluster(tmp_path, 3) as cluster:
        create_topic(cluster, TOPIC, 1)
        probe = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all"})
        probe.produce(TOPIC, value=b"first", partition=0)
        assert probe.flush(30) == 0
        leader = partition_leader(probe, TOPIC, 0)
        leader_bootstrap = f"127.0.0.1:{cluster.kafka_ports[leader]}"
        followers = [b for n, b in cluster.brokers.items() if n != leader]
        for b in followers:
            assert b.pid is not None
            os.kill(b.pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            err, offset = _send(leader_bootstrap, "1", b"leader-only", 20_000)
            assert err is None, err
            assert offset == 1
            assert time.monotonic() - started < 15
            # The same partition, acks=all: no majority can fsync it while the followers are frozen.
            err, _ = _send(leader_bootstrap, "all", b"needs-majority", 3_000)
            assert err is not None
        finally:
            for b in followers:
                assert b.pid is not None
                os.kill(b.pid, signal.SIGCONT)
        # The followers run again. What acks=1 promised is only the leader's copy: the two followers alone
        # are a majority and may elect one of themselves, cutting "leader-only" off (or the old leader wins
        # and commits it). Either way the partition goes on, and a later acks=all write is read back after
        # "first", with nothing duplicated.
        err, after = _send(cluster.bootstrap, "all", b"after", 60_000)
        assert err is None, err
        consumer = Consumer(
            {"bootstrap.servers": cluster.bootstrap, "group.id": "r", "enable.auto.commit": False}
        )
        consumer.assign([TopicPartition(TOPIC, 0, 0)])
        read: dict[int, bytes] = {}
        deadline = time.monotonic() + 60
        try:
            while after not in read:
                assert time.monotonic() < deadline, read
                msg = consumer.poll(0.5)
                if msg is not None and msg.error() is None:
                    value, offset = msg.value(), msg.offset()
                    assert isinstance(value, bytes) and offset is not None
                    read[offset] = value
        finally:
            consumer.close()
        values = [read[o] for o in sorted(read)]
        assert sorted(read) == list(range(after + 1))
        assert values[0] == b"first" and values[-1] == b"after"
        assert set(values[1:-1]) <= {b"leader-only", b"needs-majority"}
        assert len(set(values)) == len(values)
