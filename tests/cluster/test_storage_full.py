"""A full disk under one broker of a 3-broker Raft cluster (each broker's data directory is a small real
tmpfs): first under a follower, then under the partition's leader, then under the controller's leader
while a topic is created. Produce with acks=all keeps succeeding
through the other replicas (the leader's group fails stop there and leadership moves away), the broker
reports the storage error (log and metrics), and once space is freed it re-opens its copy from disk and
catches up. Every acknowledged record is read back at its acknowledged offset."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

from tests.support.launcher import Cluster, create_topic, partition_leader, wait_controller
from tests.support.metrics import scrape
from tests.support.small_disk import fill, free, small_tmpfs

pytestmark = pytest.mark.timeout(240)

TOPIC = "fills-up"
LATE = "created-while-full"


def poll(what: str, check: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not reached within {timeout}s: {what}"
        time.sleep(0.2)  # pacing between scrapes; the sampler refreshes once a second


def failed_groups(port: int) -> set[str]:
    return {labels["group"] for labels, v in scrape(port).get("streamraft_storage_failed_groups", []) if v}


def lag(port: int, follower: int, topic: str = TOPIC) -> float:
    for labels, v in scrape(port).get("streamraft_raft_follower_lag_entries", []):
        if labels["topic"] == topic and labels["follower"] == str(follower):
            return v
    return -1.0


def hosted_topics(port: int) -> set[str]:
    return {labels["topic"] for labels, _ in scrape(port).get("streamraft_raft_term", [])}


class Acked:
    def __init__(self, bootstrap: str) -> None:
        self.producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "acks": "all",
                "enable.idempotence": True,
                "message.timeout.ms": 90_000,
                "retry.backoff.ms": 100,
            }
        )
        self.offsets: dict[int, bytes] = {}
        self.errors: list[str] = []

    def _done(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self.errors.append(str(err))
            return
        offset, value = msg.offset(), msg.value()
        assert offset is not None and isinstance(value, bytes), msg
        self.offsets[offset] = value

    def send(self, tag: str, count: int) -> None:
        for i in range(count):
            self.producer.produce(
                TOPIC, value=b"%s-%d-" % (tag.encode(), i) + b"v" * 2000, partition=0, on_delivery=self._done
            )
        assert self.producer.flush(90) == 0, "records still undelivered"
        assert not self.errors, self.errors


def read_all(bootstrap: str, end: int) -> dict[int, bytes]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "reader", "enable.auto.commit": False})
    consumer.assign([TopicPartition(TOPIC, 0, 0)])
    seen: dict[int, bytes] = {}
    deadline = time.monotonic() + 60
    try:
        while len(seen) < end:
            assert time.monotonic() < deadline, f"read {len(seen)} of {end} records"
            msg = consumer.poll(0.5)
            if msg is None or msg.error() is not None:
                continue
            offset, value = msg.offset(), msg.value()
            assert offset is not None and isinstance(value, bytes)
            seen[offset] = value
    finally:
        consumer.close()
    return seen


def test_a_full_disk_under_a_follower_then_the_leader(tmp_path: Path) -> None:
    with contextlib.ExitStack() as stack:
        disks = {n: stack.enter_context(small_tmpfs(tmp_path / f"b{n}", size_mb=24)) for n in (1, 2, 3)}
        cluster = Cluster(tmp_path, 3)
        for b in cluster.brokers.values():
            b.metrics = True
        with cluster:
            metrics = {n: b.metrics_port for n, b in cluster.brokers.items()}
            create_topic(cluster, TOPIC, 1, 3)
            acked = Acked(cluster.bootstrap)
            acked.send("before", 50)

            # A follower's disk fills: the leader and the other follower still commit.
            leader = partition_leader(acked.producer, TOPIC, 0)
            follower = min(n for n in (1, 2, 3) if n != leader)
            fill(disks[follower])
            acked.send("follower-full", 50)
            poll(
                "the follower reports its stopped partition",
                lambda: f"{TOPIC}-0" in failed_groups(metrics[follower]),
            )
            logged = cluster.brokers[follower].log_tail(400)
            assert "event=storage_failed" in logged and "errno=28" in logged, logged
            free(disks[follower])
            poll("the follower re-opened its copy", lambda: not failed_groups(metrics[follower]))
            acked.send("follower-freed", 20)
            poll("the follower caught up", lambda: lag(metrics[leader], follower) == 0)

            # Now the leader's disk fills: leadership moves away and produce goes on.
            leader = partition_leader(acked.producer, TOPIC, 0)
            fill(disks[leader])
            acked.send("leader-full", 50)
            poll("leadership moved away", lambda: partition_leader(acked.producer, TOPIC, 0) != leader)
            free(disks[leader])
            poll("the old leader re-opened its copy", lambda: not failed_groups(metrics[leader]))
            acked.send("leader-freed", 20)

            # The controller leader's disk fills: metadata changes go on without it (a topic is created
            # and written to), and once space returns it installs that topic and catches up too.
            controller = wait_controller(cluster)
            fill(disks[controller])
            create_topic(cluster, LATE, 1, 3)
            late = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all"})
            late_errors: list[str] = []

            def late_done(err: KafkaError | None, _msg: Message) -> None:
                if err is not None:
                    late_errors.append(str(err))

            for i in range(20):
                late.produce(LATE, value=b"late-%d" % i, partition=0, on_delivery=late_done)
            assert late.flush(90) == 0 and not late_errors, late_errors
            free(disks[controller])
            poll("the old controller re-opened its groups", lambda: not failed_groups(metrics[controller]))
            poll(
                "it hosts the topic created meanwhile", lambda: LATE in hosted_topics(metrics[controller]), 90
            )
            late_leader = partition_leader(late, LATE, 0)
            if late_leader != controller:
                poll("and caught up on it", lambda: lag(metrics[late_leader], controller, LATE) == 0)

            seen = read_all(cluster.bootstrap, max(acked.offsets) + 1)
            lost = {o: v[:20] for o, v in acked.offsets.items() if seen.get(o) != v}
            assert not lost, f"acknowledged records not read back: {lost}"
