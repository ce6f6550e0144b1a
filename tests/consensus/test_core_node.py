"""RawNode API contract: input validation, Ready/advance protocol, restarts, flow control, quiescence."""

from __future__ import annotations

import random

import pytest
from streamraft_consensus.core.memory_storage import MemoryStorage
from streamraft_consensus.core.node import Config, ProposalDropped, RawNode
from streamraft_consensus.core.progress import ProgressState
from streamraft_consensus.core.types import ConfState, Entry, HardState, Message, MessageType, Role, Snapshot
from streamraft_consensus.sim.cluster import Cluster

MT = MessageType


def _node(i: int = 1) -> RawNode:
    return RawNode(Config(id=i), MemoryStorage.bootstrap(ConfState(voters=(1, 2, 3))), random.Random(i))


@pytest.mark.parametrize(
    ("msg", "why"),
    [
        (Message(MT.APPEND, 2, 3, 5), "delivered to node 1"),
        (Message(MT.APPEND, 1, 1, 5), "invalid sender"),
        (Message(MT.APPEND, 1, 2, 0), "carries no term"),
        (Message(MT.HEARTBEAT, 1, 2, 5, commit=-1), "negative"),
        (Message(MT.APPEND, 1, 2, 5, 1, 1, (Entry(5, 3),)), "breaks the sequence"),
        (Message(MT.APPEND, 1, 2, 5, 1, 1, (Entry(6, 2),)), "breaks the sequence"),
        (Message(MT.SNAPSHOT, 1, 2, 5, snapshot=Snapshot()), "no snapshot"),
        (Message(MT.VOTE, 1, 2, 5, entries=(Entry(5, 1),)), "must not carry entries"),
    ],
)
def test_step_rejects_malformed_input_without_touching_state(msg: Message, why: str) -> None:
    n = _node()
    before = n.status()
    with pytest.raises(ValueError, match=why):
        n.step(msg)
    assert n.status() == before
    assert not n.has_ready()


def test_config_is_validated() -> None:
    st = MemoryStorage.bootstrap(ConfState(voters=(1,)))
    with pytest.raises(ValueError, match="election_tick"):
        RawNode(Config(id=1, election_tick=1, heartbeat_tick=1), st, random.Random(0))
    with pytest.raises(ValueError, match="node id"):
        RawNode(Config(id=0), st, random.Random(0))
    with pytest.raises(ValueError, match="past commit"):
        RawNode(Config(id=1, applied=5), st, random.Random(0))


def test_vote_response_is_released_with_the_hard_state_that_records_it() -> None:
    n = _node(2)
    n.step(Message(MT.VOTE, 2, 1, 2, log_term=1, index=1))
    rd = n.ready()
    assert rd.hard_state == HardState(term=2, vote=1, commit=1)
    assert rd.must_sync
    assert [(m.type, m.reject) for m in rd.messages] == [(MT.VOTE_RESP, False)]
    # While that Ready is outstanding nothing else is handed out.
    n.step(Message(MT.HEARTBEAT, 2, 1, 2, commit=1))
    assert not n.has_ready()
    with pytest.raises(RuntimeError):
        n.ready()
    n.advance(rd)
    rd2 = n.ready()
    assert [m.type for m in rd2.messages] == [MT.HEARTBEAT_RESP]
    assert rd2.hard_state is None and not rd2.must_sync
    n.advance(rd2)
    with pytest.raises(RuntimeError):
        n.advance(rd2)


def test_election_timeout_is_randomized_from_the_injected_rand() -> None:
    def ticks_to_campaign(seed: int) -> int:
        n = RawNode(Config(id=1), MemoryStorage.bootstrap(ConfState(voters=(1, 2, 3))), random.Random(seed))
        for t in range(1, 100):
            n.tick()
            if n.status().soft_state.role != Role.FOLLOWER:
                return t
        raise AssertionError("never campaigned")

    timeouts = {ticks_to_campaign(s) for s in range(30)}
    assert min(timeouts) >= 10 and max(timeouts) < 20 and len(timeouts) > 3
    assert ticks_to_campaign(7) == ticks_to_campaign(7)


def test_restart_recovers_term_vote_commit_and_applied() -> None:
    c = Cluster([1, 2, 3])
    c.elect(1)
    for i in range(4):
        c.nodes[1].propose(b"%d" % i)
    c.stabilize()
    c.tick_all(1)
    st = c.storages[2]
    hs = st.initial_state()[0]
    n = RawNode(Config(id=2, applied=hs.commit), st, random.Random(0))
    s = n.status()
    assert s.hard_state == hs and s.applied == hs.commit and s.last_index == st.last_index()
    assert not n.ready().committed_entries
    n2 = RawNode(Config(id=2), st, random.Random(0))
    rd = n2.ready()
    assert [e.data for e in rd.committed_entries if e.data] == [b"0", b"1", b"2", b"3"]


def test_max_size_per_msg_and_inflight_window_bound_appends() -> None:
    c = Cluster([1, 2], config=lambda i: Config(id=i, max_size_per_msg=1000, max_inflight_msgs=2))
    c.elect(1)
    c.take()
    for _ in range(10):
        c.nodes[1].propose(b"p" * 400)
        c.process(1)
    appends = [m for m in c.take(to=2) if m.type == MT.APPEND]
    assert 1 <= len(appends) <= 2  # the window holds at most two unacknowledged appends
    assert all(sum(len(e.data) + 24 for e in m.entries) <= 1000 or len(m.entries) == 1 for m in appends)
    c.deliver(appends)
    c.stabilize()
    assert c.data(2) == [b"p" * 400] * 10


def test_max_uncommitted_bytes_drops_proposals() -> None:
    c = Cluster([1, 2, 3], config=lambda i: Config(id=i, max_uncommitted_bytes=1000))
    c.elect(1)
    c.isolate(1)
    c.nodes[1].propose(b"a" * 600)
    with pytest.raises(ProposalDropped, match="uncommitted"):
        c.nodes[1].propose(b"b" * 600)
    c.heal()
    c.tick_all(2)
    c.nodes[1].propose(b"b" * 600)


def test_quiesce_and_wake() -> None:
    c = Cluster([1, 2, 3])
    c.elect(1)
    c.nodes[1].propose(b"x")
    assert not c.nodes[1].can_quiesce()
    c.stabilize()
    c.tick_all(1)
    assert c.nodes[1].can_quiesce()
    assert not c.nodes[2].can_quiesce()
    # A long pause with no ticks, then wake: nobody campaigns or steps down right away.
    for n in c.nodes.values():
        n.wake()
    c.tick_all(9)
    assert c.leader() == 1 and c.nodes[1].status().hard_state.term == c.nodes[2].status().hard_state.term
    c.nodes[1].read_index(b"r")
    assert not c.nodes[1].can_quiesce()


def test_status_reports_progress_for_the_leader_only() -> None:
    c = Cluster([1, 2, 3])
    c.elect(1)
    c.tick_all(1)
    st = c.nodes[1].status()
    assert set(st.progress) == {1, 2, 3}
    assert st.progress[2].state == ProgressState.REPLICATE and st.progress[2].match == st.last_index
    assert c.nodes[2].status().progress == {}
    assert st.conf_state == ConfState(voters=(1, 2, 3))
