"""Messages from nodes outside a group's configuration: dropped before their term is looked at.

Regression for forged Raft traffic: one heartbeat claiming term +1000 from a node that is not a member
used to raise every replica's term (the follower adopted it and told the leader); a PROPOSE from any node
was appended by the leader."""

from __future__ import annotations

from streamraft_consensus.core.types import Entry, EntryType, Message, MessageType, Role
from streamraft_consensus.sim.cluster import Cluster

OUTSIDER = 99
HUGE = 1_000


def _term(c: Cluster, i: int) -> int:
    return c.nodes[i].status().hard_state.term


def _role(c: Cluster, i: int) -> Role:
    return c.nodes[i].status().soft_state.role


def _elected() -> tuple[Cluster, int]:
    c = Cluster([1, 2, 3])
    c.elect(1)
    c.nodes[1].propose(b"before")
    c.stabilize()
    return c, _term(c, 1)


def test_forged_leader_traffic_from_an_outsider_changes_no_term() -> None:
    c, term = _elected()
    forged = [
        Message(MessageType.HEARTBEAT, 2, OUTSIDER, term + HUGE, commit=0),
        Message(MessageType.APPEND, 3, OUTSIDER, term + HUGE, log_term=0, index=0),
        Message(MessageType.HEARTBEAT, 3, OUTSIDER, term + HUGE, commit=0),
    ]
    c.deliver(forged)
    c.stabilize()
    assert [_term(c, i) for i in (1, 2, 3)] == [term, term, term]
    assert c.leader() == 1 and _role(c, 2) == _role(c, 3) == Role.FOLLOWER
    assert c.nodes[2].dropped_from_non_members + c.nodes[3].dropped_from_non_members == len(forged)
    # The group still works in its own term.
    c.nodes[1].propose(b"after")
    c.stabilize()
    assert c.data(2) == c.data(3) == [b"before", b"after"]


def test_forged_votes_and_responses_to_the_leader_change_no_term() -> None:
    c, term = _elected()
    c.deliver(
        [
            Message(MessageType.VOTE, 1, OUTSIDER, term + HUGE, log_term=term + HUGE, index=10**6),
            Message(MessageType.PRE_VOTE, 2, OUTSIDER, term + HUGE, log_term=term + HUGE, index=10**6),
            Message(MessageType.APPEND_RESP, 1, OUTSIDER, term + HUGE, index=5),
            Message(MessageType.HEARTBEAT_RESP, 1, OUTSIDER, term + HUGE),
            Message(MessageType.TIMEOUT_NOW, 3, OUTSIDER, term),
        ]
    )
    c.stabilize()
    assert [_term(c, i) for i in (1, 2, 3)] == [term, term, term]
    assert c.leader() == 1
    assert not c.outbox  # nothing was answered to the outsider


def test_the_leader_appends_no_proposal_from_an_outsider() -> None:
    c, _ = _elected()
    c.nodes[1].set_trusted(frozenset({OUTSIDER}))  # vouched-for nodes still may not propose
    c.deliver(
        [Message(MessageType.PROPOSE, 1, OUTSIDER, 0, entries=(Entry(0, 0, EntryType.NORMAL, b"evil"),))]
    )
    c.stabilize()
    assert c.data(1) == [b"before"]
    assert c.nodes[1].dropped_from_non_members == 1
    # A member's forwarded proposal is still taken: the check is about who sent it.
    c.deliver([Message(MessageType.PROPOSE, 1, 2, 0, entries=(Entry(0, 0, EntryType.NORMAL, b"fwd"),))])
    c.stabilize()
    assert c.data(3) == [b"before", b"fwd"]


def test_a_node_the_host_vouches_for_is_heard_before_the_log_names_it() -> None:
    """A follower that missed the entry adding a new member must still hear it once it leads."""
    c, term = _elected()
    c.deliver([Message(MessageType.HEARTBEAT, 2, 4, term + 1, commit=0)])
    assert _term(c, 2) == term
    c.nodes[2].set_trusted(frozenset({4}))
    c.deliver([Message(MessageType.HEARTBEAT, 2, 4, term + 1, commit=0)])
    assert _term(c, 2) == term + 1
    assert c.nodes[2].status().soft_state.leader == 4


def test_a_fresh_node_takes_leader_traffic_only() -> None:
    c, term = _elected()
    fresh = c.add_fresh(4)
    c.deliver([Message(MessageType.VOTE, 4, OUTSIDER, term + HUGE, log_term=term + HUGE, index=10**6)])
    assert fresh.status().hard_state.term == 0
    c.deliver([Message(MessageType.HEARTBEAT, 4, 1, term, commit=0)])
    assert fresh.status().hard_state.term == term


def test_trust_covers_leadership_and_campaigns_but_not_responses() -> None:
    c, term = _elected()
    c.nodes[1].set_trusted(frozenset({4}))
    c.deliver(
        [
            Message(MessageType.APPEND_RESP, 1, 4, term + HUGE, index=5),
            Message(MessageType.HEARTBEAT_RESP, 1, 4, term + HUGE),
            Message(MessageType.READ_INDEX, 1, 4, 0, context=b"r"),
        ]
    )
    c.stabilize()
    assert _term(c, 1) == term and c.leader() == 1
    assert c.nodes[1].dropped_from_non_members == 3
