"""ElectLeaders in a Raft-replicated cluster: preferred-leader elections move a partition's Raft leadership
to its first replica; unclean elections never happen.

Kafka's controller elects; here each partition's Raft group does, so only its current leader can hand the
leadership over (Raft's leadership transfer, which first brings the successor up to date). A broker that
does not lead a partition forwards it to the broker that does (or, when it hosts no replica and cannot know
the leader, to a broker that hosts one): at most two hops, counted in the broker proof the request carries
(``broker_proof``), so a forwarded request is never forwarded further than that.

As Kafka's ReplicationControlManager.electLeader: a partition already led by its preferred replica answers
ELECTION_NOT_NEEDED; one whose preferred replica cannot lead (not a voter, rebuilding its disk,
unreachable, or it did not take over in time) PREFERRED_LEADER_NOT_AVAILABLE. Unclean: a partition with a
leader needs no election (ELECTION_NOT_NEEDED); one without gets ELIGIBLE_LEADERS_NOT_AVAILABLE, since Raft
only ever elects a replica holding every committed record.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from streamraft_consensus.runtime.errors import ConsensusError

from streamraft_broker.replication import broker_proof, membership_rpc

if TYPE_CHECKING:
    from streamraft_broker.replication.service import ReplicationService

log = logging.getLogger(__name__)

PREFERRED, UNCLEAN = 0, 1
UNKNOWN_TOPIC_OR_PARTITION = 3
PREFERRED_LEADER_NOT_AVAILABLE = 80
ELIGIBLE_LEADERS_NOT_AVAILABLE = 83
ELECTION_NOT_NEEDED = 84
MAX_HOPS = 2
MAX_WAIT_S = 15.0
"""The longest an ElectLeaders request waits for leaderships to move, whatever timeout it asks for."""
POLL_S = 0.02

Outcome = tuple[int, str | None]
TP = tuple[str, int]


def proof_message(hops_left: int, election_type: int, partitions: Sequence[TP]) -> str:
    listed = ",".join(f"{t}:{p}" for t, p in sorted(partitions))
    return f"elect_leaders:{hops_left}:{election_type}:{listed}"


def forwarded_hops(
    service: ReplicationService, client_id: str | None, election_type: int, parts: list[TP]
) -> int | None:
    """How many more hops a request signed by a broker may take (0 or 1), or None if no broker signed it."""
    for hops in range(MAX_HOPS):
        message = proof_message(hops, election_type, parts)
        if broker_proof.sender(client_id, service.state.brokers, message) is not None:
            return hops
    return None


class Elections:
    def __init__(self, service: ReplicationService) -> None:
        self.service = service

    async def elect(
        self, election_type: int, partitions: Sequence[TP], timeout_s: float, hops_left: int = MAX_HOPS
    ) -> dict[TP, Outcome]:
        service, runtime = self.service, self.service.runtime
        loop = asyncio.get_running_loop()
        deadline = loop.time() + min(max(timeout_s, 0.1), MAX_WAIT_S)
        results: dict[TP, Outcome] = {}
        forward: dict[int, list[TP]] = {}
        transfers: list[tuple[TP, int, int]] = []
        hosted = set(runtime.groups())
        for tp in partitions:
            name, index = tp
            meta = service.state.topics.get(name)
            if meta is None or not 0 <= index < len(meta.replicas):
                results[tp] = (UNKNOWN_TOPIC_OR_PARTITION, f"no partition {name}-{index}")
                continue
            replicas, gid = meta.replicas[index], meta.group(index)
            if gid not in hosted:
                target = next((n for n in replicas if runtime.transport.is_connected(n)), None)
                if hops_left > 0 and target is not None:
                    forward.setdefault(target, []).append(tp)
                else:
                    results[tp] = (
                        _unavailable(election_type),
                        f"no replica of {name}-{index} reachable here",
                    )
                continue
            leader = runtime.leader(gid)
            if election_type == UNCLEAN:
                results[tp] = (
                    (ELECTION_NOT_NEEDED, None)
                    if leader
                    else (
                        ELIGIBLE_LEADERS_NOT_AVAILABLE,
                        "Raft elects only a replica holding every committed record (no unclean election); "
                        "its replicas are electing one",
                    )
                )
            elif leader == replicas[0]:
                results[tp] = (ELECTION_NOT_NEEDED, None)
            elif leader == 0:
                results[tp] = (PREFERRED_LEADER_NOT_AVAILABLE, "no leader: an election is in progress")
            elif leader == service.node_id:
                transfers.append((tp, gid, replicas[0]))
            elif hops_left > 0:
                forward.setdefault(leader, []).append(tp)
            else:
                results[tp] = (
                    PREFERRED_LEADER_NOT_AVAILABLE,
                    f"leadership of {name}-{index} moved meanwhile",
                )
        moved, answered = await asyncio.gather(
            asyncio.gather(*(self._transfer(gid, preferred, deadline) for _, gid, preferred in transfers)),
            asyncio.gather(
                *(
                    self._forward(node, election_type, tps, deadline, hops_left - 1)
                    for node, tps in forward.items()
                )
            ),
        )
        for (tp, _, _), outcome in zip(transfers, moved, strict=True):
            results[tp] = outcome
        for elsewhere in answered:
            results.update(elsewhere)
        return results

    async def _transfer(self, gid: int, preferred: int, deadline: float) -> Outcome:
        runtime = self.service.runtime
        loop = asyncio.get_running_loop()
        progress = runtime.leader_progress(gid)
        if progress is None:
            return PREFERRED_LEADER_NOT_AVAILABLE, "leadership moved during the election"
        if preferred not in runtime.conf_state(gid).voters:
            return PREFERRED_LEADER_NOT_AVAILABLE, f"preferred replica {preferred} is not a voter yet"
        if preferred in progress.recovering:
            return PREFERRED_LEADER_NOT_AVAILABLE, f"preferred replica {preferred} is rebuilding its disk"
        if not runtime.transport.is_connected(preferred):
            return PREFERRED_LEADER_NOT_AVAILABLE, f"preferred replica {preferred} is not reachable"
        log.info("event=preferred_leader_election group=%d to=%d", gid, preferred)
        try:
            await asyncio.wait_for(
                runtime.transfer_leadership(gid, preferred), max(0.05, deadline - loop.time())
            )
        except (ConsensusError, ValueError, TimeoutError) as exc:
            return PREFERRED_LEADER_NOT_AVAILABLE, f"transfer to replica {preferred} failed: {exc!r}"
        # Polls against the deadline: the runtime offers no per-group "leader is now X" event.
        while runtime.leader(gid) != preferred and loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(POLL_S)
        if runtime.leader(gid) != preferred:
            return PREFERRED_LEADER_NOT_AVAILABLE, f"preferred replica {preferred} did not take over in time"
        return 0, None

    async def _forward(
        self, node: int, election_type: int, parts: list[TP], deadline: float, hops_left: int
    ) -> dict[TP, Outcome]:
        from kio.schema.elect_leaders.v2 import request as el_req  # noqa: PLC0415
        from kio.schema.types import TopicName  # noqa: PLC0415
        from kio.static.primitive import i8, i32, i32Timedelta  # noqa: PLC0415

        service = self.service
        address = service.broker_address(node)
        loop = asyncio.get_running_loop()
        remaining = max(0.1, deadline - loop.time())
        if address is None:
            return {tp: (_unavailable(election_type), f"broker {node} has no known address") for tp in parts}
        by_topic: dict[str, list[int]] = {}
        for t, p in parts:
            by_topic.setdefault(t, []).append(p)
        body = el_req.ElectLeadersRequest(
            election_type=i8(election_type),
            topic_partitions=tuple(
                el_req.TopicPartitions(topic=TopicName(t), partitions=tuple(i32(p) for p in ps))
                for t, ps in by_topic.items()
            ),
            timeout=i32Timedelta.parse(datetime.timedelta(seconds=remaining)),
        )
        proof = broker_proof.client_id(
            service.node_id, service.membership.incarnation, proof_message(hops_left, election_type, parts)
        )
        try:
            answer: Any = await membership_rpc.call(
                address[0], address[1], 43, 2, body, limit_s=remaining + 1.0, client_id=proof
            )
        except membership_rpc.ControllerUnreachable as exc:
            return {tp: (_unavailable(election_type), f"broker {node} unreachable: {exc}") for tp in parts}
        out: dict[TP, Outcome] = {}
        for r in answer.replica_election_results:
            for p in r.partition_result:
                out[(str(r.topic), int(p.partition_id))] = (int(p.error_code), p.error_message)
        for tp in parts:
            out.setdefault(tp, (ELECTION_NOT_NEEDED, None))
        return out


def _unavailable(election_type: int) -> int:
    return ELIGIBLE_LEADERS_NOT_AVAILABLE if election_type == UNCLEAN else PREFERRED_LEADER_NOT_AVAILABLE
