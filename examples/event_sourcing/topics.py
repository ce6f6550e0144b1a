"""The two topics and their configuration; ``create_topics`` makes them (idempotently)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

# The read model keeps one record per account: compaction drops superseded balances. Small segments and a
# low dirty ratio let the broker's log cleaner act within seconds (a demo's pace; production would keep
# Kafka's defaults), and a deleted account's tombstone is dropped 5 s after its first cleaning.
BALANCES_CONFIG = {
    "cleanup.policy": "compact",
    "segment.ms": "100",
    "min.cleanable.dirty.ratio": "0.01",
    "delete.retention.ms": "5000",
}
# The event log is the source of truth: kept forever.
EVENTS_CONFIG = {"cleanup.policy": "delete", "retention.ms": "-1"}


@dataclass(frozen=True, slots=True)
class Topics:
    events: str = "account-events"
    balances: str = "account-balances"


def create_topics(bootstrap: str, topics: Topics, partitions: int = 3, replication_factor: int = 1) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics(
        [
            NewTopic(topics.events, partitions, replication_factor, config=EVENTS_CONFIG),
            NewTopic(topics.balances, partitions, replication_factor, config=BALANCES_CONFIG),
        ],
        operation_timeout=30,
    )
    for future in futures.values():
        try:
            future.result(60)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    _wait_for_leaders(bootstrap, [topics.events, topics.balances])


def _wait_for_leaders(bootstrap: str, names: list[str], timeout_s: float = 30.0) -> None:
    """Block until every partition answers a ListOffsets: on a replicated cluster a new topic is unknown to
    some brokers, or its partitions have no leader, for a moment, and the first replay would fail."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "topic-setup"})

    def ready(name: str) -> bool:
        meta = consumer.list_topics(name, timeout=5).topics.get(name)
        if meta is None or meta.error is not None or not meta.partitions:
            return False
        for p in meta.partitions:
            consumer.get_watermark_offsets(
                TopicPartition(name, p), timeout=5
            )  # raises until a leader answers
        return True

    deadline = time.monotonic() + timeout_s
    try:
        for name in names:
            while True:
                try:
                    if ready(name):
                        break
                except KafkaException:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"topic {name} has no leader for every partition after {timeout_s}s")
                time.sleep(0.2)  # pacing between readiness probes
    finally:
        consumer.close()
