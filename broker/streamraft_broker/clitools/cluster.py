"""`streamraft cluster status`: brokers, the controller's Raft state, and partitions without a leader."""

from __future__ import annotations

import argparse
import asyncio
from dataclasses import dataclass, field
from typing import Any

from streamraft_broker.clitools.kafka import add_client_flags, client_config
from streamraft_broker.clitools.output import as_json, table
from streamraft_broker.config import parse_host_port

DESCRIBE_QUORUM = 55
QUORUM_VERSION = 2


@dataclass
class QuorumView:
    leader: int = -1
    term: int = -1
    high_watermark: int = -1
    log_end: dict[int, int] = field(default_factory=dict)
    """Voter -> its controller log end as the leader knows it."""
    error: str | None = None


@dataclass
class ClusterStatus:
    cluster_id: str
    controller: int
    brokers: list[dict[str, Any]]
    topics: int
    partitions: int
    leaderless: list[str]
    quorum: QuorumView


def _quorum(bootstrap: str, timeout_s: float) -> QuorumView:
    """DescribeQuorum over the Kafka protocol (the Raft state no librdkafka call reports)."""
    from kio.schema.describe_quorum.v2 import request as dq  # noqa: PLC0415

    from streamraft_broker.replication import membership_rpc  # noqa: PLC0415

    host, port = parse_host_port(bootstrap.split(",", maxsplit=1)[0], "--bootstrap-server")
    body = dq.DescribeQuorumRequest(topics=())
    try:
        answer = asyncio.run(
            membership_rpc.call(host, port, DESCRIBE_QUORUM, QUORUM_VERSION, body, limit_s=timeout_s)
        )
    except membership_rpc.ControllerUnreachable as exc:
        return QuorumView(error=str(exc))
    if int(answer.error_code) != 0:
        return QuorumView(error=answer.error_message or f"error {int(answer.error_code)}")
    part = answer.topics[0].partitions[0]
    return QuorumView(
        leader=int(part.leader_id),
        term=int(part.leader_epoch),
        high_watermark=int(part.high_watermark),
        log_end={int(v.replica_id): int(v.log_end_offset) for v in part.current_voters},
    )


def status(args: argparse.Namespace) -> ClusterStatus:
    from confluent_kafka.admin import AdminClient  # noqa: PLC0415

    admin = AdminClient(client_config(args))
    described = admin.describe_cluster(request_timeout=args.timeout).result(timeout=args.timeout)
    md = admin.list_topics(timeout=args.timeout)
    leaderless = [
        f"{name}-{p}"
        for name, t in sorted(md.topics.items())
        for p, pm in sorted(t.partitions.items())
        if pm.leader < 0
    ]
    quorum = _quorum(str(args.bootstrap_server), args.timeout)
    brokers = [
        {
            "id": n.id,
            "address": f"{n.host}:{n.port}",
            "rack": n.rack,
            "controller_log_end": quorum.log_end.get(n.id),
            "controller_lag": (
                quorum.high_watermark - quorum.log_end[n.id] if n.id in quorum.log_end else None
            ),
        }
        for n in sorted(described.nodes, key=lambda n: n.id)
    ]
    return ClusterStatus(
        cluster_id=str(described.cluster_id),
        controller=described.controller.id if described.controller is not None else -1,
        brokers=brokers,
        topics=len(md.topics),
        partitions=sum(len(t.partitions) for t in md.topics.values()),
        leaderless=leaderless,
        quorum=quorum,
    )


def render(s: ClusterStatus, fmt: str) -> str:
    if fmt == "json":
        return as_json(
            {
                "cluster_id": s.cluster_id,
                "controller": s.controller,
                "controller_quorum": s.quorum.__dict__,
                "brokers": s.brokers,
                "topics": s.topics,
                "partitions": s.partitions,
                "leaderless_partitions": s.leaderless,
            }
        )
    q = s.quorum
    raft = (
        f"Raft leader {q.leader}, term {q.term}, commit {q.high_watermark}"
        if q.error is None
        else f"Raft state unavailable: {q.error}"
    )
    lines = [
        f"cluster: {s.cluster_id}",
        f"controller: {s.controller} ({raft})",
        "",
        table(s.brokers, ["id", "address", "rack", "controller_log_end", "controller_lag"]),
        "",
        f"topics: {s.topics}, partitions: {s.partitions}, without a leader: {len(s.leaderless)}"
        + (f" ({', '.join(s.leaderless[:20])})" if s.leaderless else ""),
    ]
    return "\n".join(lines)


def cmd_cluster_status(args: argparse.Namespace) -> int:
    result = status(args)
    print(render(result, args.format))
    return 1 if result.leaderless else 0


def add_parsers(sub: Any) -> None:
    cluster = sub.add_parser("cluster", help="the cluster as a whole")
    csub = cluster.add_subparsers(dest="cluster_cmd", required=True)
    st = csub.add_parser(
        "status",
        help="brokers, the controller's Raft state, partitions without a leader (exit 1 if any)",
    )
    st.add_argument("--format", choices=["table", "json"], default="table")
    add_client_flags(st)
    st.set_defaults(func=cmd_cluster_status)
