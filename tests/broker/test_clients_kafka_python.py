"""kafka-python against a real broker: idempotent acks=all, a group of two, resume, compression, admin."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic

from tests.support.broker_process import BrokerProcess
from tests.support.fixtures import module_broker
from tests.support.kafka_checks import (
    COMPRESSION_CODES,
    Record,
    assert_exactly_once_in_order,
    raw_batch_attributes,
)
from tests.support.wire import WireClient

DEADLINE_S = 60.0


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    yield from module_broker(tmp_path_factory)


def _produce(bootstrap: str, topic: str, n: int, prefix: str, **conf: object) -> list[Record]:
    producer = KafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5, **conf
    )
    futures = [
        producer.send(topic, key=f"k{i % 11}".encode(), value=f"{prefix}{i}".encode()) for i in range(n)
    ]
    producer.flush(timeout=DEADLINE_S)
    acked = []
    for f, i in zip(futures, range(n), strict=True):
        meta = f.get(timeout=DEADLINE_S)
        acked.append((meta.partition, meta.offset, f"{prefix}{i}".encode()))
    producer.close(timeout=10)
    return acked


def _consumer(bootstrap: str, group: str) -> KafkaConsumer:
    return KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=10000,
        heartbeat_interval_ms=500,
        # If the group forms before this member's metadata lists the topic, kafka-python assigns nothing
        # and only rejoins at the next metadata refresh (default 5 minutes).
        metadata_max_age_ms=500,
    )


class _ConsumerThread(threading.Thread):
    """kafka-python joins a group inside poll(), so each group member needs its own thread."""

    def __init__(self, bootstrap: str, group: str, topic: str) -> None:
        super().__init__(daemon=True)
        self.consumer = _consumer(bootstrap, group)
        # Join only once this member's metadata lists the topic: a leader that assigns before it knows
        # the partitions has to rejoin, and kafka-python 3.0.12 sometimes stalls in that rejoin.
        _wait(lambda: bool(self.consumer.partitions_for_topic(topic)), f"metadata for {topic}")
        self.consumer.subscribe([topic])
        self.records: list[Record] = []
        self.assigned = 0
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                batch = self.consumer.poll(timeout_ms=200, max_records=500)
                for tp_records in batch.values():
                    self.records.extend((r.partition, r.offset, r.value) for r in tp_records)
                if batch:
                    self.consumer.commit()
                self.assigned = len(self.consumer.assignment())
        except BaseException as exc:  # surfaced to the test thread below
            self.error = exc
        finally:
            self.consumer.close()


def _wait(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)  # polling a condition under a deadline


def _run_group(bootstrap: str, n: int, produce: Callable[[], list[Record]], partitions: int) -> list[Record]:
    threads = [_ConsumerThread(bootstrap, "g-kp", "kp") for _ in range(n)]
    for t in threads:
        t.start()
    try:
        _wait(
            lambda: all(t.assigned for t in threads) and sum(t.assigned for t in threads) == partitions,
            "the group to settle",
        )
        produced = produce()
        _wait(lambda: sum(len(t.records) for t in threads) >= len(produced), "every record")
    finally:
        for t in threads:
            t.stop.set()
        for t in threads:
            t.join(timeout=DEADLINE_S)
    for t in threads:
        assert t.error is None, t.error
    consumed = [r for t in threads for r in t.records]
    assert_exactly_once_in_order(produced, sorted(consumed))
    return consumed


def test_group_of_two_exactly_once_resume_describe_delete(broker: BrokerProcess) -> None:
    bs = broker.bootstrap
    admin = KafkaAdminClient(bootstrap_servers=bs)
    admin.create_topics(
        [NewTopic("kp", num_partitions=3, replication_factor=1, topic_configs={"retention.ms": "123456"})]
    )
    _run_group(bs, 2, lambda: _produce(bs, "kp", 1500, "v"), 3)
    # A new member resumes at the committed offsets: only records produced after the commits arrive.
    _run_group(bs, 1, lambda: _produce(bs, "kp", 100, "w"), 3)

    described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "kp")])
    # kafka-python lists only non-default configs.
    assert "123456" in str(described)
    assert "retention.ms" in str(described)
    assert "kp" in admin.list_topics()
    admin.delete_topics(["kp"])
    deadline = time.monotonic() + DEADLINE_S
    while "kp" in admin.list_topics() and time.monotonic() < deadline:
        time.sleep(0.1)  # polling metadata for the deletion, bounded by the deadline
    assert "kp" not in admin.list_topics()
    admin.close()


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_compression_headers_timestamps(broker: BrokerProcess, codec: str) -> None:
    bs = broker.bootstrap
    topic = f"kp-{codec}"
    admin = KafkaAdminClient(bootstrap_servers=bs)
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=bs, compression_type=codec, linger_ms=20, acks="all")
    base = 1_700_000_000_000
    for i in range(200):
        producer.send(
            topic, value=(f"x{i} " * 30).encode(), headers=[("i", str(i).encode())], timestamp_ms=base + i
        )
    producer.flush(timeout=DEADLINE_S)
    producer.close(timeout=10)
    with WireClient(broker.host, broker.port) as wire:
        assert {a & 0x7 for a in raw_batch_attributes(wire, topic, 0)} == {COMPRESSION_CODES[codec]}
    consumer = KafkaConsumer(bootstrap_servers=bs, enable_auto_commit=False, auto_offset_reset="earliest")
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    seen = 0
    deadline = time.monotonic() + DEADLINE_S
    while seen < 200 and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            for r in records:
                assert (r.offset, r.timestamp) == (seen, base + seen)
                assert r.headers == [("i", str(seen).encode())]
                seen += 1
    assert seen == 200
    found = consumer.offsets_for_times({tp: base + 50})
    assert found[tp].offset == 50
    assert consumer.beginning_offsets([tp])[tp] == 0
    assert consumer.end_offsets([tp])[tp] == 200
    consumer.close()
