"""Which topics are Kafka-internal (flagged is_internal in Metadata; clients hide them from listings)."""

from __future__ import annotations

CONSUMER_OFFSETS = "__consumer_offsets"
TRANSACTION_STATE = "__transaction_state"

_INTERNAL = frozenset({CONSUMER_OFFSETS, TRANSACTION_STATE})


def is_internal(name: str) -> bool:
    """True for the topics Kafka itself owns: the group offsets and transaction state logs."""
    return name in _INTERNAL
