"""The workloads, each run identically against either system; every one is bounded in count and time."""

from __future__ import annotations

import contextlib
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import KafkaError, Producer

from tests.bench.kafka_compare.systems import Running
from tests.javakafka.cluster import partition_leader
from tests.javakafka.tools import CONSUMER_PERF, PRODUCER_PERF, run_tool

_PERF_LINE = re.compile(
    r"(\d+) records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\), ([\d.]+) ms avg latency, "
    r"([\d.]+) ms max latency, (\d+) ms 50th, (\d+) ms 95th, (\d+) ms 99th, (\d+) ms 99.9th"
)


def new_topic(system: Running, prefix: str, partitions: int, *, fsync: bool = False) -> str:
    topic = f"{prefix}-{uuid.uuid4().hex[:8]}"
    system.create_topic(topic, partitions, fsync=fsync)
    return topic


@dataclass(frozen=True)
class Throughput:
    records_per_s: float
    mb_per_s: float
    p99_ms: float | None = None


def produce_java(system: Running, topic: str, record_size: int, acks: str, records: int) -> Throughput:
    """Kafka's own ProducerPerformance: the same program against both systems."""
    return producer_perf(system.bootstrap, topic, record_size, acks, records)


def producer_perf(
    bootstrap: str,
    topic: str,
    record_size: int,
    acks: str,
    records: int,
    *,
    client_config: Path | None = None,
) -> Throughput:
    """ProducerPerformance with linger 5 ms and 128 KiB batches; ``client_config`` is a Java client
    properties file (security settings) applied under those."""
    config = ["--producer.config", str(client_config)] if client_config is not None else []
    out = run_tool(
        PRODUCER_PERF,
        [
            "--topic", topic, "--num-records", str(records), "--record-size", str(record_size),
            "--throughput", "-1", *config,
            "--producer-props", f"bootstrap.servers={bootstrap}", f"acks={acks}", "linger.ms=5",
            "batch.size=131072",
        ],
        timeout_s=300,
        fast=False,
    ).stdout  # fmt: skip
    m = _PERF_LINE.search(out)
    if m is None:
        raise RuntimeError(f"no summary line in ProducerPerformance output:\n{out[-1500:]}")
    assert int(m.group(1)) == records, f"ProducerPerformance sent {m.group(1)}/{records}"
    return Throughput(float(m.group(2)), float(m.group(3)), float(m.group(8)))


def produce_confluent(
    system: Running, topic: str, record_size: int, acks: str, records: int, *, timeout_s: float = 120.0
) -> Throughput:
    """librdkafka via confluent-kafka: a second, independent client."""
    errors: list[str] = []
    delivered = 0

    def on_delivery(err: KafkaError | None, _msg: object) -> None:
        nonlocal delivered
        if err is not None:
            errors.append(str(err))
        else:
            delivered += 1

    p = Producer(
        {
            "bootstrap.servers": system.bootstrap,
            "acks": acks,
            "linger.ms": 5,
            "batch.size": 131072,
            "enable.idempotence": False,
        }
    )
    payload = b"x" * record_size
    start = time.monotonic()
    deadline = start + timeout_s
    for _ in range(records):
        while True:
            try:
                p.produce(topic, payload, on_delivery=on_delivery)
                break
            except BufferError:
                p.poll(0.01)
                assert time.monotonic() < deadline, "confluent producer stuck on a full queue"
        p.poll(0)
    remaining = p.flush(max(1.0, deadline - time.monotonic()))
    elapsed = time.monotonic() - start
    assert remaining == 0 and not errors, f"{remaining} undelivered, errors: {errors[:3]}"
    assert delivered == records
    return Throughput(records / elapsed, records * record_size / elapsed / 2**20)


def consume_java(system: Running, topic: str, records: int) -> Throughput:
    return consumer_perf(system.bootstrap, topic, records)


def consumer_perf(
    bootstrap: str, topic: str, records: int, *, client_config: Path | None = None
) -> Throughput:
    """ConsumerPerformance reading ``records``; ``client_config`` as for ``producer_perf``."""
    config = ["--command-config", str(client_config)] if client_config is not None else []
    out = run_tool(
        CONSUMER_PERF,
        ["--bootstrap-server", bootstrap, "--topic", topic, "--messages", str(records),
         "--timeout", "60000", *config],
        timeout_s=300,
        fast=False,
    ).stdout  # fmt: skip
    rows = [ln for ln in out.splitlines() if ln[:1].isdigit()]
    if not rows:
        raise RuntimeError(f"no data row in ConsumerPerformance output:\n{out[-1500:]}")
    cols = [c.strip() for c in rows[-1].split(",")]
    # Columns: start, end, MB, MB/s, nMsg, nMsg/s, rebalance ms, fetch ms, fetch MB/s, fetch nMsg/s.
    assert int(cols[4]) >= records, f"ConsumerPerformance read {cols[4]}/{records}"
    return Throughput(float(cols[9]), float(cols[8]))


# ---------- failover ----------


def _leader(system: Running, topic: str, timeout_s: float = 60.0) -> int:
    # A broker that has not applied the new topic (or a leader change) yet answers without a leader.
    deadline = time.monotonic() + timeout_s
    while (leader := partition_leader(system.bootstrap, topic, 0)) <= 0:
        assert time.monotonic() < deadline, f"{system.name}: {topic}/0 has no leader after {timeout_s:g}s"
        time.sleep(0.1)  # pacing between metadata polls
    return leader


def failover(
    system: Running, kills: int, budget_s: float, progress: Callable[[str], None], *, gaps: list[float]
) -> None:
    """SIGKILL the leader of a busy partition; seconds from the kill until the first acknowledgement of a
    record produced after it. Default client and broker timeouts; the killed broker is restarted and
    has caught up again before the next kill. Gaps are appended to ``gaps`` as they are measured."""
    topic = new_topic(system, "failover", 1)
    stop = threading.Event()
    acked: list[tuple[float, float]] = []  # (sent, acknowledged), monotonic
    errors: list[str] = []
    lock = threading.Lock()

    p = Producer({"bootstrap.servers": system.bootstrap, "acks": "all", "linger.ms": 1})

    def pump() -> None:
        while not stop.is_set():
            sent = time.monotonic()

            def on_delivery(err: KafkaError | None, _msg: object, sent: float = sent) -> None:
                with lock:
                    if err is None:
                        acked.append((sent, time.monotonic()))
                    else:
                        errors.append(str(err))

            with contextlib.suppress(BufferError):
                p.produce(topic, b"y" * 512, on_delivery=on_delivery)
            p.poll(0.002)

    t = threading.Thread(target=pump, daemon=True)
    t.start()
    end = time.monotonic() + budget_s
    try:
        for k in range(kills):
            if time.monotonic() > end:
                progress(f"{system.name}: failover budget of {budget_s:g}s spent after {k} kills")
                break
            leader = _leader(system, topic)
            killed_at = time.monotonic()
            system.kill(leader)
            deadline = killed_at + 120
            while True:
                with lock:
                    after = [a for s, a in acked if s >= killed_at]
                if after:
                    gaps.append(min(after) - killed_at)
                    break
                assert time.monotonic() < deadline, "no successful produce within 120s of the kill"
                time.sleep(0.01)  # polling the delivery callbacks' record
            progress(
                f"{system.name}: kill {k + 1}/{kills} of broker {leader}: next ack after {gaps[-1]:.2f}s"
            )
            with lock:
                acked.clear()
            system.restart_and_heal(leader, topic)
    finally:
        stop.set()
        t.join(timeout=10)
        p.flush(30)
    if errors:
        progress(f"{system.name}: {len(errors)} records failed during failover, e.g. {errors[0]}")
