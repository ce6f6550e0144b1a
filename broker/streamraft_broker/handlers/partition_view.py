"""The state of a topic's partitions as Metadata and DescribeTopicPartitions answer it (leader, leader
epoch, replicas, in-sync, offline and eligible-leader replicas): from the replication state on a replicated
broker, from this node alone on a single node (which leads every partition)."""

from __future__ import annotations

from dataclasses import dataclass

from streamraft_broker.handlers.context import BrokerContext, err
from streamraft_broker.topics.registry import Topic


@dataclass(frozen=True, slots=True)
class PartitionView:
    index: int
    error_code: int
    leader: int
    leader_epoch: int
    replicas: tuple[int, ...]

    @property
    def isr(self) -> tuple[int, ...]:
        # Raft has no ISR: every replica is named (a majority holds each committed batch).
        return self.replicas

    def wire_fields(self) -> dict[str, object]:
        """A partition entry's fields by their kio names, for Metadata's and DescribeTopicPartitions'
        entries alike (``build`` drops those a version lacks, such as the eligible-leader lists in
        Metadata). No replica is named offline, and the eligible-leader lists are empty, as Kafka answers
        when ELR is off: Raft never elects a replica that lacks committed records."""
        return {
            "error_code": err(self.error_code),
            "partition_index": self.index,
            "leader_id": self.leader,
            "leader_epoch": self.leader_epoch,
            "replica_nodes": self.replicas,
            "isr_nodes": self.isr,
            "offline_replicas": (),
            "eligible_leader_replicas": (),
            "last_known_elr": (),
        }


def partition_count(ctx: BrokerContext, topic: Topic) -> int:
    """How many partitions ``topic`` has: every one the controller state names, since this broker's own
    install of them may lag (a full disk)."""
    rep = ctx.extra.get("replication")
    if rep is None:
        return len(topic.partitions)
    return max(int(rep.partition_count(topic.name)), len(topic.partitions))


def partition_view(ctx: BrokerContext, topic: Topic, index: int) -> PartitionView:
    """Partition ``index`` (below ``partition_count``) of ``topic``."""
    rep = ctx.extra.get("replication")
    if rep is None:
        epoch = topic.partitions[index].leader_epoch
        return PartitionView(index, 0, ctx.node_id, epoch, (ctx.node_id,))
    code, leader, epoch, replicas = rep.partition_view(topic.name, index)
    return PartitionView(index, code, leader, epoch, tuple(replicas))


def partition_views(ctx: BrokerContext, topic: Topic) -> list[PartitionView]:
    """Every partition of ``topic``, in index order."""
    return [partition_view(ctx, topic, i) for i in range(partition_count(ctx, topic))]
