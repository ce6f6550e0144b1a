"""Acknowledged-write history of a Kafka producer, and its check against what the log holds afterwards.

Only writes the broker acknowledged (delivery report without error) are recorded; a write that failed or
timed out may or may not be stored, and is allowed either way. The check: every acknowledged
(partition, offset, value) is read back at that offset with that value, and no offset was acknowledged
for two different values.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from confluent_kafka import Consumer, TopicPartition

Key = tuple[int, int]  # (partition, offset)


@dataclass
class History:
    acked: dict[Key, bytes] = field(default_factory=dict)
    conflicts: list[tuple[Key, bytes, bytes]] = field(default_factory=list)
    failed: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def ack(self, partition: int, offset: int, value: bytes) -> None:
        assert partition >= 0 and offset >= 0, f"acknowledged write without a position: {partition}/{offset}"
        with self._lock:
            previous = self.acked.setdefault((partition, offset), value)
            if previous != value:
                self.conflicts.append(((partition, offset), previous, value))

    def fail(self) -> None:
        with self._lock:
            self.failed += 1

    def count(self, partition: int | None = None) -> int:
        with self._lock:
            return sum(1 for p, _ in self.acked if partition is None or p == partition)

    def snapshot(self) -> dict[Key, bytes]:
        with self._lock:
            return dict(self.acked)


def read_partitions(
    bootstrap: str, topic: str, ends: dict[int, int], timeout: float = 60
) -> dict[Key, bytes]:
    """Every record of `topic` from offset 0 up to `ends[partition]` (exclusive), by (partition, offset)."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "history-check", "enable.auto.commit": False}
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in sorted(ends)])
    stored: dict[Key, bytes] = {}
    duplicates: list[Key] = []
    highest = dict.fromkeys(ends, -1)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and any(highest[p] < end - 1 for p, end in ends.items()):
            msg = consumer.poll(0.5)
            if msg is None or msg.error() is not None:
                continue
            partition, offset, value = msg.partition(), msg.offset(), msg.value()
            assert partition is not None and offset is not None and value is not None, "incomplete record"
            key = (partition, offset)
            if key in stored:
                duplicates.append(key)
            stored[key] = value
            highest[key[0]] = max(highest[key[0]], key[1])
    finally:
        consumer.close()
    assert not duplicates, f"offsets delivered twice by one read: {duplicates[:10]}"
    return stored


def lost_writes(history: History, stored: dict[Key, bytes]) -> list[str]:
    """Human-readable violations: acknowledged writes missing or different in `stored`, and conflicts."""
    problems = [f"offset {k} acknowledged for {a!r} and {b!r}" for k, a, b in history.conflicts]
    for key, value in sorted(history.snapshot().items()):
        if key not in stored:
            problems.append(f"acknowledged {value!r} at {key} is missing")
        elif stored[key] != value:
            problems.append(f"acknowledged {value!r} at {key} reads back as {stored[key]!r}")
    return problems


def duplicated_values(stored: dict[Key, bytes]) -> list[bytes]:
    """Values stored at more than one offset (allowed for unacknowledged retries; reported for context)."""
    return [v for v, n in Counter(stored.values()).items() if n > 1]
