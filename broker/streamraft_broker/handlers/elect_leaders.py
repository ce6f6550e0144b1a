"""ElectLeaders (API 43): ``kafka-leader-election``, Admin.electLeaders.

Alter on the Cluster, as Kafka (else CLUSTER_AUTHORIZATION_FAILED), unless a broker forwarded the request
with its proof (see replication.elections). No partitions named means every partition, and then, as Kafka's
controller answers, those that needed no election are left out. Election type 0 is preferred, 1 unclean;
any other is INVALID_REQUEST. One node leads every partition itself, its only (so preferred) replica: no
election is ever needed there. Replicated: see replication.elections."""

from __future__ import annotations

from typing import Any

from streamraft_broker.handlers.authz import cluster_denied
from streamraft_broker.handlers.context import BrokerContext, err
from streamraft_broker.protocol.codec import build, nested, response_type
from streamraft_broker.protocol.header import RequestHeader
from streamraft_broker.protocol.versions import ApiKey
from streamraft_broker.replication.elections import (
    ELECTION_NOT_NEEDED,
    MAX_HOPS,
    PREFERRED,
    UNCLEAN,
    UNKNOWN_TOPIC_OR_PARTITION,
    Elections,
    Outcome,
    forwarded_hops,
)
from streamraft_broker.security.acl import Operation

INVALID_REQUEST = 42
TP = tuple[str, int]


def _all_partitions(ctx: BrokerContext) -> list[TP]:
    rep = ctx.extra.get("replication")
    if rep is not None:
        return [(name, i) for name, meta in list(rep.state.topics.items()) for i in range(len(meta.replicas))]
    return [(t.name, p.index) for t in list(ctx.registry.topics.values()) for p in t.partitions]


def _response(version: int, code: int, results: dict[TP, Outcome]) -> Any:
    part_cls = nested(ApiKey.ELECT_LEADERS, version, "PartitionResult")
    topic_cls = nested(ApiKey.ELECT_LEADERS, version, "ReplicaElectionResult")
    by_topic: dict[str, list[Any]] = {}
    for (topic, index), (c, message) in results.items():
        by_topic.setdefault(topic, []).append(
            build(part_cls, partition_id=index, error_code=err(c), error_message=message)
        )
    return build(
        response_type(ApiKey.ELECT_LEADERS, version),
        throttle_time=0,
        error_code=err(code),
        replica_election_results=tuple(
            build(topic_cls, topic=t, partition_result=tuple(ps)) for t, ps in by_topic.items()
        ),
    )


async def handle_elect_leaders(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    version = header.api_version
    # v0 has no election type: it asks for preferred elections.
    election_type = int(getattr(request, "election_type", PREFERRED))
    every = request.topic_partitions is None
    asked = (
        _all_partitions(ctx)
        if every
        else list(
            dict.fromkeys((str(t.topic), int(p)) for t in request.topic_partitions for p in t.partitions)
        )
    )
    rep = ctx.extra.get("replication")
    hops = None if rep is None or every else forwarded_hops(rep, header.client_id, election_type, asked)
    if hops is None and (denied := cluster_denied(ctx, Operation.ALTER)):
        ctx.metrics.record_error(denied)
        message = "ElectLeaders needs Alter on the Cluster"
        return _response(version, denied, {} if every else dict.fromkeys(asked, (denied, message)))
    if election_type not in (PREFERRED, UNCLEAN):
        ctx.metrics.record_error(INVALID_REQUEST)
        message = f"election type {election_type} is neither 0 (preferred) nor 1 (unclean)"
        return _response(version, INVALID_REQUEST, dict.fromkeys(asked, (INVALID_REQUEST, message)))
    if rep is None:
        results: dict[TP, Outcome] = {
            tp: (ELECTION_NOT_NEEDED, None)
            if ctx.registry.partition(*tp) is not None
            else (UNKNOWN_TOPIC_OR_PARTITION, f"no partition {tp[0]}-{tp[1]}")
            for tp in asked
        }
    else:
        timeout_s = request.timeout.total_seconds()
        results = await Elections(rep).elect(
            election_type, asked, timeout_s, MAX_HOPS if hops is None else hops
        )
    for code, _ in results.values():
        if code and code != ELECTION_NOT_NEEDED:
            ctx.metrics.record_error(code)
    if every:
        results = {tp: r for tp, r in results.items() if r[0] != ELECTION_NOT_NEEDED}
    return _response(version, 0, results)
