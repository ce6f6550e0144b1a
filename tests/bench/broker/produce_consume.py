"""Broker throughput benchmark with confluent-kafka: produce MB/s, records/s, p50/p99 latency; consume MB/s.

    .venv/bin/python -m tests.bench.broker.produce_consume [--records N] [--partitions P]

1 KiB records, linger.ms 5, 1 MiB batches, acks=1 and acks=all, then a full read-back (sendfile on, and off).
Every loop is bounded by a record count and a wall-clock limit. Prints a table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kio.schema.fetch.v12 import request as fr
from kio.schema.produce.v9 import request as pr
from streamraft_broker.protocol.codec import build
from streamraft_broker.records import SimpleRecord, build_batch, iter_batches

from tests.support.broker_process import BrokerProcess
from tests.support.wire import WireClient

RECORD_SIZE = 1024
TIME_LIMIT_S = 120.0
MB = 1024 * 1024
LATENCY_SAMPLE = 16


@dataclass
class Row:
    name: str
    records: int
    seconds: float
    p50_ms: float | None = None
    p99_ms: float | None = None

    @property
    def mb_s(self) -> float:
        return self.records * RECORD_SIZE / MB / self.seconds

    @property
    def rec_s(self) -> float:
        return self.records / self.seconds


def produce(bootstrap: str, topic: str, records: int, acks: str) -> Row:
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": acks,
            "linger.ms": 5,
            "batch.size": MB,
            "message.max.bytes": 2 * MB,
            "queue.buffering.max.kbytes": 256 * 1024,
            "enable.idempotence": acks == "all",
        }
    )
    latencies: list[float] = []
    errors: list[Any] = []

    def report(err: Any, msg: Any) -> None:
        if err is not None:
            errors.append(err)
        else:
            latencies.append(msg.latency())

    payload = os.urandom(RECORD_SIZE)
    keys = [str(i).encode() for i in range(64)]
    produce_one = producer.produce
    start = time.perf_counter()
    sent = 0
    while sent < records and time.perf_counter() - start < TIME_LIMIT_S:
        try:
            # A delivery callback on every record costs the Python client more than the broker spends on
            # it; latency is sampled from one record in LATENCY_SAMPLE, errors still surface via flush().
            if sent % LATENCY_SAMPLE == 0:
                produce_one(topic, payload, keys[sent % 64], on_delivery=report)
            else:
                produce_one(topic, payload, keys[sent % 64])
            sent += 1
        except BufferError:
            producer.poll(0.001)
    remaining = producer.flush(TIME_LIMIT_S)
    elapsed = time.perf_counter() - start
    assert remaining == 0 and not errors, f"{remaining} undelivered, errors {errors[:3]}"
    q = statistics.quantiles(latencies, n=100)
    return Row(f"produce acks={acks}", sent, elapsed, q[49] * 1000, q[98] * 1000)


def consume(bootstrap: str, topic: str, partitions: int, expected: int, label: str) -> Row:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-{label}-{time.time()}",
            "enable.auto.commit": False,
            "fetch.max.bytes": 64 * MB,
            "max.partition.fetch.bytes": 16 * MB,
            "fetch.wait.max.ms": 100,
            "queued.max.messages.kbytes": 512 * 1024,
        }
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    got = 0
    start = time.perf_counter()
    while got < expected and time.perf_counter() - start < TIME_LIMIT_S:
        got += sum(1 for m in consumer.consume(num_messages=10000, timeout=0.5) if m.error() is None)
    elapsed = time.perf_counter() - start
    consumer.close()
    assert got >= expected, f"consumed {got} of {expected}"
    return Row(f"consume ({label})", got, elapsed)


def raw_produce(broker: BrokerProcess, topic: str, partitions: int, batches: int, in_flight: int = 8) -> Row:
    """The broker alone: prebuilt ~1 MiB batches of 1 KiB records, pipelined Produce v9 acks=1 requests."""
    payload = os.urandom(RECORD_SIZE)
    batch = build_batch(
        [SimpleRecord(key=None, value=payload, offset_delta=i) for i in range(1000)],
        timestamp_ms=int(time.time() * 1000),
    )
    client = WireClient(broker.host, broker.port, timeout=60)
    frames = []
    for p in range(partitions):
        part = build(pr.PartitionProduceData, index=p, records=batch)
        req = build(
            pr.ProduceRequest,
            transactional_id=None,
            acks=1,
            timeout=30000,
            topic_data=(build(pr.TopicProduceData, name=topic, partition_data=(part,)),),
        )
        frames.append(client.encode_request(0, 9, req, p + 1))
    start = time.perf_counter()
    sent = received = 0
    while received < batches and time.perf_counter() - start < TIME_LIMIT_S:
        while sent < batches and sent - received < in_flight:
            client.send_raw(frames[sent % partitions])
            sent += 1
        client.recv_frame()
        received += 1
    elapsed = time.perf_counter() - start
    client.close()
    return Row("produce raw wire acks=1", received * 1000, elapsed)


def raw_fetch(broker: BrokerProcess, topic: str, partitions: int, expected: int) -> Row:
    """The broker alone: Fetch v12 of up to 8 MiB per partition until every record was returned."""
    client = WireClient(broker.host, broker.port, timeout=60)
    offsets = dict.fromkeys(range(partitions), 0)
    got = 0
    start = time.perf_counter()
    while got < expected and time.perf_counter() - start < TIME_LIMIT_S:
        parts = tuple(
            build(
                fr.FetchPartition,
                partition=p,
                current_leader_epoch=-1,
                fetch_offset=o,
                last_fetched_epoch=-1,
                log_start_offset=-1,
                partition_max_bytes=8 * MB,
            )
            for p, o in offsets.items()
        )
        req = build(
            fr.FetchRequest,
            replica_id=-1,
            max_wait=100,
            min_bytes=1,
            max_bytes=64 * MB,
            isolation_level=0,
            session_id=0,
            session_epoch=-1,
            topics=(build(fr.FetchTopic, topic=topic, partitions=parts),),
            forgotten_topics_data=(),
            rack_id="",
        )
        resp = client.request(1, 12, req)
        for pd in resp.responses[0].partitions:
            data = pd.records or b""
            for _pos, header in iter_batches(data):
                if header.last_offset >= offsets[pd.partition_index]:
                    got += header.last_offset + 1 - max(header.base_offset, offsets[pd.partition_index])
                    offsets[pd.partition_index] = header.last_offset + 1
    elapsed = time.perf_counter() - start
    client.close()
    return Row("fetch raw wire", got, elapsed)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=200_000, help="records per produce run")
    parser.add_argument("--partitions", type=int, default=4)
    args = parser.parse_args()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="streamraft-bench-") as tmp:
        data = Path(tmp) / "data"
        broker = BrokerProcess(data, metrics=False, extra_args=["--log-level", "WARNING"])
        with broker:
            admin = AdminClient({"bootstrap.servers": broker.bootstrap})
            for topic in ("bench-acks1", "bench-acksall"):
                admin.create_topics([NewTopic(topic, args.partitions, 1)])[topic].result(timeout=30)
            rows.append(produce(broker.bootstrap, "bench-acks1", args.records, "1"))
            rows.append(produce(broker.bootstrap, "bench-acksall", args.records, "all"))
            total = rows[0].records
            rows.append(consume(broker.bootstrap, "bench-acks1", args.partitions, total, "sendfile"))
            admin.create_topics([NewTopic("bench-raw", args.partitions, 1)])["bench-raw"].result(timeout=30)
            raw = raw_produce(
                broker, "bench-raw", args.partitions, max(args.records // 1000, args.partitions)
            )
            rows.append(raw)
            rows.append(raw_fetch(broker, "bench-raw", args.partitions, raw.records))
        broker = BrokerProcess(
            data, metrics=False, extra_args=["--log-level", "WARNING", "--zero-copy", "false"]
        )
        with broker:
            rows.append(consume(broker.bootstrap, "bench-acks1", args.partitions, total, "pread copy"))
    cpus = os.cpu_count()
    print(f"\nStreamraft, 1 broker, {args.partitions} partitions, {RECORD_SIZE} B records, {cpus} CPUs")
    print(f"{'run':<24}{'records':>10}{'seconds':>9}{'MB/s':>9}{'records/s':>12}{'p50 ms':>9}{'p99 ms':>9}")
    for r in rows:
        p50 = f"{r.p50_ms:.1f}" if r.p50_ms is not None else "-"
        p99 = f"{r.p99_ms:.1f}" if r.p99_ms is not None else "-"
        print(f"{r.name:<24}{r.records:>10}{r.seconds:>9.2f}{r.mb_s:>9.1f}{r.rec_s:>12.0f}{p50:>9}{p99:>9}")


if __name__ == "__main__":
    main()
