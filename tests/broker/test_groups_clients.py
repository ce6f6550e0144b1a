"""End to end with a real client (confluent-kafka / librdkafka), complementing test_clients_confluent.py:
a group that starts with one consumer rebalances when a second joins and again when one leaves, the Admin
API lists and describes it, and a new consumer resumes from the committed offsets after a broker restart.

The broker runs in-process on a background thread (the same Broker the process runs, groups wired by
`handlers.groups_wiring`), so the test can inspect coordinator state directly."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from streamraft_broker.config import BrokerConfig
from streamraft_broker.handlers.groups_wiring import lag_source
from streamraft_broker.server.broker import Broker

TOPIC = "orders"
PER_PARTITION = 40
DEADLINE_S = 60.0


class ThreadedBroker:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="broker", daemon=True)
        self.broker: Broker | None = None

    def __enter__(self) -> ThreadedBroker:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(30)
        return self

    async def _start(self) -> None:
        self.broker = Broker(
            BrokerConfig(data_dir=self.data_dir, listen_port=0, metrics_port=None, admin_port=None)
        )
        await self.broker.start()
        assert self.broker.ctx is not None and self.broker.ctx.groups is not None

    @property
    def bootstrap(self) -> str:
        assert self.broker is not None
        return f"127.0.0.1:{self.broker.port}"

    async def _stop(self) -> None:
        assert self.broker is not None
        await self.broker.stop()
        # Let cancelled background tasks (the group deadline task) finish before the loop stops.
        pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        if pending:
            await asyncio.wait(pending, timeout=5)

    def __exit__(self, *exc: object) -> None:
        try:
            asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(30)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(30)
            self.loop.close()


def consumer(bootstrap: str, group: str, assigned: list[set[int]]) -> Consumer:
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 300,
            "partition.assignment.strategy": "range",
        }
    )

    def on_assign(_c: Any, parts: list[TopicPartition]) -> None:
        assigned[0] = {p.partition for p in parts}

    def on_revoke(_c: Any, _parts: list[TopicPartition]) -> None:
        assigned[0] = set()

    c.subscribe([TOPIC], on_assign=on_assign, on_revoke=on_revoke)
    return c


def poll_until(
    consumers: list[Consumer],
    condition: Callable[[], bool],
    what: str,
    on_message: Callable[[Any], None] | None = None,
) -> None:
    """Poll every consumer in turn, handing records to `on_message`, until `condition` holds."""
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        for c in consumers:
            msg = c.poll(0.1)
            if msg is None:
                continue
            err = msg.error()
            assert err is None or err.code() == KafkaError._PARTITION_EOF, err
            if err is None and on_message is not None:
                on_message(msg)


def test_two_consumers_rebalance_commit_and_resume_after_restart(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    committed: dict[int, int] = {}
    with ThreadedBroker(data_dir) as broker:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        admin.create_topics([NewTopic(TOPIC, num_partitions=2, replication_factor=1)])[TOPIC].result(30)
        producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5})
        for i in range(PER_PARTITION):
            for p in (0, 1):
                producer.produce(TOPIC, value=f"{p}:{i}".encode(), partition=p)
        assert producer.flush(30) == 0

        a_parts: list[set[int]] = [set()]
        b_parts: list[set[int]] = [set()]
        a = consumer(broker.bootstrap, "billing", a_parts)
        poll_until([a], lambda: a_parts[0] == {0, 1}, "the first consumer to own both partitions")
        b = consumer(broker.bootstrap, "billing", b_parts)
        poll_until(
            [a, b],
            lambda: len(a_parts[0]) == 1 and len(b_parts[0]) == 1 and a_parts[0] != b_parts[0],
            "the rebalance to split the partitions",
        )
        listed = admin.list_consumer_groups().result(30)
        assert [(g.group_id, g.state.name) for g in listed.valid] == [("billing", "STABLE")]
        described = admin.describe_consumer_groups(["billing"])["billing"].result(30)
        owned_by = sorted(
            sorted(tp.partition for tp in m.assignment.topic_partitions) for m in described.members
        )
        assert described.state.name == "STABLE" and owned_by == [[0], [1]]
        seen: dict[int, list[int]] = {0: [], 1: []}

        def record(msg: Any) -> None:
            seen[msg.partition()].append(msg.offset())

        # Read part of each partition, commit what was read.
        poll_until([a, b], lambda: min(len(v) for v in seen.values()) >= 10, "ten records each", record)
        for c in (a, b):
            positions = c.position([TopicPartition(TOPIC, p) for p in (0, 1)])
            owned = [tp for tp in positions if tp.offset >= 0]
            assert owned, "each consumer read from its partition"
            c.commit(offsets=owned, asynchronous=False)
            committed.update({tp.partition: tp.offset for tp in owned})
        assert set(committed) == {0, 1} and all(0 < off <= PER_PARTITION for off in committed.values())
        assert broker.broker is not None and broker.broker.ctx is not None
        lags = {(t, p): v for g, t, p, v in lag_source(broker.broker.ctx)() if g == "billing"}
        assert lags == {(TOPIC, p): PER_PARTITION - off for p, off in committed.items()}

        # The leaving consumer hands its partition over.
        a.close()
        poll_until([b], lambda: b_parts[0] == {0, 1}, "the remaining consumer to take both partitions")
        b.close()
        # Drop the remaining clients before the broker goes, or librdkafka keeps reconnecting to it.
        del producer, admin

    with ThreadedBroker(data_dir) as broker:
        parts: list[set[int]] = [set()]
        c = consumer(broker.bootstrap, "billing", parts)
        stored = c.committed([TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)], timeout=30)
        assert {tp.partition: tp.offset for tp in stored} == committed
        first: dict[int, int] = {}
        poll_until(
            [c],
            lambda: set(first) == {0, 1},
            "the new consumer to read both partitions",
            lambda m: first.setdefault(m.partition(), m.offset()),
        )
        assert first == committed, "consumption resumes exactly at the committed offsets"
        c.close()
