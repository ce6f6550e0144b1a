"""Benchmark: acks=all produce throughput on a 3-broker RF=3 topic, and the produce gap around a SIGKILL
of the partition leader. Prints a table.

    .venv/bin/python -m tests.bench.cluster.replicated_produce --messages 20000 --size 100
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from tests.support.launcher import Cluster, create_topic, partition_leader

MAX_MESSAGES = 1_000_000
TOPIC = "bench"


def _run(producer: Producer, count: int, size: int, acked: list[float]) -> float:
    payload = b"x" * size

    def on_delivery(err: Any, _msg: Any) -> None:
        if err is None:
            acked.append(time.monotonic())

    start = time.monotonic()
    for _ in range(count):
        while True:
            try:
                producer.produce(TOPIC, value=payload, partition=0, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    assert producer.flush(120) == 0, "unacknowledged messages after 120 s"
    return time.monotonic() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=20_000)
    ap.add_argument("--size", type=int, default=100)
    args = ap.parse_args()
    assert 1 <= args.messages <= MAX_MESSAGES
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory() as tmp, Cluster(Path(tmp), 3) as cluster:
        create_topic(cluster, TOPIC, 1)
        config = {"bootstrap.servers": cluster.bootstrap, "acks": "all", "enable.idempotence": True}
        producer = Producer({**config, "linger.ms": 5})
        acked: list[float] = []
        took = _run(producer, args.messages, args.size, acked)
        rows.append(("acks=all msgs/s (1 partition, RF=3)", f"{args.messages / took:,.0f}"))
        rows.append(("acks=all MB/s", f"{args.messages * args.size / took / 1e6:.2f}"))
        victim = partition_leader(producer, TOPIC, 0)
        acked.clear()
        killed_at = time.monotonic()
        cluster.brokers[victim].kill()
        _run(producer, 2000, args.size, acked)
        rows.append(("first ack after leader SIGKILL (s)", f"{acked[0] - killed_at:.2f}"))
    width = max(len(r[0]) for r in rows)
    print(f"{'metric':<{width}}  value")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
