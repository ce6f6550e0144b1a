"""SIGKILL the broker during acks=all production: after a restart every acknowledged record is there."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from tests.support.broker_process import BrokerProcess
from tests.support.kafka_checks import Record

DEADLINE_S = 60.0
MIN_ACKED_BEFORE_KILL = 3000
MAX_RECORDS = 200_000


def test_sigkill_during_acks_all_loses_no_acknowledged_record(tmp_path: Path) -> None:
    broker = BrokerProcess(tmp_path / "data", metrics=False)
    broker.start()
    try:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        admin.create_topics([NewTopic("durable", 2, 1)])["durable"].result(timeout=30)
        acked: list[Record] = []
        failed: list[Any] = []
        stop = threading.Event()

        def produce() -> None:
            producer = Producer(
                {
                    "bootstrap.servers": broker.bootstrap,
                    "acks": "all",
                    "enable.idempotence": True,
                    "linger.ms": 2,
                    "message.timeout.ms": 5000,
                    "reconnect.backoff.max.ms": 200,
                }
            )

            def report(err: Any, msg: Any) -> None:
                if err is None:
                    acked.append((msg.partition(), msg.offset(), msg.value()))
                else:
                    failed.append(err)

            i = 0
            while not stop.is_set() and i < MAX_RECORDS:
                try:
                    producer.produce(
                        "durable", key=str(i % 17).encode(), value=f"r{i}".encode(), on_delivery=report
                    )
                    i += 1
                except BufferError:
                    producer.poll(0.05)
                producer.poll(0)
            producer.flush(1)  # after the kill nothing more can be delivered; do not wait for it

        thread = threading.Thread(target=produce, daemon=True)
        thread.start()
        deadline = time.monotonic() + DEADLINE_S
        while len(acked) < MIN_ACKED_BEFORE_KILL:
            assert time.monotonic() < deadline, f"only {len(acked)} acknowledged before the deadline"
            assert thread.is_alive()
            time.sleep(0.01)  # polling the acknowledgement count under a deadline
        broker.kill()
        stop.set()
        thread.join(timeout=DEADLINE_S)
        assert not thread.is_alive()
        snapshot = list(acked)
        assert len(snapshot) >= MIN_ACKED_BEFORE_KILL

        broker.start()
        consumer = Consumer(
            {"bootstrap.servers": broker.bootstrap, "group.id": "durable-check", "enable.auto.commit": False}
        )
        consumer.assign([TopicPartition("durable", p, 0) for p in range(2)])
        stored: dict[tuple[int, int], bytes] = {}
        wanted = {(p, o) for p, o, _v in snapshot}
        deadline = time.monotonic() + DEADLINE_S
        while not wanted <= stored.keys() and time.monotonic() < deadline:
            for m in consumer.consume(num_messages=1000, timeout=0.5):
                assert m.error() is None, m.error()
                stored[(m.partition(), m.offset())] = m.value()
        consumer.close()
        missing = [(p, o) for p, o, _v in snapshot if (p, o) not in stored]
        assert not missing, f"{len(missing)} acknowledged records lost, first {missing[:5]}"
        assert all(stored[(p, o)] == v for p, o, v in snapshot)
        # Offsets stay dense: nothing after restart overwrote or skipped acknowledged positions.
        for p in range(2):
            offsets = sorted(o for q, o in stored if q == p)
            assert offsets == list(range(len(offsets)))
    finally:
        broker.kill()
