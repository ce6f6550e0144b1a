"""Public API of the Raft core: ``RawNode`` (after etcd-io/raft's RawNode), ``Config`` and errors.

Usage loop: call ``tick()`` on a timer and ``step()`` for each received message; whenever
``has_ready()``, take ``rd = ready()``, persist ``rd.snapshot``/``rd.entries``/``rd.hard_state`` (fsync
if ``rd.must_sync``), then send ``rd.messages``, then apply ``rd.committed_entries`` (calling
``apply_conf_change`` for CONF_CHANGE entries), then ``advance(rd)``. Exactly one Ready is outstanding at
a time: ``has_ready()`` is False and ``ready()`` raises until it is advanced. Messages produced while a
Ready is outstanding wait for the next Ready, so they are never sent before the state they depend on.

Early sending (Raft thesis 10.2.1): a runtime may send a Ready's APPEND, HEARTBEAT, SNAPSHOT and
TIMEOUT_NOW messages (the leader's) before persisting that Ready; every other message (votes, append and
heartbeat responses, read-index traffic) must wait until the Ready is durable. This is safe because the
leader's commit index only reaches anyone through a later Ready, and a later Ready exists only after
``advance()`` of this one, i.e. after this one was persisted.

Quiescence: a runtime may stop ticking an idle group whose leader reports ``can_quiesce()`` (and its
followers); ``wake()`` restarts the timers from zero so nobody campaigns or steps down on resuming.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field

from streamraft_consensus.core.config import Config, NotLeader, ProposalDropped
from streamraft_consensus.core.progress import ProgressState
from streamraft_consensus.core.raft import Raft
from streamraft_consensus.core.storage import LogStorage
from streamraft_consensus.core.types import (
    NONE,
    ConfChange,
    ConfState,
    EntryType,
    HardState,
    Message,
    MessageType,
    Ready,
    Role,
    SoftState,
)

__all__ = [
    "Config",
    "NotLeader",
    "PeerProgress",
    "ProposalDropped",
    "RawNode",
    "Status",
]

_MT = MessageType
# Committed entries handed out per Ready of one group. A restart replays the whole log through Readies, and
# a runtime takes one Ready from every group per iteration: 64 MiB here held ~370 MiB per broker replaying
# 300 MB over 7 groups; etcd-io/raft's default (MaxCommittedSizePerReady = MaxSizePerMsg) is far smaller.
_MAX_APPLY_BYTES = 4 << 20
_NEEDS_TERM = frozenset(MessageType) - {_MT.PROPOSE, _MT.READ_INDEX}


@dataclass(frozen=True, slots=True)
class PeerProgress:
    match: int
    next: int
    state: ProgressState
    recent_active: bool


@dataclass(frozen=True, slots=True)
class Status:
    id: int
    hard_state: HardState
    soft_state: SoftState
    applied: int
    last_index: int
    conf_state: ConfState
    lead_transferee: int
    progress: dict[int, PeerProgress] = field(default_factory=dict)


class RawNode:
    __slots__ = ("_outstanding", "_prev_hs", "_prev_ss", "raft")

    def __init__(self, config: Config, storage: LogStorage, rand: random.Random) -> None:
        self.raft = Raft(config, storage, rand)
        self._prev_ss = SoftState(self.raft.lead, self.raft.role)
        self._prev_hs = self._hard_state()
        self._outstanding = False

    def _hard_state(self) -> HardState:
        r = self.raft
        return HardState(r.term, r.vote, r.log.committed)

    # --- driving --------------------------------------------------------------------------------------
    def tick(self) -> None:
        self.raft.tick()

    def step(self, msg: Message) -> None:
        """Feed a message from the network. Raises ValueError (state untouched) if it is malformed."""
        _validate(msg, self.raft.id)
        self.raft.step(msg)

    def campaign(self) -> None:
        self.raft.hup(transfer=False)

    def set_trusted(self, nodes: frozenset[int]) -> None:
        """Nodes of the host's cluster whose leader traffic and vote requests are taken even before this
        node's log names them as members (a node that missed a membership change must still hear the new
        leader). Messages from any other node outside the configuration are dropped without affecting the
        term; PROPOSE, READ_INDEX and responses only ever come from members."""
        self.raft.trusted = nodes

    @property
    def dropped_from_non_members(self) -> int:
        """Messages dropped so far because their sender is not a member (nor trusted)."""
        return self.raft.dropped_from_non_members

    def propose(self, data: bytes) -> tuple[int, int]:
        return self.raft.propose(EntryType.NORMAL, data)

    def propose_conf_change(self, cc: ConfChange) -> tuple[int, int]:
        return self.raft.propose(EntryType.CONF_CHANGE, cc.encode())

    def apply_conf_change(self, cc: ConfChange) -> ConfState:
        return self.raft.apply_conf_change(cc)

    def read_index(self, ctx: bytes) -> None:
        if not ctx:
            raise ValueError("read_index needs a non-empty context to match its ReadState")
        self.raft.read_index(self.raft.id, ctx)

    def transfer_leader(self, target: int) -> None:
        self.raft.transfer_leader(target)

    def report_unreachable(self, peer: int) -> None:
        self.raft.report_unreachable(peer)

    def report_snapshot(self, peer: int, ok: bool) -> None:
        self.raft.report_snapshot(peer, ok)

    # --- ready / advance ------------------------------------------------------------------------------
    def has_ready(self) -> bool:
        if self._outstanding:
            return False
        r = self.raft
        r.flush()
        log = r.log
        if r.msgs or r.read_states or log.unstable or log.unstable_snapshot is not None:
            return True
        if r.lead != self._prev_ss.leader or r.role != self._prev_ss.role:
            return True
        hs = self._prev_hs
        if r.term != hs.term or r.vote != hs.vote or log.committed != hs.commit:
            return True
        return log.has_next_committed()

    def ready(self) -> Ready:
        if self._outstanding:
            raise RuntimeError("ready() called again before advance() of the previous Ready")
        r = self.raft
        r.flush()
        log = r.log
        ss = SoftState(r.lead, r.role)
        hs = self._hard_state()
        prev = self._prev_hs
        assert hs.term >= prev.term, f"term went backwards: {prev.term} -> {hs.term}"
        assert hs.commit >= prev.commit, f"commit went backwards: {prev.commit} -> {hs.commit}"
        assert hs.term > prev.term or prev.vote in (NONE, hs.vote), (
            f"vote changed within term {hs.term}: {prev.vote} -> {hs.vote}"
        )
        rd = Ready(
            soft_state=ss if ss != self._prev_ss else None,
            hard_state=hs if hs != self._prev_hs else None,
            entries=tuple(log.unstable),
            snapshot=log.unstable_snapshot,
            committed_entries=tuple(log.next_committed_entries(_MAX_APPLY_BYTES)),
            messages=tuple(_mark_recovering(r.msgs)) if r.recovering else tuple(r.msgs),
            read_states=tuple(r.read_states),
            must_sync=bool(log.unstable)
            or log.unstable_snapshot is not None
            or hs.term != self._prev_hs.term
            or hs.vote != self._prev_hs.vote,
        )
        r.msgs = []
        r.read_states = []
        self._outstanding = True
        return rd

    def advance(self, rd: Ready) -> None:
        if not self._outstanding:
            raise RuntimeError("advance() without an outstanding Ready")
        self._outstanding = False
        r = self.raft
        log = r.log
        if rd.soft_state is not None:
            self._prev_ss = rd.soft_state
        if rd.hard_state is not None:
            self._prev_hs = rd.hard_state
        if rd.entries:
            last = rd.entries[-1]
            log.stable_to(last.index, last.term)
        if rd.snapshot is not None:
            log.stable_snap_to(rd.snapshot.meta.index)
            log.applied_to(rd.snapshot.meta.index)
        if rd.committed_entries:
            log.applied_to(rd.committed_entries[-1].index)
            if r.role == Role.LEADER and r.uncommitted_size:
                size = sum(len(e.data) for e in rd.committed_entries)
                r.uncommitted_size = max(0, r.uncommitted_size - size)
        if r.recovering:
            r.maybe_end_recovery()

    # --- inspection -----------------------------------------------------------------------------------
    def status(self) -> Status:
        r = self.raft
        progress: dict[int, PeerProgress] = {}
        if r.role == Role.LEADER:
            progress = {
                i: PeerProgress(pr.match, pr.next, pr.state, pr.recent_active) for i, pr in r.prs.items()
            }
        return Status(
            id=r.id,
            hard_state=self._hard_state(),
            soft_state=SoftState(r.lead, r.role),
            applied=r.log.applied,
            last_index=r.log.last_index(),
            conf_state=r.conf_state(),
            lead_transferee=r.lead_transferee,
            progress=progress,
        )

    def can_quiesce(self) -> bool:
        r = self.raft
        log = r.log
        if r.role != Role.LEADER or self._outstanding or r.msgs or r.bcast:
            return False
        last = log.last_index()
        if log.committed != last or log.applied != last or log.unstable:
            return False
        if r.reads or r.pending_read_msgs or r.read_states or r.lead_transferee != NONE:
            return False
        if r.pending_conf_index > log.applied:
            return False
        # A recovering follower must keep hearing from us until it has been demoted and has caught up.
        return all(pr.match == last and not pr.recovering for pr in r.prs.values())

    def wake(self) -> None:
        r = self.raft
        r.election_elapsed = 0
        r.heartbeat_elapsed = 0


_ACKS = frozenset((_MT.APPEND_RESP, _MT.HEARTBEAT_RESP))


def _mark_recovering(msgs: list[Message]) -> list[Message]:
    return [dataclasses.replace(m, recovering=True) if m.type in _ACKS else m for m in msgs]


def _validate(m: Message, node_id: int) -> None:
    if not isinstance(m.type, MessageType):
        raise ValueError(f"message type {m.type!r} is not a MessageType")
    if m.to != node_id:
        raise ValueError(f"{m.type.name} addressed to node {m.to} was delivered to node {node_id}")
    if m.frm <= NONE or m.frm == node_id:
        raise ValueError(f"{m.type.name} has invalid sender {m.frm} (receiver {node_id})")
    if m.term < 0 or m.index < 0 or m.log_term < 0 or m.commit < 0 or m.reject_hint < 0:
        raise ValueError(f"{m.type.name} from {m.frm} has a negative term/index/commit")
    if m.term == 0 and m.type in _NEEDS_TERM:
        raise ValueError(f"{m.type.name} from {m.frm} carries no term")
    if m.type == _MT.APPEND:
        expect = m.index + 1
        prev_term = m.log_term
        for e in m.entries:
            if e.index != expect or e.term < prev_term or e.term > m.term:
                raise ValueError(
                    f"APPEND from {m.frm}: entry ({e.term}, {e.index}) breaks the sequence after "
                    f"({prev_term}, {expect - 1}) in term {m.term}"
                )
            expect += 1
            prev_term = e.term
        if m.log_term > m.term:
            raise ValueError(f"APPEND from {m.frm}: log term {m.log_term} above message term {m.term}")
    elif m.type == _MT.SNAPSHOT:
        if m.snapshot is None or m.snapshot.is_empty():
            raise ValueError(f"SNAPSHOT from {m.frm} carries no snapshot")
    elif m.entries and m.type != _MT.PROPOSE:
        raise ValueError(f"{m.type.name} from {m.frm} must not carry entries")
