"""3 real brokers with Raft replication: an RF=3 topic keeps every acknowledged write through a SIGKILL of
a partition leader, and all consumers read the same logs afterwards (checked by the history checker)."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from tests.support.history import History
from tests.support.launcher import Cluster, consume_all, create_topic, partition_leader
from tests.support.metrics import metrics_cluster, scrape, value
from tests.support.poll import poll

pytestmark = pytest.mark.timeout(240)

TOPIC = "replicated"
PARTITIONS = 2
PER_PHASE = 300


def _produce(producer: Producer, history: History, phase: str, sampler: Consumer) -> None:
    errors: list[Any] = []

    def on_delivery(err: Any, msg: Any) -> None:
        if err is not None:
            errors.append(err)
        else:
            history.acked.append((int(msg.partition()), int(msg.offset()), bytes(msg.value())))

    for i in range(PER_PHASE):
        value = f"{phase}-{i}".encode()
        producer.produce(TOPIC, value=value, partition=i % PARTITIONS, on_delivery=on_delivery)
        producer.poll(0)
        if i % 50 == 0:
            _sample_watermarks(sampler, history)
    assert producer.flush(90) == 0, "messages left unacknowledged"
    _sample_watermarks(sampler, history)
    assert not errors, errors[:3]


def _sample_watermarks(consumer: Consumer, history: History) -> None:
    for p in range(PARTITIONS):
        try:
            _low, high = consumer.get_watermark_offsets(TopicPartition(TOPIC, p), timeout=5)
        except KafkaException:
            continue  # no leader during failover: nothing to sample
        history.watermarks[p].append(int(high))


class _LiveReader(threading.Thread):
    """Consumes from offset 0 while production and the leader kill happen, until ``total`` records."""

    def __init__(self, bootstrap: str, total: int) -> None:
        super().__init__(daemon=True)
        self.bootstrap = bootstrap
        self.total = total
        self.view: dict[int, list[tuple[int, bytes]]] = {p: [] for p in range(PARTITIONS)}
        self.error: str | None = None

    def run(self) -> None:
        consumer = Consumer(
            {"bootstrap.servers": self.bootstrap, "group.id": "live", "auto.offset.reset": "latest"}
        )
        consumer.assign([TopicPartition(TOPIC, p, 0) for p in range(PARTITIONS)])
        deadline = time.monotonic() + 85
        try:
            while sum(len(v) for v in self.view.values()) < self.total:
                if time.monotonic() > deadline:
                    self.error = f"live reader stopped at {[len(v) for v in self.view.values()]}"
                    return
                msg = consumer.poll(0.5)
                if msg is None or msg.error() is not None:
                    continue
                part, offset, value = msg.partition(), msg.offset(), msg.value()
                assert part is not None and offset is not None and isinstance(value, bytes)
                self.view[part].append((offset, value))
        finally:
            consumer.close()


def test_sigkill_partition_leader_loses_no_acknowledged_write(tmp_path: Path) -> None:
    history = History()
    with Cluster(tmp_path, 3) as cluster:
        create_topic(cluster, TOPIC, PARTITIONS)
        producer = Producer(
            {
                "bootstrap.servers": cluster.bootstrap,
                "acks": "all",
                "enable.idempotence": True,
                "message.timeout.ms": 90_000,
            }
        )
        sampler = Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": "sampler"})
        live = _LiveReader(cluster.bootstrap, 3 * PER_PHASE)
        live.start()
        try:
            _produce(producer, history, "before", sampler)
            victim = partition_leader(producer, TOPIC, 0)
            cluster.brokers[victim].kill()
            _produce(producer, history, "after", sampler)
            assert partition_leader(producer, TOPIC, 0) != victim
            cluster.brokers[victim].start()
            _produce(producer, history, "rejoined", sampler)
        finally:
            producer.flush(10)
            sampler.close()
            live.join(90)
        assert not live.is_alive() and live.error is None, live.error
        # Read while the leader died: a spurious out-of-range would have reset it to "latest" and
        # left a gap, which the checker reports as a log differing from the other readers'.
        history.reads["live"] = live.view
        assert len(history.acked) == 3 * PER_PHASE
        ends = {p: 1 + max(o for part, o, _ in history.acked if part == p) for p in range(PARTITIONS)}
        # One consumer per broker as bootstrap: each builds its view through a different node's metadata.
        for n, port in cluster.kafka_ports.items():
            consume_all(f"127.0.0.1:{port}", f"reader-{n}", TOPIC, ends, history)
        problems = history.check()
        assert not problems, problems[:10]
        assert sum(len(v) for v in history.reads["reader-1"].values()) == 3 * PER_PHASE

        # Whole-cluster crash: every broker SIGKILLed, restarted, rebuilt from its Raft logs.
        for b in cluster.brokers.values():
            b.kill()
        for b in cluster.brokers.values():
            b.start()
        consume_all(cluster.bootstrap, "after-crash", TOPIC, ends, history)
        problems = history.check()
        assert not problems, problems[:10]


def test_sigterm_hands_leadership_over_before_exit(tmp_path: Path) -> None:
    with metrics_cluster(tmp_path) as cluster:
        create_topic(cluster, TOPIC, PARTITIONS)
        ports = {n: b.metrics_port for n, b in cluster.brokers.items()}
        producer = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all"})
        led: dict[int, int] = {}

        victim = 0

        def settled() -> bool:
            # The victim leads partition 0 from its preferred (first) replica, so the 10 s balancer will not
            # move it away before the SIGTERM, and its own gauge (sampled once a second) says it leads.
            nonlocal victim
            topic = producer.list_topics(TOPIC, timeout=5).topics.get(TOPIC)
            part = topic.partitions.get(0) if topic is not None else None
            if part is None or part.leader != part.replicas[0]:
                return False
            victim = int(part.leader)
            led[victim] = int(value(scrape(ports[victim]), "streamraft_partitions_led"))
            return led[victim] >= 1

        poll("partition 0 led by its preferred replica", settled, timeout=60)
        try:
            assert cluster.brokers[victim].terminate() == 0
            log = cluster.brokers[victim].log_path.read_text(errors="replace")
            moved = re.findall(r"event=leaderships_handed_over node=\d+ moved=(\d+) of=(\d+)", log)
            # It handed every group it led (at least its partitions; maybe the controller) to another voter.
            assert len(moved) == 1 and int(moved[0][1]) >= 1 and moved[0][0] == moved[0][1], (
                moved,
                led,
            )
            for p in range(PARTITIONS):
                assert partition_leader(producer, TOPIC, p) != victim
                producer.produce(TOPIC, value=b"after-sigterm", partition=p)
            assert producer.flush(30) == 0
        finally:
            producer.flush(5)
