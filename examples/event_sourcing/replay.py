"""Read a topic from offset 0 to its end as of the call: how both sides rebuild state from a log."""

from __future__ import annotations

import time
from collections.abc import Iterator

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition


class ReplayError(RuntimeError):
    """The topic could not be read to its end (the message names it and why)."""


def replay(bootstrap: str, topic: str, timeout_s: float = 30.0) -> Iterator[tuple[str, bytes | None]]:
    """Yield ``(key, value)`` of every record in log order per partition, ``None`` values being tombstones.

    Nothing is committed: a replay always starts at the first offset the log still holds (offset 0 until
    retention or DeleteRecords moves the log start). Compaction leaves gaps in the offsets, never at the end
    (the active segment is not cleaned), so a partition is read once its record at ``high watermark - 1``
    has arrived.
    """
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "replay", "enable.auto.commit": False})
    deadline = time.monotonic() + timeout_s
    try:
        meta = consumer.list_topics(topic, timeout=timeout_s).topics.get(topic)
        if meta is None or meta.error is not None:
            raise ReplayError(f"{topic}: {meta.error if meta else 'no such topic'}")
        ends: dict[int, int] = {}
        for p in meta.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s)
            if high > low:
                ends[p] = high
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        while ends:
            if time.monotonic() > deadline:
                raise ReplayError(f"{topic}: not read to its end within {timeout_s}s ({ends} left)")
            for msg in consumer.consume(num_messages=500, timeout=0.5):
                err, part, offset, key = msg.error(), msg.partition(), msg.offset(), msg.key()
                if err is not None:
                    raise ReplayError(f"{topic}: {err}")
                if part not in ends or offset is None or offset >= ends[part]:
                    continue  # appended after the replay began
                if key is None:
                    raise ReplayError(f"{topic}-{part}@{offset}: a record without a key")
                yield key.decode(), msg.value()
                if offset == ends[part] - 1:
                    del ends[part]
                    consumer.incremental_unassign([TopicPartition(topic, part)])
    finally:
        consumer.close()
