"""The account domain: events, the fold that turns them into a balance, and their JSON form on the wire.

Events are facts and never change. An account's state is the fold of its events in order; each event carries
its position in the account's history (``seq`` 1, 2, ...), so a reader that sees one twice can skip it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal, cast, get_args

EventKind = Literal["opened", "deposited", "withdrawn", "closed"]
KINDS: tuple[EventKind, ...] = get_args(EventKind)


class DomainError(ValueError):
    """A command or event that does not fit the account's state (the message says why)."""


@dataclass(frozen=True, slots=True)
class Event:
    account: str
    seq: int
    kind: EventKind
    amount: int = 0
    """In cents; 0 for ``opened`` and ``closed``."""

    def encode(self) -> bytes:
        # The account id is the record key, so the value does not repeat it.
        return json.dumps({"seq": self.seq, "kind": self.kind, "amount": self.amount}).encode()

    @classmethod
    def decode(cls, account: str, raw: bytes) -> Event:
        try:
            body = json.loads(raw)
            seq, kind, amount = body["seq"], body["kind"], body["amount"]
        except (ValueError, TypeError, KeyError) as exc:
            raise DomainError(f"event of {account!r} is not an event: {raw[:80]!r} ({exc})") from exc
        if not (
            isinstance(seq, int) and seq >= 1 and kind in KINDS and isinstance(amount, int) and amount >= 0
        ):
            raise DomainError(f"event of {account!r} has bad fields: {body!r}")
        return cls(account, seq, cast(EventKind, kind), amount)


@dataclass(frozen=True, slots=True)
class Balance:
    """The read model of one open account: its balance after the event number ``version``."""

    balance: int
    version: int

    def encode(self) -> bytes:
        return json.dumps({"balance": self.balance, "version": self.version}).encode()

    @classmethod
    def decode(cls, raw: bytes) -> Balance:
        try:
            body = json.loads(raw)
            balance, version = body["balance"], body["version"]
        except (ValueError, TypeError, KeyError) as exc:
            raise DomainError(f"not a balance: {raw[:80]!r} ({exc})") from exc
        if not (isinstance(balance, int) and isinstance(version, int)):
            raise DomainError(f"balance with bad fields: {body!r}")
        return cls(balance, version)


def apply(state: Balance | None, event: Event) -> Balance | None:
    """The fold: the account's state after ``event``; ``None`` is "no open account"."""
    if event.kind == "opened":
        if state is not None:
            raise DomainError(f"account {event.account!r} is already open")
        return Balance(0, event.seq)
    if state is None:
        raise DomainError(f"account {event.account!r} is not open")
    if event.seq != state.version + 1:
        raise DomainError(f"account {event.account!r}: event {event.seq} after {state.version}")
    if event.kind == "deposited":
        return Balance(state.balance + event.amount, event.seq)
    if event.kind == "withdrawn":
        if event.amount > state.balance:
            raise DomainError(f"account {event.account!r}: cannot withdraw {event.amount} of {state.balance}")
        return Balance(state.balance - event.amount, event.seq)
    if state.balance != 0:
        raise DomainError(f"account {event.account!r} still holds {state.balance}")
    return None
