"""confluent-kafka (librdkafka) on a real broker: groups, idempotence, compression, headers, timestamps."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from tests.support.broker_process import BrokerProcess
from tests.support.fixtures import module_broker
from tests.support.kafka_checks import COMPRESSION_CODES, assert_exactly_once_in_order, raw_batch_attributes
from tests.support.wire import WireClient

DEADLINE_S = 60.0


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    yield from module_broker(tmp_path_factory)


def _create(bootstrap: str, name: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(timeout=30)


def _produce(
    bootstrap: str, topic: str, items: Iterable[tuple[bytes, bytes]], **conf: Any
) -> list[tuple[int, int, bytes]]:
    producer = Producer(
        {"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True, "linger.ms": 5, **conf}
    )
    acked: list[tuple[int, int, bytes]] = []
    errors: list[Any] = []

    def report(err: Any, msg: Any) -> None:
        if err is not None:
            errors.append(err)
        else:
            acked.append((msg.partition(), msg.offset(), msg.value()))

    for key, value in items:
        producer.produce(topic, key=key, value=value, on_delivery=report)
        producer.poll(0)
    assert producer.flush(DEADLINE_S) == 0
    assert errors == []
    return acked


def _consumer(bootstrap: str, group: str) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 10000,
            "heartbeat.interval.ms": 500,
        }
    )


def _wait_assigned(consumers: list[Consumer], partitions: int) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        for c in consumers:
            assert c.consume(num_messages=1, timeout=0.2) == [], "no records were produced yet"
        assigned = [len(c.assignment()) for c in consumers]
        if all(assigned) and sum(assigned) == partitions:
            return
    raise AssertionError(f"group never settled: assignments {[c.assignment() for c in consumers]}")


def _drain(consumers: list[Consumer], expected: int) -> list[tuple[int, int, bytes]]:
    """Consume from all, committing each batch synchronously before the next poll."""
    got: list[tuple[int, int, bytes]] = []
    deadline = time.monotonic() + DEADLINE_S
    while len(got) < expected and time.monotonic() < deadline:
        for c in consumers:
            batch = c.consume(num_messages=500, timeout=0.2)
            for m in batch:
                assert m.error() is None, m.error()
                got.append((m.partition(), m.offset(), m.value()))
            if batch:
                c.commit(asynchronous=False)
    return got


def test_group_of_two_exactly_once_then_resume_at_committed_offset(broker: BrokerProcess) -> None:
    bs = broker.bootstrap
    _create(bs, "orders", 4)
    consumers = [_consumer(bs, "g-orders") for _ in range(2)]
    for c in consumers:
        c.subscribe(["orders"])
    _wait_assigned(consumers, 4)
    produced = _produce(bs, "orders", ((f"k{i % 13}".encode(), f"v{i}".encode()) for i in range(3000)))
    consumed = _drain(consumers, len(produced))
    assert_exactly_once_in_order(produced, consumed)
    # Per key, values arrive in production order.
    by_key: dict[int, list[int]] = {}
    for _p, _o, value in consumed:
        i = int(value[1:])
        by_key.setdefault(i % 13, []).append(i)
    for order in by_key.values():
        assert order == sorted(order)
    for c in consumers:
        c.close()

    more = _produce(bs, "orders", ((b"late", f"w{i}".encode()) for i in range(200)))
    resumed = _consumer(bs, "g-orders")
    resumed.subscribe(["orders"])
    again = _drain([resumed], len(more))
    assert_exactly_once_in_order(more, again)  # nothing before the committed offsets came back
    committed = resumed.committed([TopicPartition("orders", p) for p in range(4)], timeout=10)
    ends = {p: max(o for q, o, _ in produced + more if q == p) + 1 for p, _o, _v in produced + more}
    assert {tp.partition: tp.offset for tp in committed if tp.partition in ends} == ends
    resumed.close()

    admin = AdminClient({"bootstrap.servers": bs})
    res = ConfigResource("topic", "orders")
    configs = admin.describe_configs([res])[res].result(timeout=10)
    assert configs["cleanup.policy"].value == "delete"
    assert len(admin.list_topics(timeout=10).topics["orders"].partitions) == 4
    groups = admin.list_consumer_groups().result(timeout=10)
    assert "g-orders" in {g.group_id for g in groups.valid}
    admin.delete_consumer_groups(["g-orders"])["g-orders"].result(timeout=10)
    groups = admin.list_consumer_groups().result(timeout=10)
    assert "g-orders" not in {g.group_id for g in groups.valid}
    admin.delete_topics(["orders"])["orders"].result(timeout=10)
    assert "orders" not in admin.list_topics(timeout=10).topics


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_compressed_batches_stored_untouched_headers_and_timestamps(
    broker: BrokerProcess, codec: str
) -> None:
    bs = broker.bootstrap
    topic = f"comp-{codec}"
    _create(bs, topic, 1)
    producer = Producer({"bootstrap.servers": bs, "compression.type": codec, "linger.ms": 20, "acks": "all"})
    base_ts = 1_700_000_000_000
    for i in range(300):
        producer.produce(
            topic,
            key=b"k",
            value=(f"value-{i} " * 20).encode(),
            headers=[("n", str(i).encode()), ("c", codec.encode())],
            timestamp=base_ts + i,
        )
    assert producer.flush(DEADLINE_S) == 0
    with WireClient(broker.host, broker.port) as wire:
        attrs = raw_batch_attributes(wire, topic, 0)
    assert attrs, "no batches stored"
    assert {a & 0x7 for a in attrs} == {COMPRESSION_CODES[codec]}

    consumer = _consumer(bs, f"g-{codec}")
    consumer.assign([TopicPartition(topic, 0, 0)])
    seen = 0
    deadline = time.monotonic() + DEADLINE_S
    while seen < 300 and time.monotonic() < deadline:
        for m in consumer.consume(num_messages=500, timeout=0.5):
            assert m.error() is None
            assert m.offset() == seen
            assert m.timestamp()[1] == base_ts + seen
            assert dict(m.headers()) == {"n": str(seen).encode(), "c": codec.encode()}
            seen += 1
    assert seen == 300
    # ListOffsets by timestamp: the first record at or after base_ts + 123 is offset 123.
    found = consumer.offsets_for_times([TopicPartition(topic, 0, base_ts + 123)], timeout=10)
    assert found[0].offset == 123
    late = consumer.offsets_for_times([TopicPartition(topic, 0, base_ts + 10_000)], timeout=10)
    assert late[0].offset == -1  # after the last record: no offset (Kafka answers -1)
    consumer.close()


def test_unknown_topic_and_invalid_config_errors(broker: BrokerProcess) -> None:
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    fut = admin.create_topics([NewTopic("badcfg", 1, 1, config={"retention.ms": "soon"})])["badcfg"]
    with pytest.raises(Exception) as exc:
        fut.result(timeout=10)
    err = exc.value.args[0]
    assert err.code() == KafkaError.INVALID_CONFIG
    assert "retention.ms" in err.str()
    # A producer that does not ask for auto-creation (the broker's auto.create.topics.enable is true).
    producer = Producer(
        {
            "bootstrap.servers": broker.bootstrap,
            "message.timeout.ms": 3000,
            "allow.auto.create.topics": False,
        }
    )
    errors: list[Any] = []
    producer.produce("no-such-topic", value=b"x", on_delivery=lambda e, _m: errors.append(e))
    producer.flush(15)
    assert errors and errors[0] is not None
    assert errors[0].code() in (
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError._UNKNOWN_TOPIC,
        KafkaError._MSG_TIMED_OUT,
    )
