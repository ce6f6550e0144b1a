"""Mapping between core.types values and the protobuf wire messages."""

from __future__ import annotations

from streamraft_consensus.core.types import (
    ConfState,
    Entry,
    EntryType,
    Message,
    MessageType,
    Snapshot,
    SnapshotMeta,
)
from streamraft_consensus.transport import raft_pb2 as pb


def conf_state_to_pb(cs: ConfState, out: pb.ConfState) -> None:
    out.voters.extend(cs.voters)
    out.learners.extend(cs.learners)
    out.voters_outgoing.extend(cs.voters_outgoing)
    out.learners_next.extend(cs.learners_next)
    out.auto_leave = cs.auto_leave


def conf_state_from_pb(p: pb.ConfState) -> ConfState:
    return ConfState(
        tuple(p.voters), tuple(p.learners), tuple(p.voters_outgoing), tuple(p.learners_next), p.auto_leave
    )


def message_to_pb(msg: Message, out: pb.RaftMessage) -> None:
    out.type = int(msg.type)
    out.term = msg.term
    out.log_term = msg.log_term
    out.index = msg.index
    out.commit = msg.commit
    out.reject = msg.reject
    out.reject_hint = msg.reject_hint
    out.context = msg.context
    out.recovering = msg.recovering
    out.learner_confirmed = msg.learner_confirmed
    if msg.entries:
        out.entries.extend(
            pb.Entry(term=e.term, index=e.index, type=int(e.type), data=e.data) for e in msg.entries
        )
    if msg.snapshot is not None:
        snap = out.snapshot
        snap.index = msg.snapshot.meta.index
        snap.term = msg.snapshot.meta.term
        snap.data = msg.snapshot.data
        conf_state_to_pb(msg.snapshot.meta.conf_state, snap.conf_state)


def message_from_pb(p: pb.RaftMessage, to: int, frm: int) -> Message:
    """Raises ValueError on an unknown message or entry type."""
    snapshot = None
    if p.HasField("snapshot"):
        s = p.snapshot
        snapshot = Snapshot(SnapshotMeta(s.index, s.term, conf_state_from_pb(s.conf_state)), s.data)
    return Message(
        type=MessageType(p.type),
        to=to,
        frm=frm,
        term=p.term,
        log_term=p.log_term,
        index=p.index,
        entries=tuple(Entry(e.term, e.index, EntryType(e.type), e.data) for e in p.entries),
        commit=p.commit,
        reject=p.reject,
        reject_hint=p.reject_hint,
        snapshot=snapshot,
        context=p.context,
        recovering=p.recovering,
        learner_confirmed=p.learner_confirmed,
    )
