"""The shapes the producer-state code reads from the log layer.

Structural types rather than imports of `records`/`log`, so this package stays a pure state machine that the
produce path, recovery and tests can all feed (the real `BatchHeader`/`AppendInfo` satisfy them)."""

from __future__ import annotations

from typing import Protocol

NO_PRODUCER_ID = -1
NO_PRODUCER_EPOCH = -1
NO_SEQUENCE = -1
MAX_SEQUENCE = 2**31 - 1
MAX_EPOCH = 2**15 - 1
# Kafka keeps the metadata of the last five batches per producer so that any retry of an in-flight batch
# (max.in.flight.requests.per.connection <= 5) is recognised as a duplicate.
BATCHES_KEPT_PER_PRODUCER = 5


class HeaderLike(Protocol):
    @property
    def base_offset(self) -> int: ...
    @property
    def producer_id(self) -> int: ...
    @property
    def producer_epoch(self) -> int: ...
    @property
    def base_sequence(self) -> int: ...
    @property
    def last_offset_delta(self) -> int: ...
    @property
    def max_timestamp(self) -> int: ...
    @property
    def is_control(self) -> bool: ...


class AppendInfoLike(Protocol):
    @property
    def base_offset(self) -> int: ...
    @property
    def log_append_time(self) -> int: ...


class HeaderSource(Protocol):
    """What recovery needs from a PartitionLog."""

    @property
    def log_start_offset(self) -> int: ...
    @property
    def log_end_offset(self) -> int: ...
    def iter_batch_headers(self, from_offset: int) -> object: ...


def increment_sequence(sequence: int, increment: int) -> int:
    """Sequence arithmetic as Kafka does it: sequences wrap from 2^31-1 back to 0."""
    assert 0 <= sequence <= MAX_SEQUENCE and increment >= 0
    if sequence > MAX_SEQUENCE - increment:
        return increment - (MAX_SEQUENCE - sequence) - 1
    return sequence + increment


def in_sequence(last_sequence: int, next_sequence: int) -> bool:
    return next_sequence == last_sequence + 1 or (next_sequence == 0 and last_sequence == MAX_SEQUENCE)
