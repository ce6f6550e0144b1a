"""The transaction coordinator's state machine and coordinator logic, without a broker: the transitions
Kafka's TransactionMetadata allows, producer fencing, epoch bumps, timeouts, durable state and recovery of
a transaction a crash left between prepare and complete."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest
from kio.schema.errors import ErrorCode
from streamraft_broker.transactions.coordinator import Offsets, TransactionCoordinator
from streamraft_broker.transactions.state import (
    VALID_PREVIOUS,
    TxnError,
    TxnMetadata,
    TxnState,
    add_partitions,
    prepare_end,
)

S = TxnState
T = TypeVar("T")

ALLOWED = {
    (S.EMPTY, S.EMPTY), (S.COMPLETE_COMMIT, S.EMPTY), (S.COMPLETE_ABORT, S.EMPTY),
    (S.EMPTY, S.ONGOING), (S.ONGOING, S.ONGOING), (S.COMPLETE_COMMIT, S.ONGOING),
    (S.COMPLETE_ABORT, S.ONGOING),
    (S.ONGOING, S.PREPARE_COMMIT),
    (S.ONGOING, S.PREPARE_ABORT), (S.EMPTY, S.PREPARE_ABORT), (S.COMPLETE_COMMIT, S.PREPARE_ABORT),
    (S.COMPLETE_ABORT, S.PREPARE_ABORT),
    (S.PREPARE_COMMIT, S.COMPLETE_COMMIT),
    (S.PREPARE_ABORT, S.COMPLETE_ABORT),
    (S.EMPTY, S.DEAD), (S.COMPLETE_COMMIT, S.DEAD), (S.COMPLETE_ABORT, S.DEAD),
}  # fmt: skip


def meta(state: TxnState = S.EMPTY) -> TxnMetadata:
    return TxnMetadata("tx", producer_id=7, epoch=3, timeout_ms=1000, state=state)


@pytest.mark.parametrize(("source", "target"), list(itertools.product(TxnState, TxnState)))
def test_only_kafkas_transitions_are_allowed(source: TxnState, target: TxnState) -> None:
    m = meta(source)
    if (source, target) in ALLOWED:
        m.transition(target, now_ms=5)
        assert m.state is target and m.last_update_ms == 5
    else:
        with pytest.raises(TxnError) as refused:
            m.transition(target, now_ms=5)
        assert refused.value.code == ErrorCode.invalid_txn_state
        assert m.state is source
    assert {(p, t) for t, ps in VALID_PREVIOUS.items() for p in ps} == ALLOWED


@pytest.mark.parametrize(
    ("producer_id", "epoch", "code"),
    [
        (7, 3, None),
        (8, 3, ErrorCode.invalid_producer_id_mapping),
        (7, 2, ErrorCode.producer_fenced),
        (7, 4, ErrorCode.producer_fenced),
    ],
)
def test_requests_are_fenced_by_producer_id_and_epoch(
    producer_id: int, epoch: int, code: ErrorCode | None
) -> None:
    if code is None:
        meta().check_producer(producer_id, epoch)
        return
    with pytest.raises(TxnError) as refused:
        meta().check_producer(producer_id, epoch)
    assert refused.value.code == code


@pytest.mark.parametrize(
    ("state", "commit", "outcome"),
    [
        (S.ONGOING, True, S.PREPARE_COMMIT),
        (S.ONGOING, False, S.PREPARE_ABORT),
        (S.COMPLETE_COMMIT, True, "retry"),
        (S.COMPLETE_ABORT, False, "retry"),
        (S.COMPLETE_COMMIT, False, ErrorCode.invalid_txn_state),
        (S.COMPLETE_ABORT, True, ErrorCode.invalid_txn_state),
        (S.PREPARE_COMMIT, True, ErrorCode.concurrent_transactions),
        (S.PREPARE_ABORT, False, ErrorCode.concurrent_transactions),
        (S.PREPARE_COMMIT, False, ErrorCode.invalid_txn_state),
        (S.EMPTY, True, ErrorCode.invalid_txn_state),
        (S.EMPTY, False, ErrorCode.invalid_txn_state),
    ],
)
def test_end_txn_by_state(state: TxnState, commit: bool, outcome: TxnState | ErrorCode | str) -> None:
    m = meta(state)
    if isinstance(outcome, ErrorCode):
        with pytest.raises(TxnError) as refused:
            prepare_end(m, commit, 1)
        assert refused.value.code == outcome
    elif outcome == "retry":
        assert prepare_end(m, commit, 1) is False
        assert m.state is state
    else:
        assert prepare_end(m, commit, 1) is True
        assert m.state is outcome


def test_adding_partitions_while_completing_is_a_concurrent_transaction() -> None:
    for state in (S.PREPARE_COMMIT, S.PREPARE_ABORT):
        with pytest.raises(TxnError) as refused:
            add_partitions(meta(state), {("t", 0)}, 1)
        assert refused.value.code == ErrorCode.concurrent_transactions
    m = meta(S.COMPLETE_COMMIT)
    add_partitions(m, {("t", 0)}, 9)
    assert (m.state, m.partitions, m.start_ms) == (S.ONGOING, {("t", 0)}, 9)


class Harness:
    """A coordinator whose I/O is recorded: markers written and offsets committed, in order."""

    def __init__(self, path: Path, *, fail_markers: bool = False) -> None:
        self.now = 1_000
        self.markers: list[tuple[str, int, int, int, bool]] = []
        self.committed: list[tuple[str, Offsets]] = []
        self.fail_markers = fail_markers
        ids = itertools.count(100)
        self.coord = TransactionCoordinator(
            path,
            allocate_producer_id=lambda: next(ids),
            write_marker=self._marker,
            commit_offsets=self._commit,
            clock=lambda: self.now,
            max_timeout_ms=60_000,
        )

    def _marker(self, topic: str, index: int, pid: int, epoch: int, commit: bool) -> None:
        if self.fail_markers:
            raise OSError("disk gone")
        self.markers.append((topic, index, pid, epoch, commit))

    async def _commit(self, group: str, offsets: Offsets) -> None:
        self.committed.append((group, dict(offsets)))


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def test_commit_writes_markers_then_offsets_and_completes(tmp_path: Path) -> None:
    h = Harness(tmp_path / "txn.json")
    pid, epoch = run(h.coord.init_producer_id("tx", 10_000))
    assert (pid, epoch) == (100, 0)
    h.coord.add_partitions("tx", pid, epoch, {("t", 1), ("t", 0)})
    h.coord.add_offsets("tx", pid, epoch, "g")
    h.coord.txn_offset_commit("tx", pid, epoch, "g", {("t", 0): (42, -1, "m")})
    assert h.committed == [], "transactional offsets are invisible before the commit"
    run(h.coord.end_txn("tx", pid, epoch, commit=True))
    assert h.markers == [("t", 0, 100, 0, True), ("t", 1, 100, 0, True)]
    assert h.committed == [("g", {("t", 0): (42, -1, "m")})]
    m = h.coord.metadata("tx")
    assert m is not None and m.state is S.COMPLETE_COMMIT and not m.partitions and not m.pending_offsets
    # A retried EndTxn (lost response) succeeds without writing markers again.
    run(h.coord.end_txn("tx", pid, epoch, commit=True))
    assert len(h.markers) == 2


def test_abort_drops_pending_offsets(tmp_path: Path) -> None:
    h = Harness(tmp_path / "txn.json")
    pid, epoch = run(h.coord.init_producer_id("tx", 10_000))
    h.coord.add_offsets("tx", pid, epoch, "g")
    h.coord.txn_offset_commit("tx", pid, epoch, "g", {("t", 0): (5, -1, "")})
    run(h.coord.end_txn("tx", pid, epoch, commit=False))
    assert h.committed == []
    with pytest.raises(TxnError) as refused:
        h.coord.txn_offset_commit("tx", pid, epoch, "g", {("t", 0): (5, -1, "")})
    assert refused.value.code == ErrorCode.invalid_txn_state


def test_reinit_fences_the_old_producer_and_aborts_its_open_transaction(tmp_path: Path) -> None:
    h = Harness(tmp_path / "txn.json")
    pid, old_epoch = run(h.coord.init_producer_id("tx", 10_000))
    h.coord.add_partitions("tx", pid, old_epoch, {("t", 0)})
    new_pid, new_epoch = run(h.coord.init_producer_id("tx", 10_000))
    assert new_pid == pid and new_epoch == old_epoch + 2  # one bump to abort (fence), one for the new one
    assert h.markers == [("t", 0, pid, old_epoch + 1, False)], "the in-doubt transaction is aborted"
    for call in (
        lambda: h.coord.add_partitions("tx", pid, old_epoch, {("t", 0)}),
        lambda: run(h.coord.end_txn("tx", pid, old_epoch, commit=True)),
    ):
        with pytest.raises(TxnError) as refused:
            call()
        assert refused.value.code == ErrorCode.producer_fenced


def test_kip360_reinit_with_a_stale_epoch_is_fenced(tmp_path: Path) -> None:
    h = Harness(tmp_path / "txn.json")
    pid, e0 = run(h.coord.init_producer_id("tx", 10_000))
    _, e1 = run(h.coord.init_producer_id("tx", 10_000, pid, e0))
    assert e1 == e0 + 1
    assert run(h.coord.init_producer_id("tx", 10_000, pid, e0)) == (pid, e1), "a retry is answered again"
    run(h.coord.init_producer_id("tx", 10_000))  # another instance: epoch e1 + 1
    with pytest.raises(TxnError) as refused:
        run(h.coord.init_producer_id("tx", 10_000, pid, e0))
    assert refused.value.code == ErrorCode.producer_fenced


@pytest.mark.parametrize("timeout_ms", [0, -1, 60_001])
def test_transaction_timeout_is_bounded(tmp_path: Path, timeout_ms: int) -> None:
    h = Harness(tmp_path / "txn.json")
    with pytest.raises(TxnError) as refused:
        run(h.coord.init_producer_id("tx", timeout_ms))
    assert refused.value.code == ErrorCode.invalid_transaction_timeout


def test_timed_out_transaction_is_aborted_and_its_producer_fenced(tmp_path: Path) -> None:
    h = Harness(tmp_path / "txn.json")
    pid, epoch = run(h.coord.init_producer_id("tx", 5_000))
    h.coord.add_partitions("tx", pid, epoch, {("t", 0)})
    h.now += 5_000
    assert run(h.coord.abort_expired()) == []
    h.now += 1
    assert run(h.coord.abort_expired()) == ["tx"]
    assert h.markers == [("t", 0, pid, epoch + 1, False)]
    with pytest.raises(TxnError) as refused:
        h.coord.add_partitions("tx", pid, epoch, {("t", 0)})
    assert refused.value.code == ErrorCode.producer_fenced


def test_state_survives_a_restart_and_a_half_ended_transaction_completes(tmp_path: Path) -> None:
    path = tmp_path / "txn.json"
    h = Harness(path, fail_markers=True)
    pid, epoch = run(h.coord.init_producer_id("tx", 10_000))
    h.coord.add_partitions("tx", pid, epoch, {("t", 0)})
    h.coord.add_offsets("tx", pid, epoch, "g")
    h.coord.txn_offset_commit("tx", pid, epoch, "g", {("t", 0): (3, 1, "")})
    with pytest.raises(OSError):
        run(h.coord.end_txn("tx", pid, epoch, commit=True))
    again = Harness(path)
    m = again.coord.metadata("tx")
    assert m is not None and m.state is S.PREPARE_COMMIT and m.partitions == {("t", 0)}
    run(again.coord.recover())
    assert again.markers == [("t", 0, pid, epoch, True)]
    assert again.committed == [("g", {("t", 0): (3, 1, "")})]
    done = again.coord.metadata("tx")
    assert done is not None and done.state is S.COMPLETE_COMMIT


def test_unreadable_state_file_refuses_to_start(tmp_path: Path) -> None:
    path = tmp_path / "txn.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match="unreadable"):
        Harness(path)


def test_idle_transactional_ids_expire_but_open_transactions_do_not(tmp_path: Path) -> None:
    h = Harness(tmp_path / "txn.json")
    h.coord.id_expiration_ms = 1_000
    run(h.coord.init_producer_id("idle", 10_000))
    pid, epoch = run(h.coord.init_producer_id("busy", 10_000))
    h.coord.add_partitions("busy", pid, epoch, {("t", 0)})
    h.now += 1_001
    assert run(h.coord.remove_expired_ids()) == ["idle"]
    assert h.coord.metadata("idle") is None and h.coord.metadata("busy") is not None
    assert Harness(tmp_path / "txn.json").coord.metadata("idle") is None, "the removal is persisted"
    fresh_pid, fresh_epoch = run(h.coord.init_producer_id("idle", 10_000))
    assert (fresh_pid, fresh_epoch) != (pid, epoch) and fresh_epoch == 0


def test_retried_end_txn_finishes_an_end_whose_markers_failed(tmp_path: Path) -> None:
    h = Harness(tmp_path / "txn.json", fail_markers=True)
    pid, epoch = run(h.coord.init_producer_id("tx", 10_000))
    h.coord.add_partitions("tx", pid, epoch, {("t", 0)})
    with pytest.raises(OSError):
        run(h.coord.end_txn("tx", pid, epoch, commit=False))
    h.fail_markers = False
    run(h.coord.end_txn("tx", pid, epoch, commit=False))
    assert h.markers == [("t", 0, pid, epoch, False)]
    done = h.coord.metadata("tx")
    assert done is not None and done.state is S.COMPLETE_ABORT
