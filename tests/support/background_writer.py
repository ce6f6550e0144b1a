"""A producer writing in the background while a test disturbs the cluster (a certificate swap, a kill),
and a reader that collects what a topic holds, to check that every acknowledged record is there."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from types import TracebackType

from confluent_kafka import Consumer, KafkaError, Message, Producer

from tests.support.poll import poll

MAX_RECORDS = 200_000
PACE_S = 0.002
"""The writer's poll between two records: paces it (~500 records/s) and serves delivery callbacks."""


class AckedWriter:
    """Produces `v<i>` to ``topic`` with acks=all and idempotence until stopped (bounded in count);
    ``acked`` holds every acknowledged value, ``failed`` every delivery error."""

    def __init__(self, client: Mapping[str, object], topic: str) -> None:
        self.topic = topic
        self.acked: set[bytes] = set()
        self.failed: list[str] = []
        self.sent = 0
        self._producer = Producer({**client, "acks": "all", "enable.idempotence": True, "linger.ms": 5})
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"writer-{topic}", daemon=True)

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        value = msg.value()
        if err is not None:
            self.failed.append(str(err))
        elif value is not None:
            self.acked.add(value)

    def _run(self) -> None:
        while not self._stop.is_set() and self.sent < MAX_RECORDS:
            self._producer.produce(self.topic, f"v{self.sent}".encode(), on_delivery=self._on_delivery)
            self.sent += 1
            self._producer.poll(PACE_S)

    def wait_for_more(self, count: int, timeout: float, what: str) -> None:
        """Until ``count`` more records than now are acknowledged."""
        mark = len(self.acked)
        poll(f"{count} more records acknowledged {what}", lambda: len(self.acked) >= mark + count, timeout)

    def __enter__(self) -> AckedWriter:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def stop(self, timeout: float = 60.0) -> None:
        """Stops writing and waits for every record sent to be acknowledged or failed."""
        self._stop.set()
        self._thread.join(timeout)
        self._producer.flush(timeout)


def read_values(client: Mapping[str, object], topic: str, want: set[bytes], timeout: float) -> set[bytes]:
    """Every value in ``topic`` (all partitions, from the start), read until ``want`` is covered or the
    deadline passes."""
    consumer = Consumer(
        {**client, "group.id": f"read-{topic}-{time.monotonic_ns()}", "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([topic])
    got: set[bytes] = set()
    deadline = time.monotonic() + timeout
    try:
        while not want <= got and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None and (value := msg.value()) is not None:
                got.add(value)
    finally:
        consumer.close()
    return got
