"""The Raft state machine (after etcd-io/raft): pure, deterministic, driven by tick() and step().

Membership changes are **one at a time** (Raft thesis 4.1): a CONF_CHANGE entry carries exactly one
change (add a learner, add/promote a voter, remove a node). As in the thesis, a node uses the latest
configuration *in its log*, committed or not, for elections and commitment (and recomputes it if a
conflicting leader truncates a change away); ``apply_conf_change`` only reports the configuration as of
the applied entry, for the caller's snapshots, and makes a leader that applied its own removal step down.
(Using a configuration only once applied, like etcd's v1 changes, needs extra guards against nodes whose
applied configuration lags their log; the thesis rule needs none.) The leader accepts a new
change only after the previous one is applied, so configurations in use differ by at most one voter and
every two majorities overlap; the known hazard of single-server changes (a change proposed by a leader that
has not yet committed an entry of its own term) is closed because a new leader sets ``pending_conf_index``
to its first entry, so it cannot propose a change before that entry is committed and applied. We chose
this over joint consensus because the operator only ever adds or removes one broker at a time, and it
keeps the core much smaller.

Message release (etcd's rule): every message produced goes into the next Ready, and the caller sends a
Ready's messages only after persisting that Ready's hard state, snapshot and entries. So a vote or an
append acknowledgement is never sent before the state it vouches for is durable. The leader counts its
own log in the commit quorum immediately; that is safe because everything a commit causes (applying,
telling followers) also happens only after the Ready holding those entries is persisted.

Rejoin after a wiped disk (``Config.recovering``; design and safety argument in
``streamraft_broker.replication.rejoin``): a recovering node never campaigns and never grants a vote, and
marks its append/heartbeat responses ``recovering`` so that a leader uses them only to replicate to it,
never toward a commit, check-quorum or read-index quorum. A leader may demote a voter to learner (an
ADD_LEARNER change naming a voter); it tells a learner on every append whether its committed
configuration has it as a learner (``learner_confirmed``), and the node leaves the recovering state once
it has applied up to the commit index of such an append while its own applied configuration agrees.

Reads are linearizable via read-index: the leader records its commit index, confirms leadership with a
heartbeat round acknowledged by a quorum, then releases the read state. A new leader defers read-index
requests until it has committed an entry of its own term.

Non-members: ``step`` drops, before looking at its term, every message from a node that is not a voter or
learner of the configuration in this node's log (``_accepts``), so no such message can change the term,
the vote or the log. Two exceptions keep membership changes live: the host may vouch for nodes of its
cluster (``trusted``: leader traffic and vote requests only; a node that missed the entry adding a new
member must still hear it lead or campaign), and a node that is not in its own configuration (brand new,
learning the membership from a snapshot) takes leader traffic from anyone. PROPOSE, READ_INDEX and every
response are taken only from members of this node's configuration, never on trust. Drops are counted in
``dropped_from_non_members``.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from streamraft_consensus.core.config import Config, NotLeader, ProposalDropped
from streamraft_consensus.core.log import RaftLog
from streamraft_consensus.core.progress import Progress, ProgressState
from streamraft_consensus.core.quorum import MajorityConfig, VoteResult
from streamraft_consensus.core.storage import Compacted, LogStorage
from streamraft_consensus.core.types import (
    NONE,
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    ReadState,
    Role,
    Snapshot,
)

CAMPAIGN_TRANSFER = b"transfer"
"""VOTE context marking a campaign started by TIMEOUT_NOW: it may interrupt a leader's lease."""

_MT = MessageType
_LOCAL_TERMLESS = frozenset((_MT.PROPOSE, _MT.READ_INDEX))
_FROM_LEADER = frozenset((_MT.APPEND, _MT.HEARTBEAT, _MT.SNAPSHOT))
_CAMPAIGN = frozenset((_MT.VOTE, _MT.PRE_VOTE))

_BCAST_NONE = 0
_BCAST_IF_NEW = 1
_BCAST_ALWAYS = 2


class _ReadRequest:
    __slots__ = ("acks", "frm", "index")

    def __init__(self, index: int, frm: int, acks: set[int]) -> None:
        self.index = index
        self.frm = frm
        self.acks = acks


class Raft:
    """One node's Raft state. ``RawNode`` is the public wrapper; this class is internal to the core."""

    def __init__(self, cfg: Config, storage: LogStorage, rand: random.Random) -> None:
        cfg.validate()
        self.id = cfg.id
        self.cfg = cfg
        self.rand = rand
        self.log = RaftLog(storage)
        self.term = 0
        self.vote = NONE
        self.lead = NONE
        self.role = Role.FOLLOWER
        self.prs: dict[int, Progress] = {}
        self.voters: MajorityConfig = MajorityConfig(())
        self.votes: dict[int, bool] = {}
        self.msgs: list[Message] = []
        self.read_states: list[ReadState] = []
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_election_timeout = cfg.election_tick
        self.lead_transferee = NONE
        self.pending_conf_index = 0
        self.uncommitted_size = 0
        self.reads: dict[bytes, _ReadRequest] = {}
        self.read_queue: list[bytes] = []
        self.pending_read_msgs: list[tuple[int, bytes]] = []
        self.bcast = _BCAST_NONE
        self.recovering = cfg.recovering
        self.learner_confirmed_at = 0
        """Commit index of the last append from a leader that confirmed us as a committed learner."""
        self.trusted: frozenset[int] = frozenset()
        """Nodes the host vouches for (its cluster's nodes): accepted even before this node's log names
        them as members, for leader traffic and vote requests only."""
        self.dropped_from_non_members = 0

        hs, cs = storage.initial_state()
        snap = storage.snapshot()
        self.base_conf = snap.meta.conf_state if not snap.is_empty() else cs
        self.base_conf_index = snap.meta.index
        self.last_conf_index = 0
        self.applied_conf = self.base_conf
        if hs != HardState():
            if hs.commit > self.log.last_index():
                raise ValueError(f"hard state commit {hs.commit} is past last index {self.log.last_index()}")
            self.term = hs.term
            self.vote = hs.vote
            # A snapshot is committed by definition, even if the hard state written with it was lost.
            self.log.committed = max(hs.commit, self.log.committed)
        if cfg.applied > 0:
            if cfg.applied > self.log.committed:
                raise ValueError(f"config.applied {cfg.applied} is past commit index {self.log.committed}")
            self.log.applied_to(cfg.applied)
        self._recompute_conf()
        self.become_follower(self.term, NONE)

    # --- configuration --------------------------------------------------------------------------------
    def _conf_entries(self, lo: int) -> list[tuple[int, ConfChange]]:
        log = self.log
        if lo < log.first_index():
            raise ValueError(
                f"log compacted to {log.first_index() - 1}, past the snapshot at {lo - 1}: "
                "membership changes in between are lost (compact only up to the snapshot index)"
            )
        ents = log.slice(lo, log.last_index() + 1)
        return [(e.index, ConfChange.decode(e.data)) for e in ents if e.type == EntryType.CONF_CHANGE]

    def _recompute_conf(self) -> None:
        """Rebuild the log configuration (and the applied one) from the snapshot's plus the log's changes."""
        snap = self.log.snapshot()
        if snap.meta.index > self.base_conf_index:
            # The caller compacted the log: its snapshot records the configuration at that point.
            self.base_conf = snap.meta.conf_state
            self.base_conf_index = snap.meta.index
        log_conf = applied_conf = self.base_conf
        self.last_conf_index = 0
        for index, cc in self._conf_entries(self.base_conf_index + 1):
            log_conf = apply_change(log_conf, cc)
            self.last_conf_index = index
            if index <= self.log.applied:
                applied_conf = log_conf
        self.applied_conf = applied_conf
        self._set_tracker(log_conf)

    def _set_tracker(self, cs: ConfState) -> None:
        if cs.voters_outgoing or cs.learners_next:
            raise ValueError("joint configurations are not supported (one-at-a-time membership changes)")
        nxt = self.log.last_index() + 1
        old = self.prs
        self.prs = {}
        for ids, learner in ((cs.voters, False), (cs.learners, True)):
            for v in ids:
                if v in self.prs:
                    raise ValueError(f"node {v} is both voter and learner in {cs}")
                pr = old.get(v)
                if pr is None:
                    pr = Progress(nxt, self.cfg.max_inflight_msgs, learner)
                    # A new member counts as active so the leader may send it a snapshot straight away.
                    pr.recent_active = True
                    if v == self.id:
                        pr.match = nxt - 1
                pr.is_learner = learner
                self.prs[v] = pr
        self._update_voters()
        if self.role == Role.LEADER:
            if self.lead_transferee != NONE and self.lead_transferee not in self.voters.voters:
                self.lead_transferee = NONE
            if self.maybe_commit():
                self.bcast = _BCAST_ALWAYS

    def _log_appended(self, first_new: int, ents: Sequence[Entry]) -> None:
        """Track configuration entries among newly appended ``ents`` (``first_new``: first new index)."""
        if first_new <= self.last_conf_index:
            self._recompute_conf()  # a change was truncated away
            return
        for e in ents:
            if e.type == EntryType.CONF_CHANGE and e.index >= first_new:
                self._set_tracker(apply_change(self.conf_state(), ConfChange.decode(e.data)))
                self.last_conf_index = e.index

    def _update_voters(self) -> None:
        self.voters = MajorityConfig([i for i, pr in self.prs.items() if not pr.is_learner])

    def conf_state(self) -> ConfState:
        return ConfState(
            voters=tuple(sorted(self.voters.voters)),
            learners=tuple(sorted(i for i, pr in self.prs.items() if pr.is_learner)),
        )

    def promotable(self) -> bool:
        pr = self.prs.get(self.id)
        return pr is not None and not pr.is_learner and not self.recovering

    def maybe_end_recovery(self) -> bool:
        """Leave the recovering state once a leader confirmed us as a learner in its committed configuration
        and we have applied at least up to its commit index then (so our applied configuration is that one
        or later) and it still has us as a learner. Returns True when this call ended it."""
        if not self.recovering or self.learner_confirmed_at == 0:
            return False
        if self.log.applied < self.learner_confirmed_at or self.id not in self.applied_conf.learners:
            return False
        self.recovering = False
        return True

    # --- role transitions -----------------------------------------------------------------------------
    def _reset(self, term: int) -> None:
        if term != self.term:
            assert term > self.term, f"term must not decrease ({self.term} -> {term})"
            self.term = term
            self.vote = NONE
        self.lead = NONE
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        et = self.cfg.election_tick
        self.randomized_election_timeout = et + self.rand.randrange(et)
        self.lead_transferee = NONE
        self.votes = {}
        nxt = self.log.last_index() + 1
        for i, pr in self.prs.items():
            npr = Progress(nxt, self.cfg.max_inflight_msgs, pr.is_learner)
            if i == self.id:
                npr.match = nxt - 1
                npr.recent_active = True
            self.prs[i] = npr
        self.pending_conf_index = 0
        self.uncommitted_size = 0
        self.reads = {}
        self.read_queue = []
        self.pending_read_msgs = []
        self.bcast = _BCAST_NONE

    def become_follower(self, term: int, lead: int) -> None:
        self._reset(term)
        self.lead = lead
        self.role = Role.FOLLOWER

    def _become_pre_candidate(self) -> None:
        assert self.role != Role.LEADER, "leader cannot become pre-candidate"
        # Pre-vote changes neither term nor vote: a pre-candidate that loses leaves no trace.
        self.votes = {}
        self.lead = NONE
        self.role = Role.PRE_CANDIDATE

    def _become_candidate(self) -> None:
        assert self.role != Role.LEADER, "leader cannot become candidate"
        self._reset(self.term + 1)
        self.vote = self.id
        self.role = Role.CANDIDATE

    def _become_leader(self) -> None:
        assert self.role == Role.CANDIDATE, f"only a candidate can become leader, not {self.role.name}"
        self._reset(self.term)
        self.lead = self.id
        self.role = Role.LEADER
        own = self.prs.get(self.id)
        if own is not None:
            own.become_replicate()
        # No membership change until this term's first entry is applied (closes the single-server bug).
        _, self.pending_conf_index = self._append(EntryType.NORMAL, b"")
        self.bcast = _BCAST_ALWAYS

    # --- ticks ----------------------------------------------------------------------------------------
    def tick(self) -> None:
        if self.role == Role.LEADER:
            self._tick_heartbeat()
        else:
            self._tick_election()

    def _tick_election(self) -> None:
        self.election_elapsed += 1
        if self.recovering and self.election_elapsed >= self.randomized_election_timeout:
            self.election_elapsed = 0
            self._poke_voters()
            return
        if self.promotable() and self.election_elapsed >= self.randomized_election_timeout:
            self.election_elapsed = 0
            self.hup(transfer=False)

    def _tick_heartbeat(self) -> None:
        self.heartbeat_elapsed += 1
        self.election_elapsed += 1
        if self.election_elapsed >= self.cfg.election_tick:
            self.election_elapsed = 0
            if self.cfg.check_quorum and not self._quorum_active():
                self.become_follower(self.term, NONE)
                return
            if self.lead_transferee != NONE:
                self.lead_transferee = NONE
        if self.heartbeat_elapsed >= self.cfg.heartbeat_tick:
            self.heartbeat_elapsed = 0
            self._bcast_heartbeat()

    def _quorum_active(self) -> bool:
        active = {self.id}
        for i, pr in self.prs.items():
            if i == self.id:
                continue
            if pr.recent_active and not pr.is_learner and not pr.recovering:
                active.add(i)
            pr.recent_active = False
        return self.voters.has_quorum(active)

    # --- elections ------------------------------------------------------------------------------------
    def hup(self, transfer: bool) -> None:
        if self.role == Role.LEADER or not self.promotable() or self._has_unapplied_conf_change():
            return
        if self.cfg.pre_vote and not transfer:
            self._campaign(pre=True, transfer=False)
        else:
            self._campaign(pre=False, transfer=transfer)

    def _has_unapplied_conf_change(self) -> bool:
        log = self.log
        if log.committed <= log.applied:
            return False
        try:
            ents = log.slice(max(log.applied + 1, log.first_index()), log.committed + 1)
        except Compacted:
            return False
        return any(e.type == EntryType.CONF_CHANGE for e in ents)

    def _campaign(self, pre: bool, transfer: bool) -> None:
        if pre:
            self._become_pre_candidate()
            vtype, term = _MT.PRE_VOTE, self.term + 1
        else:
            self._become_candidate()
            vtype, term = _MT.VOTE, self.term
        if self._poll(self.id, True) == VoteResult.WON:
            # A single-voter group wins at once.
            if pre:
                self._campaign(pre=False, transfer=transfer)
            else:
                self._become_leader()
            return
        last = self.log.last_index()
        last_term = self.log.last_term()
        ctx = CAMPAIGN_TRANSFER if transfer else b""
        for v in sorted(self.voters.voters):
            if v != self.id:
                self.msgs.append(Message(vtype, v, self.id, term, last_term, last, context=ctx))

    def _poke_voters(self) -> None:
        """A recovering node that has not heard from a leader: a pre-vote it will never act on wakes the
        group on the other nodes (a quiesced leader resumes heartbeats and finds it recovering) and teaches
        it the current term from the rejections. It changes no one's term or vote."""
        last, last_term = self.log.last_index(), self.log.last_term()
        for v in sorted(self.voters.voters):
            if v != self.id:
                self.msgs.append(Message(_MT.PRE_VOTE, v, self.id, self.term + 1, last_term, last))

    def _poll(self, frm: int, granted: bool) -> VoteResult:
        self.votes.setdefault(frm, granted)
        return self.voters.vote_result(self.votes)

    def can_grant_vote(self, m: Message) -> bool:
        """Whether this node may vote for ``m.frm`` (ignoring log freshness). Tests override it."""
        return (
            self.vote == m.frm
            or (self.vote == NONE and self.lead == NONE)
            or (m.type == _MT.PRE_VOTE and m.term > self.term)
        )

    def _handle_vote(self, m: Message) -> None:
        rtype = _MT.VOTE_RESP if m.type == _MT.VOTE else _MT.PRE_VOTE_RESP
        if self.recovering:
            # A wiped disk forgot its votes and the entries it acknowledged: its vote could elect a leader
            # missing committed entries, or a second leader in a term it already voted in. With no term yet
            # (a pre-vote to a blank node) there is no valid rejection to send: the candidate times out.
            if self.term > 0:
                self.msgs.append(Message(rtype, m.frm, self.id, self.term, reject=True))
            return
        if self.can_grant_vote(m) and self.log.is_up_to_date(m.index, m.log_term):
            self.msgs.append(Message(rtype, m.frm, self.id, m.term))
            if m.type == _MT.VOTE:
                self.election_elapsed = 0
                self.vote = m.frm
        else:
            self.msgs.append(Message(rtype, m.frm, self.id, self.term, reject=True))

    # --- step -----------------------------------------------------------------------------------------
    def _accepts(self, m: Message) -> bool:
        """Whether ``m``'s sender may affect this node at all (see the module docstring)."""
        frm = m.frm
        if frm in self.prs:
            return True
        if frm in self.trusted:
            # What a node that missed a membership change may need from a new member: its leadership, or
            # its campaign. Responses go only to nodes that already know the responder as a member.
            return m.type in _FROM_LEADER or m.type in _CAMPAIGN
        return self.id not in self.prs and m.type in _FROM_LEADER

    def step(self, m: Message) -> None:
        if not self._accepts(m):
            # Checked before the term: a node outside the configuration must never raise it.
            self.dropped_from_non_members += 1
            return
        if m.term == 0:
            pass
        elif m.term > self.term:
            if m.type in (_MT.VOTE, _MT.PRE_VOTE):
                force = m.context == CAMPAIGN_TRANSFER
                elapsed, cfg = self.election_elapsed, self.cfg
                in_lease = cfg.check_quorum and self.lead != NONE and elapsed < cfg.election_tick
                if not force and in_lease:
                    # We heard from a live leader within the election timeout: ignore the disruption.
                    return
            if m.type == _MT.PRE_VOTE or (m.type == _MT.PRE_VOTE_RESP and not m.reject):
                pass  # pre-vote never changes the term
            elif m.type in _FROM_LEADER:
                self.become_follower(m.term, m.frm)
            elif m.type == _MT.VOTE:
                # Adopt the term but keep our election timer running (the Raft paper resets it only when
                # granting a vote): a candidate with a stale log, e.g. a removed node that never learnt
                # of its removal, must not keep postponing the elections that nodes with good logs start.
                elapsed, timeout = self.election_elapsed, self.randomized_election_timeout
                self.become_follower(m.term, NONE)
                self.election_elapsed, self.randomized_election_timeout = elapsed, timeout
            else:
                self.become_follower(m.term, NONE)
        elif m.term < self.term:
            if (self.cfg.check_quorum or self.cfg.pre_vote) and m.type in (_MT.HEARTBEAT, _MT.APPEND):
                # A stale leader: tell it our term so it steps down (it may never see our votes otherwise).
                self.msgs.append(Message(_MT.APPEND_RESP, m.frm, self.id, self.term))
            elif m.type == _MT.PRE_VOTE:
                self.msgs.append(Message(_MT.PRE_VOTE_RESP, m.frm, self.id, self.term, reject=True))
            return

        if m.type in (_MT.VOTE, _MT.PRE_VOTE):
            self._handle_vote(m)
        elif self.role == Role.LEADER:
            self._step_leader(m)
        elif self.role == Role.FOLLOWER:
            self._step_follower(m)
        else:
            self._step_candidate(m)

    def _step_follower(self, m: Message) -> None:
        t = m.type
        if t in _FROM_LEADER:
            self.election_elapsed = 0
            self.lead = m.frm
            if t == _MT.APPEND:
                if m.learner_confirmed and self.recovering:
                    self.learner_confirmed_at = max(self.learner_confirmed_at, m.commit)
                self._handle_append(m)
            elif t == _MT.HEARTBEAT:
                self._handle_heartbeat(m)
            else:
                self._handle_snapshot(m)
        elif t == _MT.TIMEOUT_NOW:
            self.hup(transfer=True)
        elif t == _MT.READ_INDEX_RESP:
            self.read_states.append(ReadState(m.index, m.context))
        # PROPOSE / READ_INDEX from other nodes are for a leader: dropped here to avoid forwarding loops.

    def _step_candidate(self, m: Message) -> None:
        t = m.type
        if t in _FROM_LEADER:
            self.become_follower(m.term, m.frm)
            self._step_follower(m)
        elif t == (_MT.PRE_VOTE_RESP if self.role == Role.PRE_CANDIDATE else _MT.VOTE_RESP):
            res = self._poll(m.frm, not m.reject)
            if res == VoteResult.WON:
                if self.role == Role.PRE_CANDIDATE:
                    self._campaign(pre=False, transfer=False)
                else:
                    self._become_leader()
            elif res == VoteResult.LOST:
                self.become_follower(self.term, NONE)

    def _step_leader(self, m: Message) -> None:
        t = m.type
        if t == _MT.APPEND_RESP:
            self._handle_append_resp(m)
        elif t == _MT.HEARTBEAT_RESP:
            self._handle_heartbeat_resp(m)
        elif t == _MT.PROPOSE:
            for e in m.entries:
                try:
                    self.propose(e.type, e.data)
                except (ProposalDropped, NotLeader, ValueError):
                    return  # a forwarded proposal has nobody to raise to; its sender retries
        elif t == _MT.READ_INDEX:
            self.read_index(m.frm, m.context)

    # --- follower handlers ----------------------------------------------------------------------------
    def _handle_append(self, m: Message) -> None:
        log = self.log
        if m.index < log.committed:
            self.msgs.append(Message(_MT.APPEND_RESP, m.frm, self.id, self.term, index=log.committed))
            return
        prev_last = log.last_index()
        last_new = log.maybe_append(m.index, m.log_term, m.commit, m.entries)
        if last_new is not None:
            if log.truncated_at or last_new > prev_last:
                self._log_appended(log.truncated_at or prev_last + 1, m.entries)
            self.msgs.append(Message(_MT.APPEND_RESP, m.frm, self.id, self.term, index=last_new))
            return
        hint, hint_term = log.find_conflict_by_term(m.index, m.log_term)
        self.msgs.append(
            Message(
                _MT.APPEND_RESP,
                m.frm,
                self.id,
                self.term,
                log_term=hint_term,
                index=m.index,
                reject=True,
                reject_hint=hint,
            )
        )

    def _handle_heartbeat(self, m: Message) -> None:
        if not self.recovering:
            self.log.commit_to(m.commit)
        # else: the leader may still count on what our wiped disk held (a stale match index), so its
        # heartbeat commit proves nothing about our log; appends, checked against its log, commit instead.
        self.msgs.append(Message(_MT.HEARTBEAT_RESP, m.frm, self.id, self.term, context=m.context))

    def _handle_snapshot(self, m: Message) -> None:
        assert m.snapshot is not None
        index = self.log.last_index() if self._restore(m.snapshot) else self.log.committed
        self.msgs.append(Message(_MT.APPEND_RESP, m.frm, self.id, self.term, index=index))

    def _restore(self, snap: Snapshot) -> bool:
        meta = snap.meta
        if meta.index <= self.log.committed:
            return False
        cs = meta.conf_state
        if self.id not in cs.voters and self.id not in cs.learners:
            return False  # a snapshot from a config that no longer includes us
        if self.log.match_term(meta.index, meta.term):
            # We already hold the snapshot's entries: just fast-forward the commit.
            self.log.commit_to(meta.index)
            return False
        self.log.restore(snap)
        self.base_conf = self.applied_conf = cs
        self.base_conf_index = meta.index
        self.last_conf_index = 0
        self.prs = {}
        self._set_tracker(cs)
        return True

    # --- leader handlers ------------------------------------------------------------------------------
    def _handle_append_resp(self, m: Message) -> None:
        pr = self.prs.get(m.frm)
        if pr is None:
            return
        pr.recent_active = True
        self._note_recovering(pr, m)
        if m.reject:
            next_probe = m.reject_hint
            if m.log_term > 0:
                next_probe, _ = self.log.find_conflict_by_term(m.reject_hint, m.log_term)
            if pr.maybe_decr_to(m.index, next_probe):
                if pr.state == ProgressState.REPLICATE:
                    pr.become_probe()
                self._send_append(m.frm)
            return
        if pr.maybe_update(m.index) or (pr.match == m.index and pr.state == ProgressState.PROBE):
            if pr.state == ProgressState.PROBE:
                pr.become_replicate()
            elif pr.state == ProgressState.SNAPSHOT and pr.match + 1 >= self.log.first_index():
                pr.become_probe()
                pr.become_replicate()
            elif pr.state == ProgressState.REPLICATE:
                pr.inflights.free_le(m.index)
            if self.maybe_commit():
                self.bcast = _BCAST_ALWAYS
            while self._send_append(m.frm, send_if_empty=False):
                pass
            if m.frm == self.lead_transferee and pr.match == self.log.last_index():
                self.msgs.append(Message(_MT.TIMEOUT_NOW, m.frm, self.id, self.term))

    def _handle_heartbeat_resp(self, m: Message) -> None:
        pr = self.prs.get(m.frm)
        if pr is None:
            return
        pr.recent_active = True
        self._note_recovering(pr, m)
        pr.probe_sent = False
        if pr.state == ProgressState.REPLICATE and pr.inflights.full():
            pr.inflights.free_first_one()
        if pr.match < self.log.last_index() or pr.state == ProgressState.PROBE:
            self._send_append(m.frm)
        if m.context and not m.recovering:
            self._ack_read(m.frm, m.context)

    @staticmethod
    def _note_recovering(pr: Progress, m: Message) -> None:
        if m.recovering and not pr.recovering:
            # The follower lost its log with its disk: what we knew it held is gone, probe from scratch.
            pr.match = 0
            pr.become_probe()
        pr.recovering = m.recovering

    def maybe_commit(self) -> bool:
        """Advance the commit index to what a quorum of voters holds, if that is from this term."""
        prs = self.prs
        # A recovering voter's match is real but its pre-wipe acknowledgements are lost: count none of them.
        mci = self.voters.committed_index(lambda v: 0 if prs[v].recovering else prs[v].match)
        if not self.log.maybe_commit(mci, self.term):
            return False
        if self.pending_read_msgs:
            pending, self.pending_read_msgs = self.pending_read_msgs, []
            for frm, ctx in pending:
                self.read_index(frm, ctx)
        return True

    # --- sending --------------------------------------------------------------------------------------
    def flush(self) -> None:
        """Send the appends deferred by proposals and commits (one message per follower per Ready)."""
        if self.bcast == _BCAST_NONE:
            return
        always = self.bcast == _BCAST_ALWAYS
        self.bcast = _BCAST_NONE
        if self.role != Role.LEADER:
            return
        for i in self.prs:
            if i != self.id:
                self._send_append(i, send_if_empty=always)

    def _send_append(self, to: int, send_if_empty: bool = True) -> bool:
        pr = self.prs[to]
        if pr.is_paused():
            return False
        log = self.log
        prev = pr.next - 1
        prev_term = log.term(prev)
        ents: list[Entry] | None = None
        if prev_term is not None:
            try:
                ents = log.entries_from(pr.next, self.cfg.max_size_per_msg)
            except Compacted:
                ents = None
        if prev_term is None or ents is None:
            if not pr.recent_active:
                return False
            snap = log.snapshot()
            assert not snap.is_empty(), "follower is behind a compacted log but there is no snapshot"
            self.msgs.append(Message(_MT.SNAPSHOT, to, self.id, self.term, snapshot=snap))
            pr.become_snapshot(snap.meta.index)
            return True
        if not ents and not send_if_empty:
            return False
        confirmed = pr.is_learner and self.last_conf_index <= log.committed
        self.msgs.append(
            Message(
                _MT.APPEND,
                to,
                self.id,
                self.term,
                prev_term,
                prev,
                tuple(ents),
                log.committed,
                learner_confirmed=confirmed,
            )
        )
        if pr.state == ProgressState.REPLICATE:
            if ents:
                last = ents[-1].index
                pr.optimistic_update(last)
                pr.inflights.add(last)
        elif pr.state == ProgressState.PROBE:
            pr.probe_sent = True
        return True

    def _bcast_heartbeat(self) -> None:
        ctx = self.read_queue[-1] if self.read_queue else b""
        committed = self.log.committed
        for i, pr in self.prs.items():
            if i != self.id:
                commit = min(pr.match, committed)
                self.msgs.append(Message(_MT.HEARTBEAT, i, self.id, self.term, commit=commit, context=ctx))

    # --- proposals ------------------------------------------------------------------------------------
    def _append(self, etype: EntryType, data: bytes) -> tuple[int, int]:
        index = self.log.last_index() + 1
        ent = Entry(self.term, index, etype, data)
        self.log.append((ent,))
        if etype == EntryType.CONF_CHANGE:
            self._log_appended(index, (ent,))
        own = self.prs.get(self.id)
        if own is not None:
            own.maybe_update(index)
        self.maybe_commit()
        if self.bcast == _BCAST_NONE:
            self.bcast = _BCAST_IF_NEW
        return self.term, index

    def propose(self, etype: EntryType, data: bytes) -> tuple[int, int]:
        if self.role != Role.LEADER:
            raise NotLeader(self.lead)
        if self.id not in self.prs:
            raise ProposalDropped("this leader has been removed from the group")
        if self.lead_transferee != NONE:
            raise ProposalDropped(f"leadership transfer to {self.lead_transferee} in progress")
        size = len(data)
        if self.uncommitted_size > 0 and self.uncommitted_size + size > self.cfg.max_uncommitted_bytes:
            raise ProposalDropped(f"uncommitted data would exceed {self.cfg.max_uncommitted_bytes} bytes")
        if etype == EntryType.CONF_CHANGE:
            self._validate_conf_change(ConfChange.decode(data))
            if self.pending_conf_index > self.log.applied:
                raise ProposalDropped(
                    f"conf change at {self.pending_conf_index} not applied yet (applied {self.log.applied})"
                )
        term, index = self._append(etype, data)
        self.uncommitted_size += size
        if etype == EntryType.CONF_CHANGE:
            self.pending_conf_index = index
        return term, index

    def _validate_conf_change(self, cc: ConfChange) -> None:
        if len(cc.changes) != 1:
            raise ValueError(f"one membership change per CONF_CHANGE entry, got {len(cc.changes)}")
        ((t, nid),) = cc.changes
        if nid <= NONE:
            raise ValueError(f"conf change names invalid node id {nid}")
        pr = self.prs.get(nid)
        if t == ConfChangeType.ADD_VOTER and pr is not None and not pr.is_learner:
            raise ValueError(f"node {nid} is already a voter")
        if t == ConfChangeType.ADD_LEARNER and pr is not None:
            if pr.is_learner:
                raise ValueError(f"node {nid} is already a learner")
            if len(self.voters.voters) == 1:
                raise ValueError(f"cannot demote {nid}, the last voter")
        if t == ConfChangeType.REMOVE:
            if pr is None:
                raise ValueError(f"node {nid} is not a member")
            if not pr.is_learner and len(self.voters.voters) == 1:
                raise ValueError(f"cannot remove {nid}, the last voter")

    def apply_conf_change(self, cc: ConfChange) -> ConfState:
        """The caller applied a committed CONF_CHANGE entry: returns the configuration as of that entry
        (what a snapshot taken there must record). The change itself took effect when it was appended."""
        self.applied_conf = apply_change(self.applied_conf, cc)
        if self.role == Role.LEADER and self.id not in self.applied_conf.voters:
            # Our removal (or demotion) is committed: hand over by stepping down.
            self.become_follower(self.term, NONE)
        return self.applied_conf

    # --- read index -----------------------------------------------------------------------------------
    def read_index(self, frm: int, ctx: bytes) -> None:
        if self.role != Role.LEADER:
            if frm != self.id:
                return
            if self.lead == NONE:
                raise NotLeader(NONE)
            self.msgs.append(Message(_MT.READ_INDEX, self.lead, self.id, 0, context=ctx))
            return
        if len(self.voters.voters) == 1 and self.id in self.voters.voters:
            self._respond_read(frm, self.log.committed, ctx)
            return
        if self.log.term(self.log.committed) != self.term:
            # The commit index of a new leader may be behind the true one until its own entry commits.
            self.pending_read_msgs.append((frm, ctx))
            return
        if ctx in self.reads:
            return
        self.reads[ctx] = _ReadRequest(self.log.committed, frm, {self.id})
        self.read_queue.append(ctx)
        self._bcast_heartbeat()

    def _ack_read(self, frm: int, ctx: bytes) -> None:
        req = self.reads.get(ctx)
        if req is None:
            return
        req.acks.add(frm)
        if not self.voters.has_quorum(req.acks):
            return
        # A quorum acknowledged a heartbeat sent after every earlier request too: release them all.
        i = self.read_queue.index(ctx)
        done, self.read_queue = self.read_queue[: i + 1], self.read_queue[i + 1 :]
        for c in done:
            r = self.reads.pop(c)
            self._respond_read(r.frm, r.index, c)

    def _respond_read(self, frm: int, index: int, ctx: bytes) -> None:
        if frm == self.id:
            self.read_states.append(ReadState(index, ctx))
        else:
            self.msgs.append(Message(_MT.READ_INDEX_RESP, frm, self.id, self.term, index=index, context=ctx))

    # --- leadership transfer, reports -----------------------------------------------------------------
    def transfer_leader(self, target: int) -> None:
        if self.role != Role.LEADER:
            raise NotLeader(self.lead)
        pr = self.prs.get(target)
        if pr is None or pr.is_learner:
            raise ValueError(f"transfer target {target} is not a voter")
        if target == self.id:
            return
        if self.lead_transferee == target:
            return
        self.election_elapsed = 0  # the transfer must finish within one election timeout
        self.lead_transferee = target
        if pr.match == self.log.last_index():
            self.msgs.append(Message(_MT.TIMEOUT_NOW, target, self.id, self.term))
        else:
            self._send_append(target)

    def report_unreachable(self, peer: int) -> None:
        pr = self.prs.get(peer)
        if self.role == Role.LEADER and pr is not None and pr.state == ProgressState.REPLICATE:
            pr.become_probe()

    def report_snapshot(self, peer: int, ok: bool) -> None:
        pr = self.prs.get(peer)
        if self.role != Role.LEADER or pr is None or pr.state != ProgressState.SNAPSHOT:
            return
        if not ok:
            pr.pending_snapshot = 0
        pr.become_probe()
        # Wait for the next heartbeat response before probing, as etcd does.
        pr.probe_sent = True


def apply_change(cs: ConfState, cc: ConfChange) -> ConfState:
    """The configuration after ``cc``. Invalid changes are no-ops (the leader validates proposals; every
    node applies the same log, so every node reaches the same result)."""
    voters = list(cs.voters)
    learners = list(cs.learners)
    for t, nid in cc.changes:
        if t == ConfChangeType.ADD_VOTER:
            if nid in learners:
                learners.remove(nid)
            if nid not in voters:
                voters.append(nid)
        elif t == ConfChangeType.ADD_LEARNER:
            if nid in voters and len(voters) > 1:
                voters.remove(nid)  # a demotion: one voter fewer, as safe as a removal
            if nid not in voters and nid not in learners:
                learners.append(nid)
        elif t == ConfChangeType.REMOVE:
            if nid in learners:
                learners.remove(nid)
            elif nid in voters and len(voters) > 1:
                voters.remove(nid)
    return ConfState(voters=tuple(sorted(voters)), learners=tuple(sorted(learners)))
