"""The deterministic fault-injecting simulator: real RawNodes, a simulated disk and network, a client,
and safety checks after every step.

Everything random comes from ``random.Random(seed)``, so a seed replays bit for bit. Time advances in
rounds; every ``ROUNDS_PER_TICK`` rounds each live node ticks. A run has a fault phase (crashes, torn
writes, partitions, loss, duplication, reordering) and then a healed phase in which a leader must be
elected and a fresh proposal committed within ``LIVENESS_TICKS``.
"""

from __future__ import annotations

import heapq
import random
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

from streamraft_consensus.core.config import NotLeader, ProposalDropped
from streamraft_consensus.core.memory_storage import MemoryStorage
from streamraft_consensus.core.node import Config, RawNode
from streamraft_consensus.core.storage import Compacted, LogStorage
from streamraft_consensus.core.types import (
    ConfChange,
    ConfChangeType,
    ConfState,
    EntryType,
    Message,
    MessageType,
    Ready,
    Role,
    Snapshot,
    SnapshotMeta,
)
from streamraft_consensus.sim.disk import Disk

ROUNDS_PER_TICK = 4
ELECTION_TICK = 10
LIVENESS_TICKS = 120
"""After all faults heal, a leader must be elected and a new proposal committed within this many ticks."""
MAX_READY_LOOPS = 50

_CLUSTER_NODES = 5
"""Nodes 1..5 exist; the group's configuration uses some of them."""
NodeFactory = Callable[[Config, LogStorage, random.Random], RawNode]


class Violation(Exception):
    def __init__(self, invariant: str, detail: str) -> None:
        super().__init__(f"{invariant}: {detail}")
        self.invariant = invariant
        self.detail = detail


@dataclass
class Stats:
    ticks: int = 0
    acked: int = 0
    leaders: int = 0
    crashes: int = 0
    torn: int = 0
    snapshots_sent: int = 0
    reads: int = 0
    transfers: int = 0
    conf_changes: int = 0
    delivered: int = 0
    heal_to_commit_ticks: int = 0
    quiesced: int = 0
    wipes: int = 0


@dataclass
class _Node:
    id: int
    disk: Disk
    node: RawNode | None = None
    sm_index: int = 0
    sm_hash: int = 0
    last_term: int = 0
    last_commit: int = 0
    down_until: int = 0
    rejoining: bool = False
    """Restarted on a wiped disk and still recovering (the broker's rejoin marker)."""


@dataclass
class _Params:
    n_voters: int
    loss: float
    dup: float
    max_delay: int
    crash_rate: float
    persist_crash_rate: float
    partition_rate: float
    propose_rate: float
    fault_ticks: int
    heartbeat_tick: int
    max_inflight: int
    max_size_per_msg: int
    pre_vote: bool
    check_quorum: bool
    seen_leaders: set[tuple[int, int]] = field(default_factory=set)


def _snap_data(index: int, h: int) -> bytes:
    return b"%d:%d" % (index, h)


def _parse_snap(snap: Snapshot) -> tuple[int, int]:
    if not snap.data:
        return snap.meta.index, 0
    a, b = snap.data.split(b":")
    return int(a), int(b)


class World:
    def __init__(
        self,
        seed: int,
        *,
        fault_ticks: int = 200,
        node_factory: NodeFactory = RawNode,
        verbose: bool = False,
        wipes: bool = False,
    ) -> None:
        self.seed = seed
        self.rng = rng = random.Random(seed)
        self.factory = node_factory
        self.verbose = verbose
        self.p = _Params(
            n_voters=rng.choice((3, 3, 5)),
            loss=rng.choice((0.0, 0.01, 0.05, 0.15)),
            dup=rng.choice((0.0, 0.02, 0.1)),
            max_delay=rng.choice((1, 2, 4, 8)),
            crash_rate=rng.choice((0.0, 0.002, 0.006)),
            persist_crash_rate=rng.choice((0.0, 0.005, 0.02)),
            partition_rate=rng.choice((0.0, 0.01, 0.03)),
            propose_rate=rng.choice((0.05, 0.3, 0.7)),
            fault_ticks=fault_ticks,
            heartbeat_tick=rng.choice((1, 1, 3)),
            # Flow-control profiles; one-entry messages with a window of one would replicate too slowly
            # for the liveness bound after a long fault phase, so that pairing is left out.
            max_inflight=(profile := rng.choice(((256, 1 << 20), (8, 1 << 20), (1, 1 << 20), (8, 80))))[0],
            max_size_per_msg=profile[1],
            pre_vote=rng.random() < 0.8,
            check_quorum=rng.random() < 0.8,
        )
        # Opt-in (drawn only then, so the seeds of runs without wipes stay what they were): a voter loses
        # its disk and restarts recovering; a driver demotes it, and promotes it once it has caught up.
        self.wipe_rate = rng.choice((0.003, 0.01, 0.02)) if wipes else 0.0
        self.demoted: set[int] = set()
        self.stats = Stats()
        self.now = 0
        self.tick_no = 0
        self.seq = 0
        self.net: list[tuple[int, int, Message]] = []
        self.cut: set[tuple[int, int]] = set()
        self.partition_until = 0
        self.healed = False
        self.quiesced = False
        conf = ConfState(voters=tuple(range(1, self.p.n_voters + 1)))
        self.initial_conf = conf
        self.nodes: dict[int, _Node] = {}
        for i in range(1, _CLUSTER_NODES + 1):
            st = MemoryStorage.bootstrap(conf) if i <= self.p.n_voters else MemoryStorage()
            self.nodes[i] = _Node(i, Disk(st))
            self._start(self.nodes[i])
        self.removed: set[int] = set()
        # Checker state.
        self.leader_of_term: dict[int, int] = {}
        self.applied_at: dict[int, tuple[int, int]] = {1: (1, 0)}  # index -> (term, state hash)
        self.log_sigs: dict[tuple[int, int], tuple[int, int, int]] = {}
        self.pending_props: dict[bytes, int] = {}
        self.acked: dict[int, tuple[int, bytes]] = {}
        self.max_acked = 0
        self.reads: dict[bytes, int] = {}
        self.prop_seq = 0
        self.live_probe: bytes | None = None
        self.live_probe_at = 0
        self.heal_tick = 0
        self.live_ok = False

    def log(self, msg: str) -> None:
        if self.verbose:
            print(f"[t{self.tick_no} r{self.now}] {msg}")

    # --- node lifecycle -------------------------------------------------------------------------------
    def _start(self, sn: _Node) -> None:
        st = sn.disk.live
        hs = st.initial_state()[0]
        floor = sn.disk.synced_hard_state
        if hs.term < floor.term or hs.commit < floor.commit:
            raise Violation("durable monotonicity", f"node {sn.id} recovered {hs} below synced {floor}")
        snap = st.snapshot()
        sn.sm_index, sn.sm_hash = _parse_snap(snap) if snap.meta.index else (0, 0)
        sn.last_term, sn.last_commit = hs.term, hs.commit
        p = self.p
        cfg = Config(
            id=sn.id,
            election_tick=ELECTION_TICK,
            heartbeat_tick=p.heartbeat_tick,
            applied=snap.meta.index,
            max_inflight_msgs=p.max_inflight,
            max_size_per_msg=p.max_size_per_msg,
            pre_vote=p.pre_vote,
            check_quorum=p.check_quorum,
            recovering=sn.rejoining,
        )
        sn.node = self.factory(cfg, st, random.Random(self.rng.getrandbits(64)))
        # As the runtime does with its transport's peers: every node of the cluster is vouched for, so one
        # that missed a membership change still hears the new members (see Raft._accepts).
        sn.node.set_trusted(frozenset(range(1, _CLUSTER_NODES + 1)) - {sn.id})

    def _crash(self, sn: _Node, why: str, corrupt: bool = False) -> None:
        if corrupt:
            sn.disk.corrupt_unsynced_tail_and_crash(self.rng)
        else:
            sn.disk.crash(self.rng)
        sn.node = None
        self._wake()
        sn.down_until = self.tick_no + self.rng.randint(3, 40)
        self.stats.crashes += 1
        self.log(f"node {sn.id} crashed ({why})")

    def _wipe(self, sn: _Node) -> None:
        """The node loses its disk: it restarts with what a blank broker bootstraps (the group's original
        voters, or nothing for a node added later) and recovering."""
        self._crash(sn, "disk wiped")
        fresh = MemoryStorage.bootstrap(self.initial_conf) if sn.id <= self.p.n_voters else MemoryStorage()
        sn.disk = Disk(fresh)
        sn.rejoining = True
        self.stats.wipes += 1

    def _rejoin_driver(self, ld: _Node) -> None:
        """What the broker's RejoinDriver does on a leader: demote a recovering voter, then promote it once
        it has left recovery and caught up; one membership change at a time."""
        assert ld.node is not None
        r = ld.node.raft
        if r.pending_conf_index > r.log.applied:
            return
        change: tuple[ConfChangeType, int] | None = None
        for i, pr in sorted(r.prs.items()):
            if i != ld.id and pr.recovering and not pr.is_learner:
                change = (ConfChangeType.ADD_LEARNER, i)
                break
        else:
            for i, pr in sorted(r.prs.items()):
                if pr.is_learner and i in self.demoted and not pr.recovering and pr.match >= r.log.committed:
                    change = (ConfChangeType.ADD_VOTER, i)
                    break
        if change is None:
            return
        self._wake()
        try:
            ld.node.propose_conf_change(ConfChange((change,)))
        except (ProposalDropped, NotLeader, ValueError):
            return
        if change[0] == ConfChangeType.ADD_LEARNER:
            self.demoted.add(change[1])
        else:
            self.demoted.discard(change[1])
        self.log(f"leader {ld.id} rejoin driver proposes {change[0].name} {change[1]}")

    # --- checks ---------------------------------------------------------------------------------------
    def _check_leader(self, sn: _Node) -> None:
        node = sn.node
        assert node is not None
        r = node.raft
        if r.role != Role.LEADER:
            return
        key = (r.term, sn.id)
        if key in self.p.seen_leaders:
            return
        other = self.leader_of_term.setdefault(r.term, sn.id)
        if other != sn.id:
            raise Violation("election safety", f"nodes {other} and {sn.id} both lead term {r.term}")
        self.p.seen_leaders.add(key)
        self.stats.leaders += 1
        self.log(f"node {sn.id} became leader of term {r.term}")
        first = r.log.first_index()
        for idx, (term, _) in self.applied_at.items():
            if idx >= first and r.log.term(idx) != term:
                raise Violation(
                    "leader completeness",
                    f"leader {sn.id} (term {r.term}) has term {r.log.term(idx)} at committed index {idx}, "
                    f"expected {term}",
                )

    def _check_entries(self, sn: _Node, rd: Ready) -> None:
        st = sn.disk.live
        for e in rd.entries:
            try:
                prev = st.term(e.index - 1)
            except Compacted:
                prev = -1
            sig = (int(e.type), zlib.crc32(e.data), prev)
            old = self.log_sigs.setdefault((e.index, e.term), sig)
            if old != sig and not (old[:2] == sig[:2] and -1 in (old[2], sig[2])):
                raise Violation(
                    "log matching",
                    f"node {sn.id} holds another entry at (index {e.index}, term {e.term}): {sig} vs {old}",
                )

    def _apply_entry_check(self, sn: _Node, index: int, term: int) -> None:
        got = self.applied_at.setdefault(index, (term, sn.sm_hash))
        if got != (term, sn.sm_hash):
            raise Violation(
                "state machine safety",
                f"node {sn.id} applied (term {term}, hash {sn.sm_hash}) at index {index}, others {got}",
            )

    # --- the Ready loop -------------------------------------------------------------------------------
    def _process(self, sn: _Node) -> None:
        for _ in range(MAX_READY_LOOPS):
            node = sn.node
            if node is None or not node.has_ready():
                return
            rd = node.ready()
            disk = sn.disk
            if rd.snapshot is not None:
                disk.write_snapshot(rd.snapshot)
            if rd.entries:
                disk.write_entries(rd.entries)
                self._check_entries(sn, rd)
            if rd.hard_state is not None:
                hs = rd.hard_state
                if hs.term < sn.last_term or hs.commit < sn.last_commit:
                    raise Violation(
                        "monotonic term/commit", f"node {sn.id}: ({sn.last_term}, {sn.last_commit}) -> {hs}"
                    )
                sn.last_term, sn.last_commit = hs.term, hs.commit
                disk.write_hard_state(hs)
            if rd.must_sync:
                if not self.healed and self.rng.random() < self.p.persist_crash_rate:
                    self._crash(sn, "before fsync")
                    return
                disk.fsync()
            for m in rd.messages:
                self._send(m)
            if rd.snapshot is not None:
                idx, h = _parse_snap(rd.snapshot)
                got = self.applied_at.get(idx)
                if got is not None and got[1] != h:
                    raise Violation(
                        "snapshot safety", f"node {sn.id} restored hash {h} at {idx}, applied {got}"
                    )
                sn.sm_index, sn.sm_hash = idx, h
            for e in rd.committed_entries:
                if e.index != sn.sm_index + 1:
                    raise Violation("apply order", f"node {sn.id} applied {e.index} after {sn.sm_index}")
                sn.sm_hash = zlib.crc32(e.data, sn.sm_hash ^ e.index)
                sn.sm_index = e.index
                self._apply_entry_check(sn, e.index, e.term)
                if e.type == EntryType.CONF_CHANGE:
                    cs = node.apply_conf_change(ConfChange.decode(e.data))
                    self.stats.conf_changes += 1
                    self.log(f"node {sn.id} applied conf change at {e.index}: {cs}")
                    # A snapshot at every membership change: a node added later gets its config from it.
                    if e.index > disk.live.snapshot().meta.index:
                        snap = Snapshot(SnapshotMeta(e.index, e.term, cs), _snap_data(e.index, sn.sm_hash))
                        disk.create_snapshot(snap, compact_to=0)
                elif e.data and self.pending_props.get(e.data) == sn.id and node.raft.role == Role.LEADER:
                    del self.pending_props[e.data]
                    self.acked[e.index] = (e.term, e.data)
                    self.max_acked = max(self.max_acked, e.index)
                    self.stats.acked += 1
                    if e.data == self.live_probe:
                        self.live_ok = True
                        self.stats.heal_to_commit_ticks = self.tick_no - self.heal_tick
            for rs in rd.read_states:
                floor = self.reads.pop(rs.context, None)
                if floor is None:
                    continue
                if rs.index < floor:
                    raise Violation(
                        "linearizable read", f"node {sn.id} read index {rs.index} < acked {floor}"
                    )
                self.stats.reads += 1
            node.advance(rd)
            if sn.rejoining and not node.raft.recovering:
                sn.rejoining = False
                self.log(f"node {sn.id} recovered from its wiped disk")
            self._check_leader(sn)
        raise Violation("ready loop", f"node {sn.id} kept producing Readies")

    # --- network --------------------------------------------------------------------------------------
    def _send(self, m: Message) -> None:
        rng = self.rng
        if m.to not in self.nodes:
            return
        copies = 2 if (self.p.dup and rng.random() < self.p.dup) else 1
        for _ in range(copies):
            if (m.frm, m.to) in self.cut:
                self._dropped(m, unreachable=True)
                continue
            if self.p.loss and rng.random() < self.p.loss:
                self._dropped(m)
                continue
            self.seq += 1
            heapq.heappush(self.net, (self.now + rng.randint(1, self.p.max_delay), self.seq, m))

    def _dropped(self, m: Message, unreachable: bool = False) -> None:
        src = self.nodes[m.frm].node
        if src is None:
            return
        if m.type == MessageType.SNAPSHOT:
            src.report_snapshot(m.to, False)
        elif unreachable and m.type == MessageType.APPEND:
            # What a transport does when it cannot reach the peer at all (not for random loss).
            src.report_unreachable(m.to)

    def _deliver_due(self) -> None:
        net = self.net
        while net and net[0][0] <= self.now:
            _, _, m = heapq.heappop(net)
            dst = self.nodes[m.to]
            if dst.node is None or (m.frm, m.to) in self.cut:
                self._dropped(m, unreachable=True)
                continue
            try:
                dst.node.step(m)
            except ValueError as e:
                raise Violation(
                    "valid messages", f"node {m.to} rejected {m.type.name} from {m.frm}: {e}"
                ) from e
            self.stats.delivered += 1
            self._check_leader(dst)
            if m.type == MessageType.SNAPSHOT:
                self.stats.snapshots_sent += 1
                src = self.nodes[m.frm].node
                if src is not None:
                    src.report_snapshot(m.to, True)

    # --- faults and the client ------------------------------------------------------------------------
    def _faults(self) -> None:
        rng, p = self.rng, self.p
        live = [sn for sn in self.nodes.values() if sn.node is not None]
        down = len(self.nodes) - len(live)
        for sn in live:
            if down < 2 and rng.random() < p.crash_rate:
                if rng.random() < 0.2 and sn.disk.pending:
                    self._crash(sn, "corrupted unsynced tail", corrupt=True)
                else:
                    self._crash(sn, "random")
                down += 1
        # One wiped disk at a time, and never while two nodes are down: Raft tolerates a minority of
        # failures, and a wiped disk counts as one until its node is a voter again (a second wipe while
        # the first is a demoted learner can leave two voters with one recovering: safe, but stuck).
        rejoin_open = self.demoted or any(n.rejoining for n in self.nodes.values())
        if self.wipe_rate and down < 2 and not rejoin_open:
            voters = [
                sn
                for sn in self.nodes.values()
                if sn.node is not None and sn.id in sn.node.raft.voters.voters
            ]
            if voters and rng.random() < self.wipe_rate:
                self._wipe(rng.choice(voters))
                down += 1
        for sn in self.nodes.values():
            if sn.node is None and self.tick_no >= sn.down_until:
                self._restart(sn)
        if self.cut and self.tick_no >= self.partition_until:
            self.cut.clear()
            self._wake()
            self.log("partition healed")
        if not self.cut and rng.random() < p.partition_rate:
            ids = list(self.nodes)
            kind = rng.randrange(3)
            if kind == 0:  # symmetric split
                rng.shuffle(ids)
                k = rng.randint(1, len(ids) - 1)
                a, b = ids[:k], ids[k:]
                self.cut = {(x, y) for x in a for y in b} | {(y, x) for x in a for y in b}
            elif kind == 1:  # isolate one node
                x = rng.choice(ids)
                self.cut = {(x, y) for y in ids if y != x} | {(y, x) for y in ids if y != x}
            else:  # asymmetric: some one-way links fail
                self.cut = {(x, y) for x in ids for y in ids if x != y and rng.random() < 0.3}
            self.partition_until = self.tick_no + rng.randint(5, 60)
            self._wake()
            self.log(f"partition {sorted(self.cut)} until t{self.partition_until}")

    def _maybe_quiesce(self) -> None:
        """Model the runtime's idle-group quiescence: stop ticking while the leader says it may."""
        ld = self._leader()
        if ld is not None and ld.node is not None and ld.node.can_quiesce() and self.rng.random() < 0.2:
            self.quiesced = True
            self.stats.quiesced += 1
            self.log(f"group quiesced (leader {ld.id})")

    def _wake(self) -> None:
        if self.quiesced:
            self.quiesced = False
            for sn in self.nodes.values():
                if sn.node is not None:
                    sn.node.wake()
            self.log("group woken")

    def _restart(self, sn: _Node) -> None:
        self.stats.torn = sum(n.disk.torn_detected for n in self.nodes.values())
        self._start(sn)
        self._wake()
        self.log(f"node {sn.id} restarted")

    def _leader(self) -> _Node | None:
        best: _Node | None = None
        best_term = -1
        for sn in self.nodes.values():
            node = sn.node
            if node is not None and node.raft.role == Role.LEADER and node.raft.term > best_term:
                best, best_term = sn, node.raft.term
        return best

    def _propose(self, sn: _Node, data: bytes) -> bool:
        assert sn.node is not None
        self._wake()
        try:
            sn.node.propose(data)
        except (NotLeader, ProposalDropped):
            return False
        self.pending_props[data] = sn.id
        return True

    def _client(self) -> None:
        rng = self.rng
        ld = self._leader()
        if ld is not None and not self.healed and rng.random() < self.p.propose_rate:
            for _ in range(rng.randint(1, 3)):
                self.prop_seq += 1
                self._propose(ld, b"v%d" % self.prop_seq)
        if rng.random() < 0.1:
            sn = rng.choice(list(self.nodes.values()))
            if sn.node is not None:
                self.prop_seq += 1
                ctx = b"r%d" % self.prop_seq
                self._wake()
                try:
                    sn.node.read_index(ctx)
                    self.reads[ctx] = self.max_acked
                except NotLeader:
                    pass
        if ld is not None and self.wipe_rate and rng.random() < 0.2:
            self._rejoin_driver(ld)
        if ld is None or self.healed:
            return
        assert ld.node is not None
        if rng.random() < 0.02:
            self._wake()
            self._conf_change(ld)
        if rng.random() < 0.01:
            self._wake()
            cs = ld.node.raft.conf_state()
            target = rng.choice(cs.voters)
            try:
                ld.node.transfer_leader(target)
                self.stats.transfers += 1
                self.log(f"leader {ld.id} transfers to {target}")
            except (NotLeader, ValueError):
                pass

    def _conf_change(self, ld: _Node) -> None:
        assert ld.node is not None
        rng = self.rng
        cs = ld.node.raft.conf_state()
        members = set(cs.voters) | set(cs.learners)
        spares = [i for i in self.nodes if i not in members and i not in self.removed]
        ready = [i for i in cs.learners if not ld.node.raft.prs[i].recovering]
        if ready:
            change = (ConfChangeType.ADD_VOTER, rng.choice(ready))
        elif cs.learners:
            return  # a learner still rebuilding a wiped disk is promoted by the rejoin driver, not here
        elif spares and len(cs.voters) < 5 and rng.random() < 0.6:
            change = (ConfChangeType.ADD_LEARNER, rng.choice(spares))
        elif len(cs.voters) > 3:
            change = (ConfChangeType.REMOVE, rng.choice(cs.voters))
        else:
            return
        try:
            ld.node.propose_conf_change(ConfChange((change,)))
        except (ProposalDropped, NotLeader):
            return
        if change[0] == ConfChangeType.REMOVE:
            self.removed.add(change[1])
        self.log(f"leader {ld.id} proposes {change[0].name} {change[1]}")

    def _compact(self) -> None:
        rng = self.rng
        for sn in self.nodes.values():
            if sn.node is None or rng.random() > 0.02:
                continue
            st = sn.disk.live
            if sn.sm_index - st.first_index() < 10 or sn.sm_index <= st.snapshot().meta.index:
                continue
            cs = sn.node.raft.applied_conf
            snap = Snapshot(
                SnapshotMeta(sn.sm_index, st.term(sn.sm_index), cs), _snap_data(sn.sm_index, sn.sm_hash)
            )
            sn.disk.create_snapshot(snap, compact_to=sn.sm_index - rng.randint(0, 5))
            self.log(f"node {sn.id} compacted to {sn.sm_index}")

    # --- main loop ------------------------------------------------------------------------------------
    def _heal(self) -> None:
        self.healed = True
        self.heal_tick = self.tick_no
        self.cut.clear()
        self.p.loss = 0.0
        self.p.dup = 0.0
        for sn in self.nodes.values():
            if sn.node is None:
                self._restart(sn)
        self.log("all faults healed")

    def _liveness(self) -> None:
        if self.live_ok:
            return
        if self.tick_no - self.heal_tick > LIVENESS_TICKS:
            ld = self._leader()
            raise Violation(
                "liveness",
                f"no proposal committed within {LIVENESS_TICKS} ticks of healing "
                f"(leader: {ld.id if ld else None})",
            )
        ld = self._leader()
        if ld is None or (
            self.live_probe is not None and self.tick_no - self.live_probe_at < 2 * ELECTION_TICK
        ):
            return
        self.prop_seq += 1
        probe = b"live%d" % self.prop_seq
        if self._propose(ld, probe):
            self.live_probe = probe
            self.live_probe_at = self.tick_no

    def _final_checks(self) -> None:
        # The live node that knows the most committed entries (the leader may have just changed).
        best = max(
            (sn for sn in self.nodes.values() if sn.node is not None),
            key=lambda sn: sn.node.raft.log.committed if sn.node is not None else -1,
        )
        assert best.node is not None
        log = best.node.raft.log
        for idx, (term, _) in self.acked.items():
            if idx > log.committed:
                raise Violation("durability", f"acked index {idx} is past every node's commit")
            t = log.term(idx)
            if idx >= log.first_index() and t != term:
                raise Violation("durability", f"acked ({idx}, {term}) lost: node {best.id} has term {t}")

    def run(self) -> Stats:
        sims = list(self.nodes.values())
        total = self.p.fault_ticks + LIVENESS_TICKS + 2
        for tick in range(total):
            self.tick_no = tick
            if tick < self.p.fault_ticks:
                self._faults()
                self._compact()
            elif not self.healed:
                self._heal()
            else:
                self._liveness()
                if self.live_ok:
                    break
            self._client()
            order = sims[:]
            self.rng.shuffle(order)
            if not self.quiesced:
                for sn in order:
                    if sn.node is not None:
                        sn.node.tick()
                        self._check_leader(sn)
            for _ in range(ROUNDS_PER_TICK):
                for sn in order:
                    self._process(sn)
                self._deliver_due()
                self.now += 1
            if not self.quiesced and not self.healed:
                self._maybe_quiesce()
        self.stats.ticks = self.tick_no
        if not self.live_ok:
            self._liveness()
            raise Violation("liveness", "run ended before the liveness probe committed")
        self._final_checks()
        return self.stats


def run_seed(
    seed: int,
    *,
    fault_ticks: int = 200,
    node_factory: NodeFactory = RawNode,
    verbose: bool = False,
    wipes: bool = False,
) -> Stats:
    """Run one seed; raises Violation on any broken invariant (core assertion failures included)."""
    world = World(seed, fault_ticks=fault_ticks, node_factory=node_factory, verbose=verbose, wipes=wipes)
    try:
        return world.run()
    except AssertionError as e:
        raise Violation("core assertion", str(e) or repr(e)) from e
