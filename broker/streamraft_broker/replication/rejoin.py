"""Rejoin after a lost disk: a broker restarted on an EMPTY data directory (same node id) rebuilds its Raft
groups from their leaders and becomes a voter again only once it has caught up.

The hazard. A Raft voter's disk holds two promises: the entries it acknowledged (a commit counted them)
and the vote it cast in its current term. A voter that comes back blank has forgotten both. Counting it
as a voter again straight away can lose committed data: with replicas {A, B, C}, an entry committed by A
and B, B wiped, A down, C lagging: B (empty log) grants C its vote and C becomes leader without the entry.
It can also elect two leaders in one term (B voted for X in term T, forgets, votes for Y in T), and its
acknowledgement of a stale leader's append can count toward a commit that a newer leader (elected with
B's forgotten vote in a later term) overwrites.

The design, in three parts.

1. Detection, before any Raft group exists. ``DATA/raft/incarnation`` is missing exactly when the disk
   is blank (``membership.load_incarnation``). A blank broker first writes ``DATA/raft/rejoin.json``
   (state ``undecided``, fsynced), then the incarnation file, so a crash in between cannot forget that
   the disk was blank. While the marker says ``undecided`` or ``rejoin``, every Raft group the broker
   creates (controller group at start, partition groups as the controller log is replayed, groups joined
   through moves) starts *recovering* (``Config.recovering`` in the Raft core), except those the marker
   lists as done and those created by a controller entry applied after this broker's controller group
   left recovery (that entry follows its demotion there, hence the wipe: such a group never existed on
   the lost disk; a topic created during a rejoin thus needs no demotion). The broker also registers
   with its new incarnation id (``membership``), so the controller log records that this node id came
   back on a new disk.

2. Brand-new cluster or rejoin? At first start every broker of a new cluster is blank, and if all of them
   refused to vote no controller could ever be elected. Each broker advertises in every transport envelope
   whether it is *blank* (started blank and has not yet joined a formed cluster). An undecided broker
   decides ``rejoin`` as soon as any peer says it is not blank (that peer has Raft state: the cluster
   exists), and decides *fresh* once a majority of the controller voters (itself included) are known to be
   blank (then at most a minority could hold any committed entry, and a majority of lost disks is beyond
   what Raft tolerates anyway). Fresh ends recovery of every group and deletes the marker; the broker stops
   saying blank once its controller group has committed an entry (a cluster has formed). Until one of the
   two happens it waits: it neither votes nor counts, which is the safe side. A broker that decided
   ``rejoin`` but, once its controller group has recovered, finds no registration of an earlier
   incarnation of its node id in the controller log is in its first life (a member of a new cluster that
   started after the others formed it): it ends the recovery of its other groups at once. The gap this
   leaves: a broker whose disk is lost within its first seconds, after it voted or acknowledged as a
   member but before its first registration committed, is taken for a first life.

3. The window, the demotion and the promotion (Raft core plus ``RejoinDriver``). A recovering node
   never campaigns, rejects every (pre-)vote request, and marks its append and heartbeat responses
   ``recovering``. A leader uses such a response only to replicate (match/next), never toward a commit,
   check-quorum or read-index quorum, and does not quiesce while a member is recovering. So from the
   first instant of the process the blank node cannot elect anyone or help commit anything, with or
   without a controller. The group's leader sees a recovering *voter* and demotes it to learner (an
   ADD_LEARNER configuration change naming a voter, committed by the other voters alone): in the controller
   group at once, in a partition group only once the controller log shows the node registered again with
   a new incarnation id (a disk really lost). A new cluster's member that started late is recovering too,
   but in its first life; demoting it would leave the group two voters until a promotion only its leader
   can make, so a leader killed in that window stalled the group. It ends those groups' recovery itself.
   After a demotion, the leader's appends carry ``learner_confirmed`` (the receiver is a learner in the
   leader's committed configuration); the node leaves the recovering state once it has applied past the
   commit index of such an append and its applied configuration still has it as a learner. Its
   responses are then unmarked, and once its match index reaches the leader's commit index the leader
   promotes it back (ADD_VOTER), if it is one of the intended replicas (partition: the topic's replicas;
   controller group: the controller voters; a partition under a move is promoted by ``reassign.Mover``).

Safety argument. Before the demotion commits, the blank node contributes nothing to any quorum, so every
commit and election happens among the other voters, exactly as if it were down. The demotion entry D is
committed by all the *other* voters' majority in term t_D: each of them accepted term t_D, so none held a
term above t_D then, hence every term in which the node voted before the wipe is <= t_D (its candidate
held that term). After D the node is a learner: its vote is never counted and its acknowledgements are not
in any majority. It leaves the recovering state only after applying past the leader's commit index at a
point where the leader's committed configuration has it as a learner, so its log then holds every entry
committed before the wipe (they are all in that leader's log, by leader completeness, and precede D).
The promotion P is a later committed change; from then on the node's log contains D (a term-t_D entry),
so it grants no vote to a candidate of term <= t_D with an older log, and it is a normal Raft voter whose
log and term are at least as recent as at any point it could have promised before the wipe. Detection
(part 2) is what keeps this from deadlocking a brand-new cluster; its one assumption is that a majority of
controller voters never lose their disks at once.

State and admin. ``GET /admin/rejoin`` (metrics port) answers ``{"node": 2, "state": "rejoin",
"recovering": [groups], "groups": {"1": {"voters": [...], "learners": [...], "recovering": false}}}``;
``state`` is ``none`` (started on its own disk), ``undecided``, ``fresh``, ``rejoin`` (rebuilding) or
``done`` (every group it hosts is recovered; the marker is deleted).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import TYPE_CHECKING, Any

from streamraft_consensus.runtime.errors import ConsensusError

from streamraft_broker.admin import AdminRequest, AdminResponse
from streamraft_broker.controller.state import CONTROLLER_GROUP
from streamraft_broker.log.fileio import atomic_write

if TYPE_CHECKING:
    from streamraft_broker.replication.service import ReplicationService

log = logging.getLogger(__name__)

MARKER = "rejoin.json"
DECIDE_POLL_S = 0.05
WATCH_POLL_S = 0.2
DRIVE_INTERVAL_S = 0.3
STEP_TIMEOUT_S = 5.0

NONE = "none"
UNDECIDED = "undecided"
FRESH = "fresh"
REJOIN = "rejoin"
DONE = "done"


class Rejoin:
    """This broker's side: detection, the recovering state of its groups, the marker file."""

    def __init__(self, service: ReplicationService) -> None:
        self.service = service
        self.path = service.raft_dir / MARKER
        self.done: set[int] = set()
        self.state = NONE
        if self.path.exists():
            data = json.loads(self.path.read_text())
            self.state = str(data["state"])
            self.done = {int(g) for g in data.get("done", [])}
        elif not (service.raft_dir / "incarnation").exists():
            # Written before the incarnation file: a crash in between must not forget the disk was blank.
            service.raft_dir.mkdir(parents=True, exist_ok=True)
            self.state = UNDECIDED
            self._save()
        service.runtime.recover_group = self._recover_group
        service.runtime.transport.blank = self.state == UNDECIDED
        if self.state != NONE:
            log.info(
                "event=rejoin_state node=%d state=%s done=%s", service.node_id, self.state, sorted(self.done)
            )

    def note_new_group(self, gid: int) -> None:
        """The controller log just created ``gid`` with this broker as a replica. If this broker's own
        controller group has already left recovery, that entry comes after its demotion there, hence after
        the wipe: the group never existed on the lost disk, so it has no vote or ack to forget."""
        if self.state == REJOIN and not self.service.runtime.recovering(CONTROLLER_GROUP):
            self.done.add(gid)

    def _recover_group(self, gid: int) -> bool:
        return self.state in (UNDECIDED, REJOIN) and gid not in self.done

    def _save(self) -> None:
        atomic_write(self.path, json.dumps({"state": self.state, "done": sorted(self.done)}).encode())

    async def run(self) -> None:
        if self.state == UNDECIDED:
            await self._decide()
        if self.state == FRESH:
            await self._stop_saying_blank()
        elif self.state == REJOIN:
            await self._watch()

    async def _decide(self) -> None:
        service = self.service
        transport = service.runtime.transport
        me = service.node_id
        voters = service.controller_voters
        peers = [n for n in sorted(service.members) if n != me]
        while True:
            if any(transport.peer_blank(p) is False for p in peers):
                self.state = REJOIN
                transport.blank = False
                await asyncio.to_thread(self._save)
                log.info("event=rejoin_decided node=%d state=rejoin", me)
                return
            blank = {p for p in voters if p == me or transport.peer_blank(p) is True}
            if len(blank) * 2 > len(voters):
                self.state = FRESH
                service.runtime.recover_group = _never
                for gid in service.runtime.groups():
                    service.runtime.end_recovery(gid)
                await asyncio.to_thread(self.path.unlink, missing_ok=True)
                log.info("event=rejoin_decided node=%d state=fresh blank_voters=%s", me, sorted(blank))
                return
            await asyncio.sleep(DECIDE_POLL_S)

    async def _stop_saying_blank(self) -> None:
        runtime = self.service.runtime
        # Polls: the runtime has no "committed" event; a brand-new cluster forms within seconds.
        while runtime.status(CONTROLLER_GROUP).hard_state.commit == 0:  # noqa: ASYNC110
            await asyncio.sleep(DECIDE_POLL_S)
        runtime.transport.blank = False

    def _wanted_groups(self) -> set[int]:
        service = self.service
        me = service.node_id
        wanted = {CONTROLLER_GROUP}
        for meta in service.state.topics.values():
            for i, replicas in enumerate(meta.replicas):
                if me in replicas or me in meta.targets.get(i, ()):
                    wanted.add(meta.group(i))
        return wanted

    def _first_life(self) -> bool:
        """Once the controller group has left recovery (so this broker has applied every registration
        committed before its wipe): no earlier incarnation of this node id ever registered."""
        service = self.service
        reg = service.state.brokers.get(service.node_id)
        if reg is None:
            return True
        return reg.incarnation == service.membership.incarnation and reg.previous_incarnations == 0

    async def _watch(self) -> None:
        runtime = self.service.runtime
        while True:
            if CONTROLLER_GROUP in self.done and self._first_life():
                # A broker of a brand-new cluster that started after the others had formed it: nothing of
                # it was on any disk, so its remaining groups need no demotion.
                self.state = DONE
                runtime.recover_group = _never
                for gid in runtime.groups():
                    runtime.end_recovery(gid)
                await asyncio.to_thread(self.path.unlink, missing_ok=True)
                log.info("event=rejoin_done node=%d first_life=true", self.service.node_id)
                return
            hosted = set(runtime.groups())
            newly = {g for g in hosted - self.done if not runtime.recovering(g)}
            if newly:
                self.done |= newly
                await asyncio.to_thread(self._save)
                log.info("event=rejoin_progress node=%d recovered=%s", self.service.node_id, sorted(newly))
            # Done once the controller group is recovered (so this broker has replayed the controller log
            # past its own demotion) and every group it should host is hosted and recovered.
            if CONTROLLER_GROUP in self.done and self._wanted_groups() <= self.done & hosted:
                self.state = DONE
                runtime.recover_group = _never
                await asyncio.to_thread(self.path.unlink, missing_ok=True)
                log.info("event=rejoin_done node=%d groups=%d", self.service.node_id, len(self.done))
                return
            await asyncio.sleep(WATCH_POLL_S)

    def describe(self) -> dict[str, Any]:
        runtime = self.service.runtime
        groups: dict[str, Any] = {}
        recovering: list[int] = []
        for gid in sorted(runtime.groups()):
            cs = runtime.conf_state(gid)
            rec = runtime.recovering(gid)
            if rec:
                recovering.append(gid)
            groups[str(gid)] = {"voters": list(cs.voters), "learners": list(cs.learners), "recovering": rec}
        return {"node": self.service.node_id, "state": self.state, "recovering": recovering, "groups": groups}

    def install_routes(self, metrics: Any) -> None:
        metrics.admin.route("GET", "/admin/rejoin", self._get, replace=True)

    async def _get(self, _request: AdminRequest) -> AdminResponse:
        return AdminResponse(self.describe())


def _never(_gid: int) -> bool:
    return False


class RejoinDriver:
    """Runs on every broker; for each group it leads, demotes recovering voters and promotes recovered
    learners that should be voters, one membership change at a time."""

    def __init__(self, service: ReplicationService) -> None:
        self.service = service

    async def run(self) -> None:
        runtime = self.service.runtime
        while True:
            await asyncio.sleep(DRIVE_INTERVAL_S)
            # Most rounds find nothing to do in any group: a synchronous check per group keeps a round over
            # 1,000 idle groups cheap (a coroutine per group doubled the idle CPU of such a broker).
            for gid in [g for g in runtime.groups() if runtime.membership_pending(g)]:
                try:
                    await self._step(gid)
                except (ConsensusError, TimeoutError, ValueError, KeyError) as exc:
                    # The next round retries from the group's configuration as it then stands.
                    log.info("event=rejoin_retry group=%d reason=%r", gid, exc)

    def _intended_voter(self, gid: int, node: int) -> bool:
        service = self.service
        if gid == CONTROLLER_GROUP:
            return node in service.controller_voters
        where = service.partition_of_group(gid)
        if where is None:
            return False
        meta = service.state.topics.get(where[0])
        if meta is None or where[1] in meta.targets:
            return False  # a move in progress: reassign.Mover promotes its learners
        return node in meta.replicas[where[1]]

    def _lost_a_disk(self, node: int) -> bool:
        """``node`` registered again with a new incarnation id: an earlier life's data is gone."""
        reg = self.service.state.brokers.get(node)
        return reg is not None and reg.previous_incarnations > 0

    async def _step(self, gid: int) -> None:
        runtime = self.service.runtime
        if gid not in runtime.groups() or not runtime.is_leader(gid):
            return
        progress = runtime.leader_progress(gid)
        if progress is None:
            return
        conf = runtime.conf_state(gid)
        for node in sorted(progress.recovering & set(conf.voters)):
            if gid != CONTROLLER_GROUP and not self._lost_a_disk(node):
                # A blank broker with no earlier life (a new cluster's member that started late) ends its
                # partitions' recovery itself once its controller group has recovered. Demoting it would
                # leave the group two voters until a promotion only the leader can make: a leader killed
                # in that window stalls the group until it returns.
                continue
            log.info("event=rejoin_demote group=%d node=%d", gid, node)
            await asyncio.wait_for(runtime.add_learner(gid, node), STEP_TIMEOUT_S)
            return
        for node in sorted(conf.learners):
            if node in progress.recovering or not self._intended_voter(gid, node):
                continue
            if progress.match.get(node, 0) >= progress.commit:
                log.info("event=rejoin_promote group=%d node=%d", gid, node)
                with contextlib.suppress(ValueError):
                    await asyncio.wait_for(runtime.promote(gid, node), STEP_TIMEOUT_S)
                return
