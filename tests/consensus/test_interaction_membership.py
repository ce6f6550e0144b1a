"""Scripted scenarios: learners, promotion, removal, conf change rules, snapshot catch-up, read-index."""

from __future__ import annotations

import pytest
from streamraft_consensus.core.node import NotLeader, ProposalDropped
from streamraft_consensus.core.progress import ProgressState
from streamraft_consensus.core.types import ConfChange, ConfChangeType, MessageType, Role
from streamraft_consensus.sim.cluster import Cluster

ADD_VOTER, ADD_LEARNER, REMOVE = ConfChangeType.ADD_VOTER, ConfChangeType.ADD_LEARNER, ConfChangeType.REMOVE


def _cc(t: ConfChangeType, node: int) -> ConfChange:
    return ConfChange(((t, node),))


def _three_with_data(n: int = 5) -> Cluster:
    c = Cluster([1, 2, 3])
    c.elect(1)
    for i in range(n):
        c.nodes[1].propose(b"d%d" % i)
    c.stabilize()
    return c


def _elect_without_committing(c: Cluster, target: int) -> None:
    """Hand leadership to ``target`` and stop before its first entry of the new term is replicated."""
    leader = c.leader()
    assert leader is not None
    c.nodes[leader].transfer_leader(target)
    for t in (MessageType.TIMEOUT_NOW, MessageType.VOTE, MessageType.VOTE_RESP):
        c.deliver(c.take(mtype=t))


def test_learner_catches_up_by_snapshot_and_is_promoted() -> None:
    c = _three_with_data()
    c.add_fresh(4)
    c.nodes[1].propose_conf_change(_cc(ADD_LEARNER, 4))
    c.stabilize()
    c.tick_all(2)
    st = c.nodes[4].status()
    assert st.conf_state.learners == (4,)
    assert st.hard_state.commit == c.nodes[1].status().hard_state.commit
    # A learner never campaigns and does not count towards the quorum.
    for _ in range(50):
        c.tick(4)
        c.stabilize()
    assert c.nodes[4].status().soft_state.role == Role.FOLLOWER
    assert c.leader() == 1
    c.nodes[1].propose_conf_change(_cc(ADD_VOTER, 4))
    c.stabilize()
    c.tick_all(2)
    assert c.nodes[1].status().conf_state.voters == (1, 2, 3, 4)
    assert c.nodes[4].status().conf_state.voters == (1, 2, 3, 4)
    # With four voters, two nodes are no longer a quorum.
    c.isolate(3)
    c.isolate(4)
    c.nodes[1].propose(b"needs three")
    c.stabilize()
    assert b"needs three" not in c.data(1)
    c.heal()
    c.tick_all(2)
    assert c.data(4)[-1:] == [b"needs three"]


def test_one_conf_change_at_a_time() -> None:
    c = _three_with_data(0)
    c.add_fresh(4)
    c.nodes[1].propose_conf_change(_cc(ADD_LEARNER, 4))
    with pytest.raises(ProposalDropped):
        c.nodes[1].propose_conf_change(_cc(ADD_VOTER, 4))
    c.stabilize()
    c.nodes[1].propose_conf_change(_cc(ADD_VOTER, 4))  # the first one is applied now
    with pytest.raises(ValueError, match="one membership change"):
        c.nodes[1].propose_conf_change(ConfChange(((REMOVE, 2), (REMOVE, 3))))
    c.stabilize()
    with pytest.raises(ValueError, match="already a voter"):
        c.nodes[1].propose_conf_change(_cc(ADD_VOTER, 2))
    with pytest.raises(ValueError, match="not a member"):
        c.nodes[1].propose_conf_change(_cc(REMOVE, 9))
    with pytest.raises(NotLeader):
        c.nodes[2].propose_conf_change(_cc(REMOVE, 3))


def test_new_leader_cannot_change_membership_before_its_first_entry_applies() -> None:
    c = _three_with_data(0)
    _elect_without_committing(c, 2)
    assert c.nodes[2].status().soft_state.role == Role.LEADER
    with pytest.raises(ProposalDropped):
        c.nodes[2].propose_conf_change(_cc(REMOVE, 3))
    c.stabilize()
    c.nodes[2].propose_conf_change(_cc(REMOVE, 3))


def test_removing_the_leader_makes_it_step_down_and_the_rest_elect() -> None:
    c = _three_with_data(2)
    c.nodes[1].propose_conf_change(_cc(REMOVE, 1))
    c.stabilize()
    c.tick_all(2)
    assert c.nodes[1].status().soft_state.role == Role.FOLLOWER
    assert c.nodes[2].status().conf_state.voters == (2, 3)
    for _ in range(40):
        c.tick_all(1)
        if c.leader() in (2, 3):
            break
    new = c.leader()
    assert new in (2, 3)
    c.nodes[new].propose(b"after removal")
    c.stabilize()
    c.tick_all(2)
    assert c.data(2)[-1] == c.data(3)[-1] == b"after removal"
    # The removed node never campaigns again.
    for _ in range(40):
        c.tick(1)
        c.stabilize()
    assert c.nodes[1].status().soft_state.role == Role.FOLLOWER
    with pytest.raises(ValueError, match="last voter"):
        c2 = Cluster([1])
        c2.elect(1)
        c2.nodes[1].propose_conf_change(_cc(REMOVE, 1))


def test_lagging_follower_catches_up_by_snapshot() -> None:
    c = _three_with_data(0)
    c.isolate(3)
    for i in range(20):
        c.nodes[1].propose(b"s%d" % i)
    c.stabilize()
    compacted = c.compact(1)
    assert c.storages[1].first_index() == compacted + 1
    c.heal()
    sent: list[MessageType] = []
    for _ in range(5):
        c.tick(1)
        msgs = c.take()
        sent += [m.type for m in msgs if m.to == 3]
        c.deliver(msgs)
        if MessageType.SNAPSHOT in sent:
            break
    assert MessageType.SNAPSHOT in sent
    assert c.nodes[1].status().progress[3].state == ProgressState.SNAPSHOT
    c.nodes[1].report_snapshot(3, True)
    c.tick_all(3)
    assert c.storages[3].snapshot().meta.index == compacted
    assert c.nodes[3].status().hard_state.commit == c.nodes[1].status().hard_state.commit
    assert c.nodes[1].status().progress[3].state == ProgressState.REPLICATE


def test_failed_snapshot_is_retried() -> None:
    c = _three_with_data(0)
    c.isolate(3)
    for i in range(5):
        c.nodes[1].propose(b"s%d" % i)
    c.stabilize()
    c.compact(1)
    c.heal()
    c.filter = lambda m: m.type != MessageType.SNAPSHOT
    for _ in range(3):
        c.tick(1)
        c.stabilize()
    c.nodes[1].report_snapshot(3, False)
    assert c.nodes[1].status().progress[3].state == ProgressState.PROBE
    c.filter = lambda m: True
    for _ in range(6):
        c.tick_all(1)
        if c.nodes[1].status().progress[3].state == ProgressState.SNAPSHOT:
            c.nodes[1].report_snapshot(3, True)
    assert c.nodes[3].status().hard_state.commit == c.nodes[1].status().hard_state.commit


def test_read_index_on_leader_and_follower() -> None:
    c = _three_with_data(3)
    commit = c.nodes[1].status().hard_state.commit
    c.nodes[1].read_index(b"r1")
    c.process(1)
    assert c.read_states[1] == []  # must wait for a heartbeat round
    c.stabilize()
    assert [(rs.index, rs.context) for rs in c.read_states[1]] == [(commit, b"r1")]
    c.nodes[2].read_index(b"r2")
    c.stabilize()
    assert [(rs.index, rs.context) for rs in c.read_states[2]] == [(commit, b"r2")]


def test_read_index_needs_a_quorum() -> None:
    c = _three_with_data(1)
    c.isolate(1)
    c.nodes[1].read_index(b"r")
    c.stabilize()
    assert c.read_states[1] == []
    with pytest.raises(NotLeader):
        Cluster([1, 2, 3]).nodes[2].read_index(b"no leader")


def test_new_leader_defers_reads_until_it_commits_in_its_term() -> None:
    c = _three_with_data(2)
    _elect_without_committing(c, 2)
    assert c.nodes[2].status().soft_state.role == Role.LEADER
    c.nodes[2].read_index(b"early")
    c.process(2)
    assert c.read_states[2] == []
    c.stabilize()
    st = c.nodes[2].status()
    assert [(rs.index, rs.context) for rs in c.read_states[2]] == [(st.hard_state.commit, b"early")]


def test_configuration_takes_effect_when_appended_and_reverts_when_truncated() -> None:
    c = _three_with_data(1)
    c.add_fresh(4)
    c.isolate(1)
    c.nodes[1].propose_conf_change(_cc(ADD_LEARNER, 4))
    c.stabilize()
    # The leader uses the new configuration as soon as the entry is in its log, before it commits.
    assert c.nodes[1].status().conf_state.learners == (4,)
    assert c.nodes[1].raft.applied_conf.learners == ()
    for _ in range(40):
        c.tick(2)
        c.tick(3)
        c.stabilize()
        if c.leader() in (2, 3):
            break
    new = c.leader()
    assert new in (2, 3)
    c.nodes[new].propose(b"overwrites")
    c.stabilize()
    c.heal()
    c.tick_all(3)
    # The uncommitted change was truncated away on node 1, and with it the configuration it introduced.
    assert c.nodes[1].status().soft_state.leader == new
    assert c.nodes[1].status().conf_state.learners == ()
    assert c.data(1)[-1] == b"overwrites"


def test_follower_adopts_configuration_from_its_log_before_commit() -> None:
    c = _three_with_data(0)
    c.add_fresh(4)
    c.nodes[1].propose_conf_change(_cc(ADD_VOTER, 4))
    c.deliver(c.take(to=2, mtype=MessageType.APPEND))
    assert c.nodes[2].status().conf_state.voters == (1, 2, 3, 4)
    assert c.nodes[2].raft.applied_conf.voters == (1, 2, 3)
    c.stabilize()
    c.tick_all(2)
    assert c.nodes[2].raft.applied_conf.voters == (1, 2, 3, 4)
