"""KIP-951 leader hints: where a partition's leader is, for Produce v10+ and Fetch v16+ answers that say
NOT_LEADER_OR_FOLLOWER, so the client goes there without first refreshing its metadata."""

from __future__ import annotations

from dataclasses import dataclass

from streamraft_broker.handlers.broker_addresses import NodeAddress, broker_addresses
from streamraft_broker.handlers.context import BrokerContext


@dataclass(frozen=True, slots=True)
class LeaderHint:
    leader_id: int
    leader_epoch: int


def leader_hint(ctx: BrokerContext, topic: str, index: int) -> LeaderHint | None:
    """The partition's current leader and epoch when one is known (a replicated broker), else None:
    Kafka then leaves the hint at its default (-1, -1) and the client refreshes its metadata."""
    rep = ctx.extra.get("replication")
    if rep is None:
        return None
    code, leader, epoch, _replicas = rep.partition_view(topic, index)
    if code or leader < 0:
        return None
    return LeaderHint(int(leader), int(epoch))


def node_addresses(ctx: BrokerContext, node_ids: set[int]) -> list[NodeAddress]:
    """The addresses, on the listener this request came in on, of the brokers ``node_ids`` names."""
    rep = ctx.extra.get("replication")
    if rep is None or not node_ids:
        return []
    return [a for a in broker_addresses(ctx) if a.node_id in node_ids]
