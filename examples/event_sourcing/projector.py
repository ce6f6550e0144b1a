"""The projector: folds ``account-events`` into balances and keeps the latest one per account in the
compacted ``account-balances`` (a tombstone once the account is closed).

It starts from the read model itself (a replay, like the query side) and from its consumer group's
committed offsets. Offsets are committed only after the balances they produced are acknowledged, so a crash
in between delivers some events again (at least once); the ``version`` in each balance makes that harmless:
an event at or below it was already applied and is skipped.
"""

from __future__ import annotations

import time

from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

from .events import Balance, Event, apply
from .query import rebuild
from .topics import Topics

GROUP = "account-projector"


class ProjectionError(RuntimeError):
    """The projector could not read events or write balances (the message says which and why)."""


class Projector:
    def __init__(self, bootstrap: str, topics: Topics, group: str = GROUP) -> None:
        self._topics = topics
        self.balances: dict[str, Balance] = rebuild(bootstrap, topics)
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": group,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
            }
        )
        self._consumer.subscribe([topics.events])
        self._producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True})

    def _apply(self, event: Event) -> bool:
        """Fold one event in; False when it was applied before (a redelivery)."""
        state = self.balances.get(event.account)
        if state is not None and event.seq <= state.version:
            return False
        if state is None and event.kind != "opened":
            # No balance and not an opening: the account was closed (its tombstone is what we rebuilt from),
            # and this is its history delivered again.
            return False
        after = apply(state, event)
        if after is None:
            del self.balances[event.account]
        else:
            self.balances[event.account] = after
        return True

    def poll(self, timeout_s: float = 0.5) -> int:
        """Project one batch of events; returns how many accounts it changed."""
        messages = self._consumer.consume(num_messages=500, timeout=timeout_s)
        touched: set[str] = set()
        for msg in messages:
            err, key, value = msg.error(), msg.key(), msg.value()
            if err is not None:
                raise ProjectionError(f"{self._topics.events}: {err}")
            if key is None or value is None:
                raise ProjectionError(
                    f"{self._topics.events}@{msg.offset()}: an event needs a key and a value"
                )
            event = Event.decode(key.decode(), value)
            if self._apply(event):
                touched.add(event.account)
        if not messages:
            return 0
        # One record per touched account per batch: the latest balance, or a tombstone.
        failures: list[str] = []

        def delivered(err: KafkaError | None, _msg: Message) -> None:
            if err is not None:
                failures.append(str(err))

        for account in sorted(touched):
            state = self.balances.get(account)
            value = None if state is None else state.encode()
            self._producer.produce(self._topics.balances, value, account, on_delivery=delivered)
        if self._producer.flush(30) != 0 or failures:
            raise ProjectionError(f"balances not acknowledged: {failures or 'timed out'}")
        self._consumer.commit(asynchronous=False)
        return len(touched)

    def caught_up(self) -> bool:
        """True once every partition of the event log is assigned and consumed to its end."""
        assigned = self._consumer.assignment()
        if not assigned:
            return False
        # Before its first record a partition has no position (negative): its committed offset stands in.
        positions = self._consumer.position(assigned)
        committed = {
            (tp.topic, tp.partition): tp.offset for tp in self._consumer.committed(assigned, timeout=10)
        }
        for tp in positions:
            done = tp.offset if tp.offset >= 0 else max(committed[(tp.topic, tp.partition)], 0)
            _low, high = self._consumer.get_watermark_offsets(
                TopicPartition(tp.topic, tp.partition), timeout=10
            )
            if done < high:
                return False
        meta = self._consumer.list_topics(self._topics.events, timeout=10).topics[self._topics.events]
        return len(assigned) == len(meta.partitions)

    def run_until_caught_up(self, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not self.caught_up():
            if time.monotonic() > deadline:
                raise ProjectionError(f"not caught up with {self._topics.events} within {timeout_s}s")
            self.poll(timeout_s=0.1)

    def close(self) -> None:
        self._consumer.close()
        self._producer.flush(10)
