"""Rolling restart under load (issue 4, item 3): each of 3 brokers in turn gets SIGTERM (it hands over every
leadership it holds, then exits), comes back on its intact disk and catches up before the next one goes.
An idempotent acks=all confluent-kafka producer sends all along and a consumer reads all along: no
delivery may fail, and what the consumer read must be exactly what was acknowledged, once each, with no
gap in any partition's offsets."""

from __future__ import annotations

import functools
import json
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from tests.support.history import History
from tests.support.launcher import Cluster, consume_all, create_topic
from tests.support.metrics import metrics_cluster
from tests.support.poll import poll

pytestmark = pytest.mark.timeout(420)

TOPIC = "rolling"
PARTITIONS = 3
MAX_RECORDS = 60_000
"""Upper bound on what the producer sends (it stops earlier, once the last broker is back)."""
RATE_PER_S = 400


def _get(port: int, path: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
        body: dict[str, Any] = json.loads(resp.read())
        return body


class _Writer(threading.Thread):
    """Produces paced, distinct values until told to stop (or MAX_RECORDS), then flushes."""

    def __init__(self, bootstrap: str, history: History) -> None:
        super().__init__(daemon=True)
        self.history = history
        self.errors: list[str] = []
        self.sent = 0
        self.stop = threading.Event()
        self.producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "acks": "all",
                "enable.idempotence": True,
                "linger.ms": 5,
                "message.timeout.ms": 180_000,
            }
        )

    def _on_delivery(self, err: Any, msg: Any) -> None:
        if err is not None:
            self.errors.append(str(err))
        else:
            self.history.acked.append((int(msg.partition()), int(msg.offset()), bytes(msg.value())))

    def run(self) -> None:
        start = time.monotonic()
        while self.sent < MAX_RECORDS and not self.stop.is_set():
            self.producer.produce(
                TOPIC,
                value=b"v%d" % self.sent,
                partition=self.sent % PARTITIONS,
                on_delivery=self._on_delivery,
            )
            self.sent += 1
            self.producer.poll(0)
            ahead = self.sent / RATE_PER_S - (time.monotonic() - start)
            if ahead > 0:
                time.sleep(ahead)  # pacing the load, not synchronisation
        left = self.producer.flush(180)
        if left:
            self.errors.append(f"{left} records still unacknowledged after the final flush")


class _Reader(threading.Thread):
    """Reads every partition from offset 0 while the brokers restart, until ``target`` is set and reached."""

    def __init__(self, bootstrap: str) -> None:
        super().__init__(daemon=True)
        self.view: dict[int, list[tuple[int, bytes]]] = {p: [] for p in range(PARTITIONS)}
        self.ends: dict[int, int] | None = None
        self.error: str | None = None
        self.consumer = Consumer(
            {"bootstrap.servers": bootstrap, "group.id": "rolling-reader", "enable.auto.commit": False}
        )

    def _done(self) -> bool:
        ends = self.ends
        return ends is not None and all(len(self.view[p]) >= ends[p] for p in ends)

    def run(self) -> None:
        self.consumer.assign([TopicPartition(TOPIC, p, 0) for p in range(PARTITIONS)])
        deadline = time.monotonic() + 360
        try:
            while not self._done():
                if time.monotonic() > deadline:
                    self.error = f"reader stopped at {[len(v) for v in self.view.values()]} of {self.ends}"
                    return
                msg = self.consumer.poll(0.2)
                if msg is None or msg.error() is not None:
                    continue
                part, offset, value = msg.partition(), msg.offset(), msg.value()
                assert part is not None and offset is not None and isinstance(value, bytes)
                self.view[part].append((offset, value))
        finally:
            self.consumer.close()


def _caught_up(cluster: Cluster, since: float) -> bool:
    """Every broker sampled after ``since`` sees no under-replicated or leaderless partition, and every
    group it hosts has all three brokers as voters."""
    for b in cluster.brokers.values():
        health = _get(b.admin_port, "/admin/health")
        if health["sampled_at"] < since or health["under_replicated"] or health["leaderless"]:
            return False
        groups = _get(b.admin_port, "/admin/rejoin")["groups"]
        if any(len(g["voters"]) != 3 or g["learners"] for g in groups.values()):
            return False
    return True


def test_rolling_restart_under_idempotent_load_fails_nothing_and_duplicates_nothing(tmp_path: Path) -> None:
    history = History()
    with metrics_cluster(tmp_path) as cluster:
        create_topic(cluster, TOPIC, PARTITIONS)
        created = time.time()
        poll("cluster settled", lambda: _caught_up(cluster, created), 90)
        writer = _Writer(cluster.bootstrap, history)
        reader = _Reader(cluster.bootstrap)
        writer.start()
        reader.start()
        try:
            poll("first acknowledgements", lambda: len(history.acked) > 200, 60)
            for n, broker in sorted(cluster.brokers.items()):
                code = broker.terminate()
                assert code == 0, f"broker {n} exited with {code} on SIGTERM\n{broker.log_tail()}"
                broker.start()
                back = time.time()
                poll(f"broker {n} back and caught up", functools.partial(_caught_up, cluster, back), 120)
                assert not writer.errors, writer.errors[:5]
        finally:
            writer.stop.set()
            writer.join(240)
        assert not writer.is_alive(), "producer did not finish"
        assert not writer.errors, writer.errors[:5]
        assert len(history.acked) == writer.sent, (len(history.acked), writer.sent)

        ends = {p: 1 + max(o for part, o, _ in history.acked if part == p) for p in range(PARTITIONS)}
        reader.ends = ends
        reader.join(240)
        assert not reader.is_alive() and reader.error is None, reader.error
        history.reads["live"] = reader.view
        consume_all(cluster.bootstrap, "after", TOPIC, ends, history)
        problems = history.check()
        assert not problems, problems[:10]

        # No duplicates and no gaps: each partition's offsets are 0..n-1 with every acknowledged value
        # exactly once (idempotence held across every retry the restarts caused).
        acked_values: dict[int, set[bytes]] = {p: set() for p in range(PARTITIONS)}
        for part, _offset, value in history.acked:
            acked_values[part].add(value)
        for name in ("live", "after"):
            for p, records in history.reads[name].items():
                offsets = [o for o, _ in records]
                values = [v for _, v in records]
                assert offsets == list(range(ends[p])), f"{name}: partition {p} offsets have a gap or repeat"
                assert len(set(values)) == len(values), f"{name}: partition {p} holds a duplicate"
                assert set(values) == acked_values[p], f"{name}: partition {p} differs from the acks"
        assert sum(ends.values()) == writer.sent
