"""Scripted scenarios (etcd-raft interaction style): pre-vote, check-quorum, leadership transfer."""

from __future__ import annotations

import pytest
from streamraft_consensus.core.node import Config, NotLeader, ProposalDropped
from streamraft_consensus.core.types import MessageType, Role
from streamraft_consensus.sim.cluster import Cluster


def _term(c: Cluster, i: int) -> int:
    return c.nodes[i].status().hard_state.term


def _role(c: Cluster, i: int) -> Role:
    return c.nodes[i].status().soft_state.role


def test_single_node_elects_itself_and_commits() -> None:
    c = Cluster([1])
    c.elect(1)
    c.nodes[1].propose(b"a")
    c.stabilize()
    assert c.data(1) == [b"a"]


def test_election_needs_a_majority() -> None:
    c = Cluster([1, 2, 3])
    c.isolate(1)
    c.nodes[1].campaign()
    c.stabilize()
    assert _role(c, 1) == Role.PRE_CANDIDATE
    assert _term(c, 1) == 1  # pre-vote lost: the term did not move


@pytest.mark.parametrize("pre_vote", [True, False])
def test_rejoining_partitioned_node_disrupts_only_without_pre_vote(pre_vote: bool) -> None:
    c = Cluster([1, 2, 3], config=lambda i: Config(id=i, pre_vote=pre_vote, check_quorum=False))
    c.elect(1)
    term = _term(c, 1)
    c.isolate(3)
    for _ in range(50):
        c.tick(3)
        c.stabilize()
    c.heal()
    c.tick_all(25)  # longer than node 3's randomized election timeout
    if pre_vote:
        assert _term(c, 3) == term
        assert c.leader() == 1 and _term(c, 1) == term
    else:
        assert _term(c, 3) > term
        assert _term(c, 1) > term  # the old leader was deposed by the rejoining node's higher term


def test_check_quorum_leader_steps_down_and_never_acknowledges() -> None:
    c = Cluster([1, 2, 3])
    c.elect(1)
    c.isolate(1)
    c.nodes[1].propose(b"lost")
    # recent_active is sampled once per election timeout, so stepping down takes one to two timeouts.
    for _ in range(20):
        c.tick(1)
        c.stabilize()
    assert _role(c, 1) == Role.FOLLOWER
    # Majority side elects a new leader and carries on.
    for _ in range(40):
        c.tick(2)
        c.tick(3)
        c.stabilize()
        if c.leader() in (2, 3):
            break
    new = c.leader()
    assert new in (2, 3)
    c.nodes[new].propose(b"kept")
    c.stabilize()
    c.heal()
    c.tick_all(3)
    for i in (1, 2, 3):
        assert b"lost" not in c.data(i)
        assert c.data(i) == [b"kept"]


def test_follower_in_lease_ignores_vote_from_disruptive_node() -> None:
    c = Cluster([1, 2, 3], config=lambda i: Config(id=i, pre_vote=False))
    c.elect(1)
    term = _term(c, 1)
    c.isolate(3)
    for _ in range(30):
        c.tick(3)
        c.stabilize()
    assert _term(c, 3) > term
    c.heal()
    votes = c.take(mtype=MessageType.VOTE)
    c.deliver(votes)
    c.nodes[3].campaign()
    c.deliver(c.take(to=2, mtype=MessageType.VOTE))
    assert _term(c, 2) == term  # node 2 heard from leader 1 recently: it ignores the higher term
    assert c.leader() == 1


def test_transfer_to_up_to_date_follower() -> None:
    c = Cluster([1, 2, 3])
    c.elect(1)
    c.nodes[1].propose(b"x")
    c.stabilize()
    term = _term(c, 1)
    c.nodes[1].transfer_leader(2)
    c.stabilize()
    assert c.leader() == 2 and _term(c, 2) == term + 1
    assert _role(c, 1) == Role.FOLLOWER


def test_transfer_catches_a_lagging_target_up_first() -> None:
    c = Cluster([1, 2, 3])
    c.elect(1)
    c.isolate(3)
    for i in range(5):
        c.nodes[1].propose(b"p%d" % i)
    c.stabilize()
    c.heal()
    c.nodes[1].transfer_leader(3)
    with pytest.raises(ProposalDropped):
        c.nodes[1].propose(b"during transfer")
    c.stabilize()
    assert c.leader() == 3
    assert c.data(3) == [b"p%d" % i for i in range(5)]


def test_transfer_aborts_after_an_election_timeout() -> None:
    c = Cluster([1, 2, 3])
    c.elect(1)
    c.isolate(3)
    c.nodes[1].transfer_leader(3)
    assert c.nodes[1].status().lead_transferee == 3
    for _ in range(10):
        c.tick(1)
        c.stabilize()
    assert c.nodes[1].status().lead_transferee == 0
    assert c.leader() == 1
    c.nodes[1].propose(b"after abort")


def test_transfer_and_propose_on_follower_raise_not_leader() -> None:
    c = Cluster([1, 2, 3])
    c.elect(1)
    with pytest.raises(NotLeader) as e:
        c.nodes[2].propose(b"x")
    assert e.value.leader_hint == 1
    with pytest.raises(NotLeader):
        c.nodes[2].transfer_leader(3)


def test_leader_commits_an_old_term_entry_only_with_a_current_term_entry() -> None:
    """Raft's Figure 8 rule: replicas of a previous-term entry on a majority do not commit it."""
    c = Cluster(
        [1, 2, 3], config=lambda i: Config(id=i, check_quorum=False, max_size_per_msg=1, max_inflight_msgs=1)
    )
    c.elect(1)
    c.isolate(1)
    _, old_index = c.nodes[1].propose(b"old")
    c.stabilize()
    c.heal()
    c.nodes[1].raft.become_follower(_term(c, 1), 0)  # node 1 loses leadership without losing its log
    c.nodes[1].campaign()
    for t in (MessageType.PRE_VOTE, MessageType.PRE_VOTE_RESP, MessageType.VOTE, MessageType.VOTE_RESP):
        c.deliver(c.take(mtype=t))
    leader = c.nodes[1].raft
    assert leader.role == Role.LEADER and leader.log.term(old_index) < leader.term
    saw_majority_of_old = False
    for _ in range(50):
        msgs = c.take()
        if not msgs:
            break
        c.deliver(msgs)
        holders = sum(1 for pr in leader.prs.values() if pr.match >= old_index)
        if leader.log.committed < old_index + 1:
            # Until this term's own entry is on a majority, the old entry must stay uncommitted.
            assert leader.log.committed < old_index
            saw_majority_of_old |= holders >= 2
    assert saw_majority_of_old, "the scenario never put the old entry alone on a majority"
    assert leader.log.committed == old_index + 1
    c.tick_all(2)
    assert all(c.data(i) == [b"old"] for i in (1, 2, 3))
