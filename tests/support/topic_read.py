"""Read a whole topic from offset 0 with a real confluent-kafka consumer: what is physically in the log."""

from __future__ import annotations

import time
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError, TopicPartition


@dataclass(frozen=True)
class LogRecord:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


def watermarks(
    bootstrap: str, topic: str, timeout_s: float = 15.0, *, isolation: str = "read_committed"
) -> dict[int, tuple[int, int]]:
    """``{partition: (log start offset, end)}`` of every partition of ``topic``: the end is the high
    watermark under read_uncommitted, the last stable offset under read_committed (librdkafka's default)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "watermarks",
            "isolation.level": isolation,
            "enable.auto.commit": False,
        }
    )
    try:
        meta = consumer.list_topics(topic, timeout=timeout_s).topics[topic]
        assert meta.error is None, f"{topic}: {meta.error}"
        marks: dict[int, tuple[int, int]] = {}
        for p in sorted(meta.partitions):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s)
            marks[p] = (int(low), int(high))
        return marks
    finally:
        consumer.close()


def read_topic(
    bootstrap: str, topic: str, timeout_s: float = 30.0, *, isolation: str = "read_committed"
) -> list[LogRecord]:
    """Every record from each partition's log start to its end as of the call (see ``watermarks``), in
    offset order per partition: under read_committed what a read_committed consumer sees now, aborted and
    still-open transactions left out. Fails (naming the topic) if the end is not reached in ``timeout_s``."""
    ends = watermarks(bootstrap, topic, isolation=isolation)
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "topic-read",
            "isolation.level": isolation,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            # Compaction leaves offset gaps, the tail included: the end-of-partition event says "caught up".
            "enable.partition.eof": True,
        }
    )
    todo = {p: high for p, (low, high) in ends.items() if high > low}
    got: list[LogRecord] = []
    next_offset = {p: ends[p][0] for p in todo}
    deadline = time.monotonic() + timeout_s
    try:
        # The log start, not a committed position: where a replaying reader begins.
        consumer.assign([TopicPartition(topic, p, ends[p][0]) for p in todo])
        while any(next_offset[p] < high for p, high in todo.items()):
            assert time.monotonic() < deadline, f"{topic}: read {next_offset} of {ends} in {timeout_s}s"
            for msg in consumer.consume(num_messages=1000, timeout=0.5):
                part, offset, err = msg.partition(), msg.offset(), msg.error()
                assert part is not None and offset is not None
                if err is not None and err.code() == KafkaError._PARTITION_EOF:
                    next_offset[part] = max(next_offset[part], offset)
                    continue
                assert err is None, f"{topic}: {err}"
                if offset >= todo[part]:
                    continue
                got.append(LogRecord(part, offset, msg.key(), msg.value()))
                next_offset[part] = offset + 1
    finally:
        consumer.close()
    return sorted(got, key=lambda r: (r.partition, r.offset))
