"""The query side: the read model, rebuilt from the compacted ``account-balances`` by a replay from 0."""

from __future__ import annotations

from .events import Balance
from .replay import replay
from .topics import Topics


def rebuild(bootstrap: str, topics: Topics) -> dict[str, Balance]:
    """Every open account's balance. Compaction keeps the latest record per account, so this costs one
    record per account (plus what the cleaner has not reached yet), however long the history."""
    balances: dict[str, Balance] = {}
    for account, raw in replay(bootstrap, topics.balances):
        if raw is None:
            balances.pop(account, None)  # a tombstone: the account was closed
        else:
            balances[account] = Balance.decode(raw)
    return balances
