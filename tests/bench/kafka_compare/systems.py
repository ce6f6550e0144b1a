"""The two systems the comparison runs: a 3-node Apache Kafka KRaft cluster and Streamraft."""

from __future__ import annotations

import time
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import psutil
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from tests.javakafka.cluster import KafkaCluster, partition_leader
from tests.support.broker import running_broker
from tests.support.broker_process import BrokerProcess


class Unavailable(RuntimeError):
    """The system cannot be started here (yet); the message is shown in the table."""


@dataclass
class Running:
    """A started system: how to reach it, its broker processes, and what it can do."""

    name: str
    bootstrap: str
    brokers: int
    start_to_ready_s: float
    pids: list[int]
    can_failover: bool
    fsync: bool = False
    kafka: KafkaCluster | None = None
    _ctx: AbstractContextManager[Any] | None = field(default=None, repr=False)

    @property
    def replication_factor(self) -> int:
        return min(3, self.brokers)

    def rss_mib(self) -> list[float]:
        out: list[float] = []
        for pid in self.current_pids():
            try:
                out.append(psutil.Process(pid).memory_info().rss / 2**20)
            except psutil.NoSuchProcess:
                continue
        return out

    def current_pids(self) -> list[int]:
        if self.kafka is not None:
            return [n.pid for n in self.kafka.nodes if n.alive()]
        return self.pids

    def create_topic(self, topic: str, partitions: int, timeout_s: float = 60.0) -> None:
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        # --fsync: an fsync per batch on both systems, through the same topic config.
        config = {"flush.messages": "1"} if self.fsync else {}
        new = NewTopic(
            topic, num_partitions=partitions, replication_factor=self.replication_factor, config=config
        )
        futs = admin.create_topics([new], operation_timeout=30)
        for fut in futs.values():
            fut.result(timeout=timeout_s)
        deadline = time.monotonic() + timeout_s
        # Leaders are elected asynchronously after creation; wait so the first produce measures steady state.
        for p in range(partitions):
            while partition_leader(self.bootstrap, topic, p) < 0:
                assert time.monotonic() < deadline, f"{self.name}: no leader for {topic}/{p}"
                time.sleep(0.1)

    def close(self) -> None:
        if self.kafka is not None:
            self.kafka.close()
        if self._ctx is not None:
            self._ctx.__exit__(None, None, None)


def start_kafka(fsync: bool, nodes: int = 3) -> Running:
    cluster = KafkaCluster(nodes, fsync=fsync)
    t0 = time.monotonic()
    cluster.format_storage()
    t_fmt = time.monotonic() - t0
    t1 = time.monotonic()
    for node in cluster.nodes:
        cluster.start_node(node.node_id)
    try:
        ready = cluster.wait_ready()
    except Exception:
        cluster.close()
        raise
    _ = t_fmt  # storage formatting is a one-off install step, not part of start-up
    return Running(
        name="Kafka",
        bootstrap=cluster.bootstrap_servers,
        brokers=nodes,
        start_to_ready_s=max(ready, time.monotonic() - t1),
        pids=[n.pid for n in cluster.nodes],
        can_failover=nodes >= 3,
        fsync=fsync,
        kafka=cluster,
    )


def start_streamraft(fsync: bool) -> Running:
    t0 = time.monotonic()
    ctx = running_broker()
    broker: BrokerProcess = ctx.__enter__()
    ready = time.monotonic() - t0
    assert broker.pid is not None
    return Running(
        name="Streamraft",
        bootstrap=broker.bootstrap,
        brokers=1,
        start_to_ready_s=ready,
        pids=[broker.pid],
        # Single node until replication lands: there is no follower to fail over to.
        can_failover=False,
        fsync=fsync,
        _ctx=ctx,
    )
