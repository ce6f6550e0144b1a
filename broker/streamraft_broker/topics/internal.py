"""Kafka's internal topics: written only by the broker itself, never by clients, and never deleted.

Always enforced, with or without an authorizer: a client producing into ``__consumer_offsets`` could forge
any group's offsets, and deleting it would lose every committed offset.
"""

from __future__ import annotations

CONSUMER_OFFSETS = "__consumer_offsets"
TRANSACTION_STATE = "__transaction_state"

INTERNAL_TOPICS = frozenset({CONSUMER_OFFSETS, TRANSACTION_STATE})

INVALID_TOPIC_EXCEPTION = 17
"""What Kafka answers a client producing to an internal topic ("Cannot append to internal topic")."""


def is_internal(name: str | None) -> bool:
    """True for the topics Kafka itself owns: the group offsets and transaction state logs."""
    return name in INTERNAL_TOPICS
