"""Replica moves: a partition's Raft group is moved to target replicas one membership change at a time.

1. The controller leader records the target (Kafka AlterPartitionReassignments, API 45, or a decommission)
   as a ``reassign`` command in the controller log; ListPartitionReassignments (API 46) lists targets.
2. Every broker named in a target starts hosting the partition's group as soon as it applies the command
   (``ReplicationService._ensure_hosting``): a replica new to the group bootstraps from the group's
   original configuration plus itself as a learner, so replaying the group's log from index 1 rebuilds
   the true configuration (no Raft snapshots are taken, so the whole log is still there).
3. The partition's Raft leader drives the move (``Mover``), one step at a time: add a missing target as a
   learner; promote it once its match index has reached the leader's commit index; when every target is
   a voter, remove the replicas not in the target (the leader first hands leadership to a target replica
   if it is leaving itself). Each step is a committed Raft configuration change, so a restarted or new
   leader sees where the move stands and carries on from there.
4. When the group's voters are exactly the target, the leader reports them to the controller (a Kafka
   AlterPartition request, API 56, whose ``new_isr`` is the final replica set, or a direct proposal when
   it leads the controller too); the controller records ``reassigned`` and Metadata shows the new
   replicas. Brokers no longer named stop hosting the group and delete its data.

Cancelling (a null replica list) sets the target back to the current replicas, so the group is moved back
to where it was. Targets must be odd-sized, without duplicates, on registered active brokers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING

from kio.schema.alter_partition.v2 import request as ap_req
from kio.schema.types import BrokerId
from kio.static.primitive import i32, i64
from streamraft_consensus.runtime.errors import ConsensusError

from streamraft_broker.controller.commands import Reassign, Reassigned, encode
from streamraft_broker.controller.state import (
    CONTROLLER_GROUP,
    TopicMeta,
)
from streamraft_broker.replication import broker_proof, membership_rpc

if TYPE_CHECKING:
    from streamraft_broker.replication.service import ReplicationService

log = logging.getLogger(__name__)

STEP_INTERVAL_S = 0.3
STEP_TIMEOUT_S = 5.0
REPORT_INTERVAL_S = 1.0
MAX_REPLICAS = 15

NONE = 0
UNKNOWN_TOPIC_OR_PARTITION = 3
INVALID_REPLICA_ASSIGNMENT = 39
NOT_CONTROLLER = 41
NO_REASSIGNMENT_IN_PROGRESS = 85


class MoveError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def validate_target(service: ReplicationService, target: list[int]) -> None:
    if not 1 <= len(target) <= MAX_REPLICAS or len(target) % 2 == 0:
        raise MoveError(INVALID_REPLICA_ASSIGNMENT, f"{len(target)} replicas: the count must be odd, 1..15")
    if len(set(target)) != len(target):
        raise MoveError(INVALID_REPLICA_ASSIGNMENT, f"replicas {target} name a broker twice")
    allowed = service.placement_brokers()
    unknown = [b for b in target if b not in allowed]
    if unknown:
        raise MoveError(
            INVALID_REPLICA_ASSIGNMENT, f"brokers {unknown} are not registered active brokers {allowed}"
        )


async def request_move(
    service: ReplicationService, topic: str, partition: int, target: list[int] | None
) -> None:
    """Controller leader: record a move of ``topic``-``partition`` to ``target`` (None cancels)."""
    if not service.runtime.is_leader(CONTROLLER_GROUP):
        raise MoveError(NOT_CONTROLLER, f"node {service.node_id} is not the controller")
    meta = service.state.topics.get(topic)
    if meta is None or not 0 <= partition < len(meta.replicas):
        raise MoveError(UNKNOWN_TOPIC_OR_PARTITION, f"{topic}-{partition} does not exist")
    if target is None:
        if partition not in meta.targets:
            raise MoveError(NO_REASSIGNMENT_IN_PROGRESS, f"{topic}-{partition} is not being moved")
        # Moving back to the current replicas undoes whatever membership changes the move already made.
        target = list(meta.replicas[partition])
    else:
        validate_target(service, target)
        if partition not in meta.targets and target == meta.replicas[partition]:
            return
    await propose(service, encode(Reassign(topic, partition, None if target is None else tuple(target))))


async def propose(service: ReplicationService, command: bytes) -> None:
    try:
        await asyncio.wait_for(service.runtime.propose(CONTROLLER_GROUP, command), STEP_TIMEOUT_S)
    except (ConsensusError, TimeoutError) as exc:
        raise MoveError(NOT_CONTROLLER, f"controller proposal failed: {exc!r}") from None


async def finish_move(service: ReplicationService, topic: str, partition: int, voters: list[int]) -> None:
    """Controller leader: a partition leader reports its group's voters; record them as the partition's
    replicas when they are its target."""
    if not service.runtime.is_leader(CONTROLLER_GROUP):
        raise MoveError(NOT_CONTROLLER, f"node {service.node_id} is not the controller")
    meta = service.state.topics.get(topic)
    if meta is None or not 0 <= partition < len(meta.replicas):
        raise MoveError(UNKNOWN_TOPIC_OR_PARTITION, f"{topic}-{partition} does not exist")
    target = meta.targets.get(partition)
    if target is None or sorted(target) != sorted(voters):
        raise MoveError(
            NO_REASSIGNMENT_IN_PROGRESS, f"{topic}-{partition}: {voters} is not its target {target}"
        )
    await propose(service, encode(Reassigned(topic, partition, tuple(target))))


class Mover:
    """Runs on every broker; acts on the partitions whose Raft group this broker leads."""

    def __init__(self, service: ReplicationService) -> None:
        self.service = service
        self._reported: dict[tuple[str, int], float] = {}

    async def run(self) -> None:
        while True:
            await asyncio.sleep(STEP_INTERVAL_S)
            for meta in list(self.service.state.topics.values()):
                for partition, target in list(meta.targets.items()):
                    try:
                        await self._step(meta, partition, list(target))
                    except (ConsensusError, TimeoutError, ValueError, MoveError) as exc:
                        # The next round retries from the group's committed configuration.
                        log.info(
                            "event=move_retry topic=%s partition=%d reason=%r", meta.name, partition, exc
                        )

    async def _step(self, meta: TopicMeta, partition: int, target: list[int]) -> None:
        runtime = self.service.runtime
        gid = meta.group(partition)
        if gid not in runtime.groups() or not runtime.is_leader(gid):
            return
        conf = runtime.conf_state(gid)
        voters, learners = set(conf.voters), set(conf.learners)
        where = f"topic={meta.name} partition={partition} group={gid}"
        for node in target:
            if node in voters:
                continue
            if node not in learners:
                log.info("event=move_add_learner %s node=%d", where, node)
                await asyncio.wait_for(runtime.add_learner(gid, node), STEP_TIMEOUT_S)
                return
            progress = runtime.leader_progress(gid)
            caught_up = progress is not None and progress.match.get(node, 0) >= progress.commit
            if caught_up and progress is not None and node not in progress.recovering:
                log.info("event=move_promote %s node=%d", where, node)
                await asyncio.wait_for(runtime.promote(gid, node), STEP_TIMEOUT_S)
            return  # one change at a time: wait for this learner before touching another member
        for node in sorted((voters | learners) - set(target)):
            if node == self.service.node_id:
                successor = next(n for n in target if n in voters)
                log.info("event=move_leader_leaving %s to=%d", where, successor)
                with contextlib.suppress(ConsensusError, TimeoutError):
                    await asyncio.wait_for(runtime.transfer_leadership(gid, successor), 1.0)
                return
            log.info("event=move_remove %s node=%d", where, node)
            await asyncio.wait_for(runtime.remove_member(gid, node), STEP_TIMEOUT_S)
            return
        await self._report(meta, partition, sorted(voters))

    async def _report(self, meta: TopicMeta, partition: int, voters: list[int]) -> None:
        key = (meta.name, partition)
        now = time.monotonic()
        if now - self._reported.get(key, 0.0) < REPORT_INTERVAL_S:
            return
        self._reported[key] = now
        log.info("event=move_done topic=%s partition=%d voters=%s", meta.name, partition, voters)
        if self.service.runtime.is_leader(CONTROLLER_GROUP):
            await finish_move(self.service, meta.name, partition, voters)
            return
        host, port = self.service.controller_address()
        body = ap_req.AlterPartitionRequest(
            broker_id=BrokerId(self.service.node_id),
            broker_epoch=i64(-1),
            topics=(
                ap_req.TopicData(
                    topic_id=meta.topic_id,
                    partitions=(
                        ap_req.PartitionData(
                            partition_index=i32(partition),
                            leader_epoch=i32(self.service.runtime.term(meta.group(partition))),
                            new_isr=tuple(BrokerId(v) for v in voters),
                            partition_epoch=i32(0),
                        ),
                    ),
                ),
            ),
        )
        with contextlib.suppress(membership_rpc.ControllerUnreachable):
            proof = broker_proof.client_id(
                self.service.node_id,
                self.service.membership.incarnation,
                broker_proof.alter_partition_message(str(meta.topic_id), partition, voters),
            )
            await membership_rpc.call(host, port, 56, 2, body, client_id=proof)
