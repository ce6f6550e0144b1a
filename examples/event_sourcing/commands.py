"""The command side: validate a command against the account's current state, then append its event.

The state comes from the event log itself (a replay of ``account-events`` at start, then the events this
handler appends), so it assumes it is the only writer: run one handler, or partition accounts between them.
"""

from __future__ import annotations

from confluent_kafka import Message, Producer

from .events import Balance, DomainError, Event, EventKind, apply
from .replay import replay
from .topics import Topics


class AppendError(RuntimeError):
    """The event log did not acknowledge an event; the account's state is unchanged."""


class Accounts:
    def __init__(self, bootstrap: str, topics: Topics) -> None:
        self._topics = topics
        # Idempotence: a retried send is written once, and an account's events stay in order.
        self._producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True})
        self._state: dict[str, Balance | None] = {}
        self._seq: dict[str, int] = {}
        for account, raw in replay(bootstrap, topics.events):
            if raw is None:
                raise DomainError(
                    f"{topics.events} holds a tombstone for {account!r}: events are never deleted"
                )
            self._fold(Event.decode(account, raw))

    def _fold(self, event: Event) -> None:
        self._state[event.account] = apply(self._state.get(event.account), event)
        self._seq[event.account] = event.seq

    def balance(self, account: str) -> int | None:
        state = self._state.get(account)
        return None if state is None else state.balance

    def open(self, account: str) -> Event:
        if account in self._seq:
            raise DomainError(f"account id {account!r} was used before")
        return self._append(account, "opened", 0)

    def deposit(self, account: str, cents: int) -> Event:
        if cents <= 0:
            raise DomainError(f"deposit of {cents}: must be positive")
        return self._append(account, "deposited", cents)

    def withdraw(self, account: str, cents: int) -> Event:
        if cents <= 0:
            raise DomainError(f"withdrawal of {cents}: must be positive")
        return self._append(account, "withdrawn", cents)

    def close(self, account: str) -> Event:
        return self._append(account, "closed", 0)

    def _append(self, account: str, kind: EventKind, cents: int) -> Event:
        event = Event(account, self._seq.get(account, 0) + 1, kind, cents)
        new_state = apply(self._state.get(account), event)  # raises DomainError: nothing is written
        failures: list[str] = []

        def delivered(err: object, _msg: Message) -> None:
            if err is not None:
                failures.append(str(err))

        # Keyed by account: one account's events share a partition, hence an order.
        self._producer.produce(self._topics.events, event.encode(), account, on_delivery=delivered)
        if self._producer.flush(30) != 0 or failures:
            raise AppendError(f"event {event} not acknowledged: {failures or 'timed out'}")
        self._state[account] = new_state
        self._seq[account] = event.seq
        return event
