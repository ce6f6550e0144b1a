"""The cluster's brokers as clients are told of them (Metadata, DescribeCluster, KIP-951 leader hints): each
at its address on the listener the current request came in on, and which of them is the controller."""

from __future__ import annotations

from dataclasses import dataclass

from streamraft_broker.handlers.context import BrokerContext, endpoint_of


@dataclass(frozen=True, slots=True)
class NodeAddress:
    node_id: int
    host: str
    port: int
    rack: str | None


def broker_addresses(ctx: BrokerContext) -> list[NodeAddress]:
    """Every broker: on a replicated broker the registered ones from the controller log (the static member
    list before the first registration applies), on a single node this node alone."""
    rep = ctx.extra.get("replication")
    if rep is None:
        host, port = endpoint_of(ctx, ctx.node_id, ctx.host, ctx.port)
        return [NodeAddress(ctx.node_id, host, port, None)]
    out = []
    for member in rep.brokers():
        host, port = endpoint_of(ctx, member.node_id, member.kafka_host, member.kafka_port)
        out.append(NodeAddress(int(member.node_id), host, int(port), getattr(member, "rack", None)))
    return out


def controller_id(ctx: BrokerContext) -> int:
    """The broker clients are told is the controller: the controller group's leader (-1 while it has none),
    or this single node."""
    rep = ctx.extra.get("replication")
    return ctx.node_id if rep is None else int(rep.controller_id())
