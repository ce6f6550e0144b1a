"""Keyed records (tombstones included) produced and read back with offsets, with real confluent-kafka
clients (bounded): for compaction tests, which compare what is read at each offset with what was written."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import kafka
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from streamraft_broker.log import LogConfig, PartitionLog
from streamraft_broker.records import decode_records, iter_batches

from tests.support.poll import wait_for

Keyed = tuple[int, bytes, bytes | None]
"""(offset, key, value); value None is a tombstone."""


def produce_keyed(
    bootstrap: str, topic: str, items: list[tuple[bytes, bytes | None]], *, batch_bytes: int = 2048
) -> list[Keyed]:
    """Produce ``items`` in order to partition 0 with acks=all, in batches of at most ``batch_bytes`` (so
    tiny segments roll between them); returns them with their offsets."""
    acked: list[Keyed] = []
    errors: list[str] = []

    def on_delivery(err: Any, msg: Any) -> None:
        if err is None:
            acked.append((msg.offset(), msg.key(), msg.value()))
        else:
            errors.append(str(err))

    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "linger.ms": 5,
            "batch.size": batch_bytes,
            "message.timeout.ms": 30000,
        }
    )
    for key, value in items:
        producer.produce(topic, value, key, partition=0, on_delivery=on_delivery)
        producer.poll(0)
    assert producer.flush(60) == 0, "messages still in flight after 60 s"
    assert not errors, f"{len(errors)} not acked, e.g. {errors[:2]}"
    return sorted(acked)


def end_offset(bootstrap: str, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "keyed-io", "enable.auto.commit": False})
    try:
        return int(consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)[1])
    finally:
        consumer.close()


def read_keyed(bootstrap: str, topic: str, *, timeout: float = 30) -> list[Keyed]:
    """Every record of partition 0 from offset 0 up to the high watermark at the start of the read."""
    end = end_offset(bootstrap, topic)
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "keyed-io",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    consumer.assign([TopicPartition(topic, 0, 0)])
    got: list[Keyed] = []
    errors: list[str] = []
    position = [0]
    try:

        def poll() -> bool:
            for msg in consumer.consume(num_messages=1000, timeout=0.5):
                if msg.error() is None:
                    got.append((msg.offset(), msg.key(), msg.value()))
                    position[0] = msg.offset() + 1
                elif msg.error().code() == KafkaError._PARTITION_EOF:  # at the end (offset gaps skipped)
                    position[0] = max(position[0], msg.offset())
                else:
                    errors.append(str(msg.error()))
            return position[0] >= end

        wait_for(
            f"{topic}-0 read up to offset {end}", poll, timeout=timeout, logs=lambda: f"errors {errors[-5:]}"
        )
    finally:
        consumer.close()
    return got


def read_keyed_kafka_python(bootstrap: str, topic: str, *, timeout: float = 30) -> list[Keyed]:
    """read_keyed with kafka-python (its own batch parser: offset gaps and empty batches must not stall)."""
    end = end_offset(bootstrap, topic)
    consumer = kafka.KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    tp = kafka.TopicPartition(topic, 0)
    consumer.assign([tp])
    consumer.seek(tp, 0)
    got: list[Keyed] = []
    deadline = time.monotonic() + timeout
    try:
        while consumer.position(tp) < end:
            assert time.monotonic() < deadline, f"kafka-python stuck at {consumer.position(tp)} of {end}"
            for records in consumer.poll(timeout_ms=500).values():
                got.extend((r.offset, r.key, r.value) for r in records)
    finally:
        consumer.close()
    return got


def replay(records: list[Keyed]) -> dict[bytes, bytes]:
    """The state a consumer rebuilds from the records (a tombstone deletes its key)."""
    state: dict[bytes, bytes] = {}
    for _offset, key, value in records:
        if value is None:
            state.pop(key, None)
        else:
            state[key] = value
    return state


def _replica_bytes(data_dir: Path, topic: str) -> bytes:
    """Every batch of one broker's copy of ``topic``-0, read from a snapshot copy of its directory (the
    live one is never opened: recovery would write to it). A torn tail of the copy is cut by recovery."""
    # <data>/logs single node, <data>/state/logs replicated.
    candidates = (data_dir / "logs" / f"{topic}-0", data_dir / "state" / "logs" / f"{topic}-0")
    sources = [p for p in candidates if p.is_dir()]
    assert sources, f"no directory of {topic}-0 under {data_dir}"
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "p"
        shutil.copytree(sources[0], copy)
        log = PartitionLog.open(copy, LogConfig(cleanup_policy="compact"))
        try:
            return log.read_bytes(log.log_start_offset, 1 << 30)
        finally:
            log.close()


def replica_records(data_dir: Path, topic: str) -> list[Keyed]:
    """What one broker's copy of ``topic``-0 holds on disk (see _replica_bytes)."""
    data = _replica_bytes(data_dir, topic)
    out: list[Keyed] = []
    for pos, header in iter_batches(data):
        for r in decode_records(data[pos : pos + header.size]):
            assert r.key is not None, (
                f"a record without a key at offset {header.base_offset + r.offset_delta}"
            )
            out.append((header.base_offset + r.offset_delta, r.key, r.value))
    return out


def replica_empty_batches(data_dir: Path, topic: str) -> int:
    """How many batches without records one broker's copy of ``topic``-0 holds (compaction leaves them)."""
    return sum(
        1 for _pos, header in iter_batches(_replica_bytes(data_dir, topic)) if header.records_count == 0
    )
