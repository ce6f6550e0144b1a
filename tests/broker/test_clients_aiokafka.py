"""aiokafka against a real broker: idempotent acks=all, a group of two, resume at commit, compression."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

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


async def _produce(bootstrap: str, topic: str, n: int, prefix: str) -> list[Record]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5)
    await producer.start()
    try:
        futures = [
            await producer.send(topic, key=f"k{i % 7}".encode(), value=f"{prefix}{i}".encode())
            for i in range(n)
        ]
        metas = await asyncio.wait_for(asyncio.gather(*futures), DEADLINE_S)
    finally:
        await producer.stop()
    return [(m.partition, m.offset, f"{prefix}{i}".encode()) for i, m in enumerate(metas)]


def _consumer(bootstrap: str, group: str, topic: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=10000,
        heartbeat_interval_ms=500,
    )


async def _consume_loop(consumer: AIOKafkaConsumer, out: list[Record], stop: asyncio.Event) -> None:
    while not stop.is_set():
        batch = await consumer.getmany(timeout_ms=200, max_records=500)
        for records in batch.values():
            out.extend((r.partition, r.offset, r.value) for r in records)
        if batch:
            await consumer.commit()


async def _wait(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)  # polling a condition under a deadline


async def _group_round(bootstrap: str, members: int, produce: Callable[[], Awaitable[list[Record]]]) -> None:
    consumers = [_consumer(bootstrap, "g-aio", "aio") for _ in range(members)]
    for c in consumers:
        await c.start()
    got: list[Record] = []
    stop = asyncio.Event()
    loops = [asyncio.create_task(_consume_loop(c, got, stop)) for c in consumers]
    try:
        await _wait(
            lambda: (
                all(c.assignment() for c in consumers) and sum(len(c.assignment()) for c in consumers) == 3
            ),
            "the group to settle",
        )
        produced = await produce()
        await _wait(lambda: len(got) >= len(produced) or any(t.done() for t in loops), "every record")
    finally:
        stop.set()
        await asyncio.gather(*loops)
        for c in consumers:
            await c.stop()
    assert_exactly_once_in_order(produced, sorted(got))


async def test_group_of_two_exactly_once_then_resume(broker: BrokerProcess) -> None:
    bs = broker.bootstrap
    admin = AIOKafkaAdminClient(bootstrap_servers=bs)
    await admin.start()
    try:
        await admin.create_topics([NewTopic("aio", num_partitions=3, replication_factor=1)])
        await _group_round(bs, 2, lambda: _produce(bs, "aio", 1000, "v"))
        await _group_round(bs, 1, lambda: _produce(bs, "aio", 100, "w"))
        assert "aio" in await admin.list_topics()
        described = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "aio")])
        assert "config_names='cleanup.policy', config_value='delete'" in str(described)
        await admin.delete_topics(["aio"])
        assert "aio" not in await admin.list_topics()
    finally:
        await admin.close()


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
async def test_compression_headers_timestamps(broker: BrokerProcess, codec: str) -> None:
    bs = broker.bootstrap
    topic = f"aio-{codec}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bs)
    await admin.start()
    await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bs, compression_type=codec, linger_ms=20, acks="all")
    await producer.start()
    base = 1_700_000_000_000
    try:
        for i in range(200):
            await producer.send(
                topic, value=(f"y{i} " * 30).encode(), headers=[("i", str(i).encode())], timestamp_ms=base + i
            )
        await producer.flush()
    finally:
        await producer.stop()
    with WireClient(broker.host, broker.port) as wire:
        assert {a & 0x7 for a in raw_batch_attributes(wire, topic, 0)} == {COMPRESSION_CODES[codec]}
    consumer = AIOKafkaConsumer(bootstrap_servers=bs, enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        seen = 0
        deadline = time.monotonic() + DEADLINE_S
        while seen < 200 and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for r in records:
                    assert (r.offset, r.timestamp) == (seen, base + seen)
                    assert list(r.headers) == [("i", str(seen).encode())]
                    seen += 1
        assert seen == 200
        found = await consumer.offsets_for_times({tp: base + 77})
        assert found[tp] is not None
        assert found[tp].offset == 77
    finally:
        await consumer.stop()
