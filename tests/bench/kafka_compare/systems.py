"""The two systems the comparison runs, both as 3-node replicated clusters on loopback:
Apache Kafka (KRaft, RF=3, min.insync.replicas=2) and Streamraft (``--replication raft``, RF=3).

Both get the same segment size (1 GiB, Streamraft's default) and the same per-topic fsync switch
(``flush.messages=1`` on the topic, honoured by both); ``Running`` hides how each kills, restarts and heals.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from tests.javakafka.cluster import KafkaCluster, partition_leader
from tests.support.launcher import Cluster, wait_controller
from tests.support.metrics import scrape, value

NODES = 3
HEAL_TIMEOUT_S = 180.0


class Unavailable(RuntimeError):
    """The system cannot be started here; the message is shown in the table."""


@dataclass
class Running:
    """A started 3-node system: how to reach it, its broker processes, and how to crash and heal one."""

    name: str
    bootstrap: str
    start_to_ready_s: float
    kafka: KafkaCluster | None = None
    raft: Cluster | None = None
    _cleanup: Callable[[], None] | None = field(default=None, repr=False)

    @property
    def brokers(self) -> int:
        return NODES

    @property
    def replication_factor(self) -> int:
        return NODES

    def current_pids(self) -> list[int]:
        if self.kafka is not None:
            return [n.pid for n in self.kafka.nodes if n.alive()]
        assert self.raft is not None
        return [b.pid for b in self.raft.brokers.values() if b.running and b.pid is not None]

    def rss_mib(self) -> list[float]:
        out: list[float] = []
        for pid in self.current_pids():
            try:
                out.append(psutil.Process(pid).memory_info().rss / 2**20)
            except psutil.NoSuchProcess:
                continue
        return out

    def create_topic(
        self, topic: str, partitions: int, *, fsync: bool = False, timeout_s: float = 60.0
    ) -> None:
        """RF=3 topic; ``fsync`` sets flush.messages=1 (an fsync per appended batch) on it."""
        if self.raft is not None:
            wait_controller(self.raft)
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        config = {"flush.messages": "1"} if fsync else {}
        deadline = time.monotonic() + timeout_s
        last: Exception | None = None
        while True:
            assert time.monotonic() < deadline, f"{self.name}: topic {topic} not created: {last}"
            new = NewTopic(topic, num_partitions=partitions, replication_factor=NODES, config=config)
            try:
                admin.create_topics([new], operation_timeout=30)[topic].result(timeout=timeout_s)
                break
            except KafkaException as exc:
                if last is not None and exc.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS:
                    break  # an earlier attempt that timed out on our side did create it
                # NOT_CONTROLLER while the controller (re-)elects, and on a fresh Streamraft cluster
                # INVALID_REPLICATION_FACTOR until every broker has registered: ask again.
                last = exc
            except TimeoutError as exc:
                last = exc
            time.sleep(0.2)  # pacing between retries
        # Leaders are elected asynchronously after creation; wait so the first produce measures steady state.
        for p in range(partitions):
            while partition_leader(self.bootstrap, topic, p) <= 0:
                assert time.monotonic() < deadline, f"{self.name}: no leader for {topic}/{p}"
                time.sleep(0.1)  # pacing between metadata polls

    def kill(self, node_id: int) -> None:
        """SIGKILL one broker process."""
        if self.kafka is not None:
            self.kafka.kill(node_id)
        else:
            assert self.raft is not None
            self.raft.brokers[node_id].kill()

    def restart_and_heal(self, node_id: int, topic: str) -> None:
        """Start a killed broker again (same data, same ports) and wait until it is a full replica again."""
        if self.kafka is not None:
            self.kafka.start_node(node_id)
            self.kafka.wait_ready(expect=NODES)
            _wait(f"{topic}/0 full ISR", lambda: _kafka_full_isr(self.bootstrap, topic), HEAL_TIMEOUT_S)
        else:
            assert self.raft is not None
            self.raft.brokers[node_id].start()
            _wait(
                "no under-replicated or leaderless partition",
                lambda: _raft_healthy(self.raft),
                HEAL_TIMEOUT_S,
            )

    def close(self) -> None:
        if self.kafka is not None:
            self.kafka.close()
        if self._cleanup is not None:
            self._cleanup()


def _wait(what: str, check: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not reached within {timeout_s:g}s: {what}")
        time.sleep(0.2)  # pacing between polls of the brokers


def _broker_count(bootstrap: str) -> int:
    return len(AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10).brokers)


def _kafka_full_isr(bootstrap: str, topic: str) -> bool:
    md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic=topic, timeout=10)
    part = md.topics[topic].partitions[0]
    return len(part.isrs) == len(part.replicas)


def _raft_healthy(cluster: Cluster | None) -> bool:
    # Streamraft's Metadata lists every replica as in sync; its own metrics know which are behind.
    assert cluster is not None
    if not all(b.running for b in cluster.brokers.values()):
        return False
    try:
        samples = [scrape(b.metrics_port) for b in cluster.brokers.values()]
    except OSError:
        return False  # a broker still starting its metrics listener
    return all(
        value(s, "streamraft_under_replicated_partitions") == 0
        and value(s, "streamraft_leaderless_partitions") == 0
        for s in samples
    )


def start_kafka() -> Running:
    cluster = KafkaCluster(NODES)
    cluster.format_storage()  # a one-off install step, not part of start-up
    t1 = time.monotonic()
    for node in cluster.nodes:
        cluster.start_node(node.node_id)
    try:
        ready = cluster.wait_ready()
    except Exception:
        cluster.close()
        raise
    return Running("Kafka", cluster.bootstrap_servers, max(ready, time.monotonic() - t1), kafka=cluster)


def start_streamraft() -> Running:
    tmp = tempfile.TemporaryDirectory(prefix="streamraft-compare-")
    cluster = Cluster(Path(tmp.name), NODES)
    for b in cluster.brokers.values():
        b.metrics = True  # the heal check reads under-replicated counts from /metrics

    def cleanup() -> None:
        cluster.__exit__(None, None, None)
        tmp.cleanup()

    t0 = time.monotonic()
    try:
        cluster.start()
        wait_controller(cluster, timeout=60)
        _wait(f"{NODES} brokers in the metadata", lambda: _broker_count(cluster.bootstrap) == NODES, 60)
    except Exception:
        cleanup()
        raise
    return Running("Streamraft", cluster.bootstrap, time.monotonic() - t0, raft=cluster, _cleanup=cleanup)
