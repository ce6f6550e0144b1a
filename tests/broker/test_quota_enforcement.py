"""Client quotas enforced as Kafka does: a client-id over producer_byte_rate, consumer_byte_rate or
request_percentage gets throttle_time_ms in its responses and its connection muted, so its rate settles at
the quota, while a client-id without a quota runs at full speed beside it.

The broker runs with ``quota.window.num=2``: with Kafka's default of 11 one-second samples a new client may
send ten seconds' worth of quota at once and is then held until the window has filled, so a rate is only
measurable after 20 s or more; two samples give the same arithmetic a steady state within a second.
"""

from __future__ import annotations

import re
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kio.schema.metadata.v12.request import MetadataRequest

from tests.support.broker_process import BrokerProcess
from tests.support.client_quotas import set_quotas
from tests.support.fixtures import module_broker
from tests.support.wire import WireClient

QUOTA = 256 * 1024
VALUE = b"q" * 10_000
MEASURE_FROM_S, MEASURE_TO_S = 1.0, 7.0
"""Rates are measured over these seconds of a run: after the first window's allowance, an even number of
windows long."""
TOLERANCE = 0.3


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    yield from module_broker(tmp_path_factory, extra_args=["--quota-window-num", "2"])


@dataclass
class Run:
    started: float = 0.0
    done: list[tuple[float, int]] = field(default_factory=list)
    """(monotonic time, bytes) of each acknowledged or consumed message."""
    throttles: list[float] = field(default_factory=list)
    """throttle_time_ms (as seconds) the client saw in responses (librdkafka's throttle_cb)."""

    def rate(self, start_s: float, end_s: float) -> float:
        got = sum(n for t, n in self.done if start_s <= t - self.started < end_s)
        return got / (end_s - start_s)


def _create(bootstrap: str, topic: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(15)


def _produce_for(bootstrap: str, topic: str, client_id: str, seconds: float, run: Run) -> None:
    """As fast as the producer can for ``seconds``; small batches so each request is a small step."""
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "client.id": client_id,
            "linger.ms": 2,
            "batch.size": 16384,
            "queue.buffering.max.kbytes": 1024,
            "throttle_cb": lambda event: run.throttles.append(float(event.throttle_time)),
        }
    )

    def acked(err: object, msg: object) -> None:
        if err is None:
            run.done.append((time.monotonic(), len(VALUE)))

    run.started = time.monotonic()
    while time.monotonic() - run.started < seconds:
        try:
            producer.produce(topic, VALUE, on_delivery=acked)
        except BufferError:
            producer.poll(0.005)  # the queue is full: the broker's pace, not ours, sets the rate
            continue
        producer.poll(0)
    producer.purge()
    producer.flush(10)


def _consume_for(bootstrap: str, topic: str, client_id: str, seconds: float, run: Run) -> None:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "client.id": client_id,
            "group.id": f"g-{client_id}",
            "enable.auto.commit": False,
            "max.partition.fetch.bytes": 32768,
            "throttle_cb": lambda event: run.throttles.append(float(event.throttle_time)),
        }
    )
    consumer.assign([TopicPartition(topic, 0, 0)])
    run.started = time.monotonic()
    try:
        while time.monotonic() - run.started < seconds:
            msg = consumer.poll(0.1)
            if msg is not None and msg.error() is None:
                run.done.append((time.monotonic(), len(msg.value() or b"")))
    finally:
        consumer.close()


def _in_parallel(*jobs: tuple[object, ...]) -> None:
    threads = [threading.Thread(target=job[0], args=job[1:]) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads), "a client thread did not finish"


def _throttle_count(broker: BrokerProcess, quota_type: str) -> float:
    body = urllib.request.urlopen(broker.metrics_url, timeout=5).read().decode()
    pattern = rf'^streamraft_quota_throttle_time_seconds_count{{quota_type="{quota_type}"}} (\S+)$'
    found = re.search(pattern, body, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def test_producer_byte_rate_holds_a_client_id_to_its_quota(broker: BrokerProcess) -> None:
    _create(broker.bootstrap, "produce-quota")
    set_quotas(broker.bootstrap, {"client-id": "slow-producer"}, {"producer_byte_rate": QUOTA})
    slow, fast = Run(), Run()
    _in_parallel(
        (_produce_for, broker.bootstrap, "produce-quota", "slow-producer", MEASURE_TO_S, slow),
        (_produce_for, broker.bootstrap, "produce-quota", "free-producer", MEASURE_TO_S, fast),
    )
    rate = slow.rate(MEASURE_FROM_S, MEASURE_TO_S)
    assert abs(rate - QUOTA) <= TOLERANCE * QUOTA, f"throttled producer ran at {rate / 1024:.0f} KiB/s"
    assert slow.throttles and max(slow.throttles) > 0, "no throttle_time_ms reached the throttled producer"
    free_rate = fast.rate(MEASURE_FROM_S, MEASURE_TO_S)
    assert free_rate > 4 * QUOTA, f"the producer without a quota ran at only {free_rate / 1024:.0f} KiB/s"
    assert not [t for t in fast.throttles if t > 0], "the producer without a quota was throttled"
    assert _throttle_count(broker, "produce") > 0


def test_consumer_byte_rate_holds_a_client_id_to_its_quota(broker: BrokerProcess) -> None:
    topic = "fetch-quota"
    _create(broker.bootstrap, topic)
    fill = Run()
    total = 5 * 1024 * 1024
    # Small batches: a throttled fetch is answered empty after its bytes were counted (Kafka's way), so
    # the throttled consumer loses one fetch's worth of time per throttle; fetches small next to the quota
    # keep that loss small. (A batch above what one window lets through would never get through.)
    producer = Producer(
        {"bootstrap.servers": broker.bootstrap, "client.id": "filler", "linger.ms": 5, "batch.size": 16384}
    )
    for _ in range(total // len(VALUE)):
        producer.produce(
            topic, VALUE, on_delivery=lambda err, _m: fill.done.append((0.0, 1)) if err is None else None
        )
        producer.poll(0)
    assert producer.flush(60) == 0
    set_quotas(broker.bootstrap, {"client-id": "slow-consumer"}, {"consumer_byte_rate": QUOTA})
    slow, fast = Run(), Run()
    _in_parallel(
        (_consume_for, broker.bootstrap, topic, "slow-consumer", MEASURE_TO_S, slow),
        (_consume_for, broker.bootstrap, topic, "free-consumer", MEASURE_TO_S, fast),
    )
    rate = slow.rate(MEASURE_FROM_S, MEASURE_TO_S)
    assert abs(rate - QUOTA) <= TOLERANCE * QUOTA, f"throttled consumer ran at {rate / 1024:.0f} KiB/s"
    assert slow.throttles and max(slow.throttles) > 0, "no throttle_time_ms reached the throttled consumer"
    read_all = sum(n for _, n in fast.done)
    assert read_all == len(fill.done) * len(VALUE), (
        "the consumer without a quota did not read the whole topic"
    )
    seconds = fast.done[-1][0] - fast.started
    assert read_all / seconds > 4 * QUOTA, f"the consumer without a quota took {seconds:.1f} s"
    assert not [t for t in fast.throttles if t > 0], "the consumer without a quota was throttled"
    assert _throttle_count(broker, "fetch") > 0


def _metadata() -> MetadataRequest:
    return MetadataRequest(
        topics=(), allow_auto_topic_creation=False, include_topic_authorized_operations=False
    )


def test_request_percentage_throttles_and_mutes_the_connection(broker: BrokerProcess) -> None:
    # 0.01 % of one thread: 0.1 ms of handler time per second, less than one Metadata request costs.
    set_quotas(broker.bootstrap, {"client-id": "busy"}, {"request_percentage": 0.01})
    with WireClient(broker.host, broker.port, client_id="busy") as busy:
        throttle_ms = 0
        for _ in range(50):
            throttle_ms = int(busy.request(3, 12, _metadata()).throttle_time.total_seconds() * 1000)
            if throttle_ms:
                break
        assert 0 < throttle_ms <= 1000, f"throttle_time_ms {throttle_ms} (Kafka bounds it by one window)"
        # The connection is muted for that long: the next request is read only afterwards.
        sent = time.monotonic()
        busy.request(3, 12, _metadata())
        waited_ms = (time.monotonic() - sent) * 1000
        assert waited_ms >= 0.8 * throttle_ms, (
            f"answered after {waited_ms:.0f} ms of a {throttle_ms} ms throttle"
        )
    with WireClient(broker.host, broker.port, client_id="idle") as other:
        assert all(other.request(3, 12, _metadata()).throttle_time.total_seconds() == 0 for _ in range(20))
    assert _throttle_count(broker, "request") > 0
