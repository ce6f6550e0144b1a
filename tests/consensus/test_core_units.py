"""Unit tests of the core's building blocks: MemoryStorage, RaftLog, Progress, quorum arithmetic."""

from __future__ import annotations

import pytest
from streamraft_consensus.core.log import RaftLog
from streamraft_consensus.core.memory_storage import MemoryStorage, SnapshotOutOfDate
from streamraft_consensus.core.progress import Inflights, Progress, ProgressState
from streamraft_consensus.core.quorum import JointConfig, MajorityConfig, VoteResult
from streamraft_consensus.core.storage import Compacted, Unavailable
from streamraft_consensus.core.types import ConfState, Entry, Snapshot, SnapshotMeta


def _ents(*terms: int, start: int = 1) -> list[Entry]:
    return [Entry(t, start + i, data=b"x") for i, t in enumerate(terms)]


# --- MemoryStorage ------------------------------------------------------------------------------------
def test_storage_append_truncates_conflicting_suffix() -> None:
    st = MemoryStorage()
    st.append(_ents(1, 1, 2))
    st.append([Entry(3, 2)])
    assert [e.term for e in st.entries(1, 3)] == [1, 3]
    assert st.last_index() == 2
    with pytest.raises(ValueError, match="missing log entries"):
        st.append([Entry(3, 9)])


def test_storage_compact_snapshot_and_bounds() -> None:
    st = MemoryStorage()
    st.append(_ents(1, 1, 2, 2, 3))
    snap = st.create_snapshot(3, ConfState(voters=(1,)), b"state")
    assert snap.meta.term == 2
    st.compact(3)
    assert st.first_index() == 4 and st.term(3) == 2
    with pytest.raises(Compacted):
        st.entries(3, 5)
    with pytest.raises(Unavailable):
        st.term(6)
    with pytest.raises(SnapshotOutOfDate):
        st.apply_snapshot(Snapshot(SnapshotMeta(2, 1)))
    st.apply_snapshot(Snapshot(SnapshotMeta(10, 4, ConfState(voters=(1, 2)))))
    assert (st.first_index(), st.last_index(), st.term(10)) == (11, 10, 4)
    assert st.initial_state()[1].voters == (1, 2)


def test_storage_entries_respect_max_bytes_but_return_one() -> None:
    st = MemoryStorage()
    st.append([Entry(1, i, data=b"z" * 100) for i in range(1, 6)])
    assert len(st.entries(1, 6, max_bytes=1)) == 1
    assert len(st.entries(1, 6, max_bytes=250)) == 2
    assert len(st.entries(1, 6)) == 5


# --- RaftLog ------------------------------------------------------------------------------------------
def _log(stored: list[Entry]) -> RaftLog:
    st = MemoryStorage()
    st.append(stored)
    return RaftLog(st)


def test_log_maybe_append_matches_and_truncates_unstable() -> None:
    log = _log(_ents(1, 1))
    assert log.maybe_append(2, 1, 0, _ents(2, 2, start=3)) == 4
    assert log.maybe_append(9, 1, 0, []) is None  # no entry at 9
    assert log.maybe_append(2, 2, 0, []) is None  # term mismatch at 2
    # A new leader overwrites the unstable entry 4.
    assert log.maybe_append(3, 2, 3, [Entry(3, 4)]) == 4
    assert [log.term(i) for i in range(1, 5)] == [1, 1, 2, 3]
    assert log.committed == 3


def test_log_commit_invariants() -> None:
    log = _log(_ents(1, 1, 1))
    log.commit_to(2)
    log.commit_to(1)  # never decreases
    assert log.committed == 2
    with pytest.raises(AssertionError, match="past last index"):
        log.commit_to(9)
    with pytest.raises(AssertionError, match="conflicts with committed"):
        log.maybe_append(0, 0, 0, [Entry(5, 1)])


def test_log_stable_to_ignores_overwritten_entries() -> None:
    log = _log([])
    log.append(_ents(1, 1, 1))
    log.append([Entry(2, 3)])  # overwrite 3 after a Ready handed out (1,3)
    log.stable_to(3, 1)
    assert len(log.unstable) == 3
    log.stable_to(2, 1)
    assert [e.index for e in log.unstable] == [3] and log.unstable_offset == 3


def test_log_slice_spans_storage_and_unstable_with_limit() -> None:
    log = _log([Entry(1, i, data=b"a" * 50) for i in range(1, 4)])
    log.append([Entry(1, i, data=b"b" * 50) for i in range(4, 7)])
    assert [e.index for e in log.slice(2, 6)] == [2, 3, 4, 5]
    assert len(log.slice(2, 6, max_bytes=160)) == 2
    assert len(log.slice(2, 6, max_bytes=1)) == 1


def test_log_find_conflict_by_term() -> None:
    log = _log(_ents(1, 1, 2, 2, 4, 4))
    assert log.find_conflict_by_term(6, 3) == (4, 2)
    assert log.find_conflict_by_term(6, 4) == (6, 4)
    assert log.find_conflict_by_term(10, 1) == (2, 1)
    assert log.find_conflict_by_term(6, 0) == (0, 0)


def test_log_up_to_date_and_restore() -> None:
    log = _log(_ents(1, 2))
    assert log.is_up_to_date(1, 3) and log.is_up_to_date(2, 2) and not log.is_up_to_date(5, 1)
    log.restore(Snapshot(SnapshotMeta(10, 5)))
    assert (log.first_index(), log.last_index(), log.committed, log.term(10)) == (11, 10, 10, 5)
    assert log.term(4) is None and not log.has_next_committed()


# --- Progress -----------------------------------------------------------------------------------------
def test_progress_probe_then_replicate_window() -> None:
    pr = Progress(next_index=10, max_inflight=2)
    assert pr.maybe_decr_to(9, 4)
    assert pr.next == 5 and not pr.is_paused()
    assert not pr.maybe_decr_to(7, 3)  # stale rejection: next-1 != 7
    pr.probe_sent = True
    assert pr.is_paused()
    assert pr.maybe_update(5)
    pr.become_replicate()
    assert pr.next == 6
    pr.inflights.add(7)
    pr.inflights.add(9)
    assert pr.is_paused()
    pr.inflights.free_le(7)
    assert not pr.is_paused()
    assert not pr.maybe_decr_to(4, 0)  # replicate: rejection below match is stale
    assert pr.maybe_decr_to(8, 0) and pr.next == 6


def test_progress_snapshot_to_probe() -> None:
    pr = Progress(next_index=3, max_inflight=4)
    pr.become_snapshot(20)
    assert pr.is_paused() and pr.state == ProgressState.SNAPSHOT
    pr.become_probe()
    assert pr.state.name == "PROBE" and pr.next == 21


def test_inflights_overflow_is_an_invariant() -> None:
    inf = Inflights(1)
    inf.add(1)
    with pytest.raises(AssertionError):
        inf.add(2)
    inf.free_first_one()
    assert inf.count() == 0


# --- quorum -------------------------------------------------------------------------------------------
def test_majority_committed_index() -> None:
    match = {1: 5, 2: 3, 3: 9, 4: 1, 5: 7}
    assert MajorityConfig([1, 2, 3]).committed_index(match.__getitem__) == 5
    assert MajorityConfig([1, 2, 3, 4]).committed_index(match.__getitem__) == 3
    assert MajorityConfig([1, 2, 3, 4, 5]).committed_index(match.__getitem__) == 5
    assert MajorityConfig([4]).committed_index(match.__getitem__) == 1


def test_majority_vote_result() -> None:
    cfg = MajorityConfig([1, 2, 3])
    assert cfg.vote_result({1: True}) == VoteResult.PENDING
    assert cfg.vote_result({1: True, 2: True}) == VoteResult.WON
    assert cfg.vote_result({1: True, 2: False, 3: False}) == VoteResult.LOST
    assert cfg.vote_result({9: True, 8: True}) == VoteResult.PENDING  # non-voters do not count
    assert MajorityConfig([1, 2, 3, 4]).vote_result({1: True, 2: True}) == VoteResult.PENDING


def test_joint_config_needs_both_majorities() -> None:
    j = JointConfig([1, 2, 3], [3, 4, 5])
    match = {1: 9, 2: 9, 3: 4, 4: 2, 5: 1}
    assert j.committed_index(match.__getitem__) == 2
    assert j.vote_result({1: True, 2: True}) == VoteResult.PENDING
    assert j.vote_result({1: True, 2: True, 3: True, 4: True}) == VoteResult.WON
    assert j.vote_result({4: False, 5: False}) == VoteResult.LOST
    assert JointConfig([1, 2, 3]).committed_index(match.__getitem__) == 9
