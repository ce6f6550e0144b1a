"""Scripted scenarios: a voter whose disk was wiped rejoins recovering (no votes, acks not counted), is
demoted to learner, leaves recovering once confirmed and caught up, and is promoted back."""

from __future__ import annotations

import pytest
from streamraft_consensus.core.config import Config
from streamraft_consensus.core.memory_storage import MemoryStorage
from streamraft_consensus.core.types import ConfChange, ConfChangeType, MessageType, Role
from streamraft_consensus.sim.cluster import Cluster

ADD_VOTER, ADD_LEARNER = ConfChangeType.ADD_VOTER, ConfChangeType.ADD_LEARNER


def _cc(t: ConfChangeType, node: int) -> ConfChange:
    return ConfChange(((t, node),))


def _committed_without_3() -> Cluster:
    """Leader 1; entries committed by 1 and 2 only (3 cut off the whole time)."""
    c = Cluster([1, 2, 3])
    c.elect(1)
    c.isolate(3)
    for i in range(3):
        c.nodes[1].propose(b"d%d" % i)
    c.stabilize()
    assert c.data(1) == c.data(2) == [b"d0", b"d1", b"d2"]
    assert c.data(3) == []
    return c


def _wipe(c: Cluster, node: int, recovering: bool) -> None:
    """``node`` restarts on an empty disk: the bootstrap configuration and nothing else."""
    c.make_config = lambda i: Config(id=i, recovering=recovering and i == node)
    c.applied[node] = []
    c.add(node, MemoryStorage.bootstrap(c.conf))


@pytest.mark.parametrize("recovering", [True, False])
def test_wiped_voter_cannot_elect_a_leader_missing_committed_entries(recovering: bool) -> None:
    c = _committed_without_3()
    _wipe(c, 2, recovering)
    c.isolate(1)  # the only intact copy of the committed entries goes away
    c.cut -= {(2, 3), (3, 2)}
    for _ in range(60):
        c.tick(3)
        c.tick(2)
        c.stabilize()
    roles = {n: c.nodes[n].status().soft_state.role for n in (2, 3)}
    if recovering:
        assert Role.LEADER not in roles.values(), "a stale node was elected with a blank node's vote"
    else:
        # The hazard itself (the test would pass vacuously if it could not happen): node 3 wins with the
        # blank vote and the committed entries are gone from the new leader's log.
        assert roles[3] == Role.LEADER
        assert c.data(3) == []


def test_recovering_acks_do_not_count_until_demoted_caught_up_and_promoted() -> None:
    c = _committed_without_3()
    _wipe(c, 2, recovering=True)
    c.nodes[1].propose(b"needs a real quorum")
    for _ in range(5):
        c.tick(1)
        c.stabilize()
    # 2 holds the entry now (it was replicated to it) but its acknowledgement is not counted.
    assert b"needs a real quorum" not in c.data(1)
    assert c.nodes[1].raft.prs[2].recovering
    assert not c.nodes[2].raft.promotable()
    c.heal()
    c.tick_all(3)
    assert c.data(1)[-1] == b"needs a real quorum"
    # Demote: committed by 1 and 3 alone. 2 then hears it is a confirmed learner and leaves recovery.
    c.nodes[1].propose_conf_change(_cc(ADD_LEARNER, 2))
    c.tick_all(3)
    assert c.nodes[1].status().conf_state.learners == (2,)
    assert not c.nodes[2].raft.recovering
    assert not c.nodes[1].raft.prs[2].recovering
    c.nodes[1].propose_conf_change(_cc(ADD_VOTER, 2))
    c.tick_all(3)
    assert c.nodes[2].status().conf_state.voters == (1, 2, 3)
    # A voter again with the whole log: it and 3 elect a leader holding every committed entry.
    c.isolate(1)
    for _ in range(60):
        c.tick(2)
        c.tick(3)
        c.stabilize()
    leaders = [n for n in (2, 3) if c.nodes[n].status().soft_state.role == Role.LEADER]
    assert len(leaders) == 1
    leader = leaders[0]
    assert c.data(leader)[:4] == [b"d0", b"d1", b"d2", b"needs a real quorum"]


def test_recovering_node_never_grants_a_vote_and_pokes_a_silent_group() -> None:
    c = Cluster([1, 2, 3])
    c.elect(1)
    _wipe(c, 3, recovering=True)
    c.isolate(1)
    c.tick(2, 30)
    votes = [m for m in c.take(mtype=MessageType.PRE_VOTE_RESP) if m.frm == 3]
    assert all(m.reject for m in votes)
    # Silent for an election timeout, the recovering node pre-votes (waking quiesced groups elsewhere)
    # but never becomes a candidate.
    c.tick(3, 30)
    pokes = c.take(mtype=MessageType.PRE_VOTE)
    assert any(m.frm == 3 for m in pokes)
    assert c.nodes[3].status().soft_state.role == Role.FOLLOWER
