"""One transactional id's coordinator state and its transitions, sans I/O.

Semantics follow Kafka's TransactionMetadata/TransactionState (read for behaviour, not copied): a transition
is allowed only from the states Kafka lists as valid previous states; every request names (producer id,
epoch), and a different producer id is INVALID_PRODUCER_ID_MAPPING while another epoch is PRODUCER_FENCED.
Callers persist the metadata after each transition before answering."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from kio.schema.errors import ErrorCode

from streamraft_broker.producer.types import MAX_EPOCH

DEFAULT_TRANSACTION_TIMEOUT_MS = 60_000
TRANSACTION_MAX_TIMEOUT_MS = 900_000
# Kafka's transactional.id.expiration.ms: ids idle this long (no transaction open) are forgotten.
TRANSACTIONAL_ID_EXPIRATION_MS = 604_800_000


class TxnState(enum.Enum):
    EMPTY = "Empty"
    ONGOING = "Ongoing"
    PREPARE_COMMIT = "PrepareCommit"
    PREPARE_ABORT = "PrepareAbort"
    COMPLETE_COMMIT = "CompleteCommit"
    COMPLETE_ABORT = "CompleteAbort"
    DEAD = "Dead"


S = TxnState
_COMPLETE = frozenset({S.EMPTY, S.COMPLETE_COMMIT, S.COMPLETE_ABORT})

VALID_PREVIOUS: dict[TxnState, frozenset[TxnState]] = {
    S.EMPTY: _COMPLETE,
    S.ONGOING: _COMPLETE | {S.ONGOING},
    S.PREPARE_COMMIT: frozenset({S.ONGOING}),
    # Kafka also aborts from a completed state when an epoch bump has to fence a producer.
    S.PREPARE_ABORT: _COMPLETE | {S.ONGOING},
    S.COMPLETE_COMMIT: frozenset({S.PREPARE_COMMIT}),
    S.COMPLETE_ABORT: frozenset({S.PREPARE_ABORT}),
    S.DEAD: _COMPLETE,
}


class TxnError(Exception):
    """A request refused with this Kafka error code."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(slots=True)
class TxnMetadata:
    transactional_id: str
    producer_id: int
    epoch: int
    timeout_ms: int
    state: TxnState = S.EMPTY
    last_producer_id: int = -1
    last_epoch: int = -1
    partitions: set[tuple[str, int]] = field(default_factory=set)
    # Offsets sent with TxnOffsetCommit: group -> (topic, partition) -> (offset, leader epoch, metadata);
    # they become the group's committed offsets only when the transaction commits.
    pending_offsets: dict[str, dict[tuple[str, int], tuple[int, int, str]]] = field(default_factory=dict)
    start_ms: int = -1
    last_update_ms: int = -1

    def transition(self, target: TxnState, now_ms: int) -> None:
        if self.state not in VALID_PREVIOUS[target]:
            raise TxnError(
                ErrorCode.invalid_txn_state,
                f"transaction {self.transactional_id!r}: {self.state.value} -> {target.value} is not allowed",
            )
        if target is S.ONGOING and self.state is not S.ONGOING:
            self.start_ms = now_ms
        if target in (S.EMPTY, S.COMPLETE_COMMIT, S.COMPLETE_ABORT):
            self.partitions = set()
            self.pending_offsets = {}
            if target is S.EMPTY:
                self.start_ms = -1
        self.state = target
        self.last_update_ms = now_ms

    def check_producer(self, producer_id: int, epoch: int) -> None:
        """Fencing for AddPartitionsToTxn, AddOffsetsToTxn, TxnOffsetCommit and EndTxn."""
        if producer_id != self.producer_id:
            raise TxnError(
                ErrorCode.invalid_producer_id_mapping,
                f"transaction {self.transactional_id!r} belongs to producer id {self.producer_id}, "
                f"not {producer_id}",
            )
        if epoch != self.epoch:
            raise TxnError(
                ErrorCode.producer_fenced,
                f"transaction {self.transactional_id!r}: producer epoch {epoch} is fenced by epoch "
                f"{self.epoch}",
            )

    def bump_epoch(self, new_producer_id: int) -> None:
        """Fence the current producer. `new_producer_id` is used only when the epoch is exhausted (Kafka
        moves to a fresh producer id at epoch 0 then)."""
        self.last_producer_id, self.last_epoch = self.producer_id, self.epoch
        if self.epoch + 1 >= MAX_EPOCH:
            self.producer_id, self.epoch = new_producer_id, 0
        else:
            self.epoch += 1

    def is_idle_past(self, now_ms: int, expiration_ms: int) -> bool:
        """No transaction open and untouched for `expiration_ms`: the id may be forgotten."""
        return self.state in _COMPLETE and now_ms - self.last_update_ms > expiration_ms

    def is_expired(self, now_ms: int) -> bool:
        return self.state is S.ONGOING and self.start_ms >= 0 and now_ms - self.start_ms > self.timeout_ms


def check_timeout(timeout_ms: int, max_timeout_ms: int) -> None:
    if timeout_ms <= 0 or timeout_ms > max_timeout_ms:
        raise TxnError(
            ErrorCode.invalid_transaction_timeout,
            f"transaction.timeout.ms {timeout_ms} must be in 1..{max_timeout_ms} "
            "(transaction.max.timeout.ms)",
        )


def add_partitions(meta: TxnMetadata, partitions: set[tuple[str, int]], now_ms: int) -> None:
    """AddPartitionsToTxn / AddOffsetsToTxn (the latter adds the group's offsets partition)."""
    if meta.state in (S.PREPARE_COMMIT, S.PREPARE_ABORT):
        raise TxnError(
            ErrorCode.concurrent_transactions,
            f"transaction {meta.transactional_id!r} is completing ({meta.state.value})",
        )
    if meta.state is S.DEAD:
        raise TxnError(
            ErrorCode.invalid_producer_id_mapping, f"transaction {meta.transactional_id!r} is dead"
        )
    if meta.state is S.ONGOING and partitions <= meta.partitions:
        return
    meta.transition(S.ONGOING, now_ms)
    meta.partitions |= partitions


def prepare_end(meta: TxnMetadata, commit: bool, now_ms: int) -> bool:
    """EndTxn's first step. Returns True when markers must be written (PrepareCommit/PrepareAbort entered),
    False for a retry of an end that already completed the same way."""
    want = S.COMPLETE_COMMIT if commit else S.COMPLETE_ABORT
    if meta.state is S.ONGOING:
        meta.transition(S.PREPARE_COMMIT if commit else S.PREPARE_ABORT, now_ms)
        return True
    if meta.state is want:
        return False
    if meta.state is (S.PREPARE_COMMIT if commit else S.PREPARE_ABORT):
        raise TxnError(
            ErrorCode.concurrent_transactions, f"transaction {meta.transactional_id!r} is completing"
        )
    raise TxnError(
        ErrorCode.invalid_txn_state,
        f"transaction {meta.transactional_id!r} cannot {'commit' if commit else 'abort'} in state "
        f"{meta.state.value}",
    )


def complete_end(meta: TxnMetadata, now_ms: int) -> None:
    """After every marker is written."""
    if meta.state is S.PREPARE_COMMIT:
        meta.transition(S.COMPLETE_COMMIT, now_ms)
    elif meta.state is S.PREPARE_ABORT:
        meta.transition(S.COMPLETE_ABORT, now_ms)
    else:
        raise TxnError(ErrorCode.invalid_txn_state, f"nothing to complete in state {meta.state.value}")
