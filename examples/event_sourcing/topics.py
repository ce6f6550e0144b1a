"""The two topics and their configuration; ``create_topics`` makes them (idempotently)."""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException
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
