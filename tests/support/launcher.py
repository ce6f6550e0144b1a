"""A cluster of real `streamraft broker --replication raft` processes on loopback.

Kafka and Raft ports are picked free up front (every broker must know every other's addresses); a restarted
broker keeps its ports, like a pod behind a stable DNS name.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from types import TracebackType

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from tests.support.broker_process import BrokerProcess
from tests.support.history import History
from tests.support.ports import free_port


def _admin_conf(bootstrap: str) -> dict[str, object]:
    """Admin clients here poll while brokers come and go: librdkafka's connection warnings are noise."""
    log = logging.getLogger("tests.support.launcher.librdkafka")
    log.setLevel(logging.CRITICAL)
    return {"bootstrap.servers": bootstrap, "logger": log}


class Cluster:
    def __init__(self, base: Path, size: int = 3, extra_args: tuple[str, ...] = ()) -> None:
        assert 1 <= size <= 9, size
        self.kafka_ports = {n: free_port() for n in range(1, size + 1)}
        self.raft_ports = {n: free_port() for n in range(1, size + 1)}
        members = ",".join(
            f"{n}=127.0.0.1:{self.kafka_ports[n]}/127.0.0.1:{self.raft_ports[n]}" for n in self.kafka_ports
        )
        self.brokers = {
            n: BrokerProcess(
                base / f"b{n}",
                node_id=n,
                metrics=False,
                extra_args=[
                    "--listen",
                    f"127.0.0.1:{self.kafka_ports[n]}",
                    "--replication",
                    "raft",
                    "--cluster-members",
                    members,
                    *extra_args,
                ],
            )
            for n in self.kafka_ports
        }

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{p}" for p in self.kafka_ports.values())

    def start(self) -> Cluster:
        for b in self.brokers.values():
            b.start()
        return self

    def stop(self) -> None:
        for b in self.brokers.values():
            b.terminate()

    def logs(self) -> str:
        return "\n".join(f"--- broker {n}\n{b.log_tail(30)}" for n, b in self.brokers.items())

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for b in self.brokers.values():
            b.kill()


def wait_controller(cluster: Cluster, timeout: float = 30) -> int:
    """Poll every broker's Metadata until all name the same elected controller."""
    deadline = time.monotonic() + timeout
    while True:
        seen = {
            AdminClient(_admin_conf(f"127.0.0.1:{port}")).list_topics(timeout=5).controller_id
            for port in cluster.kafka_ports.values()
        }
        if len(seen) == 1 and min(seen) > 0:
            return int(min(seen))
        assert time.monotonic() < deadline, f"no agreed controller: {seen}"
        time.sleep(0.1)  # pacing between metadata polls


def create_topic(cluster: Cluster, topic: str, partitions: int, rf: int = 3) -> None:
    wait_controller(cluster)
    admin = AdminClient(_admin_conf(cluster.bootstrap))
    deadline = time.monotonic() + 60
    last: Exception | None = None
    while time.monotonic() < deadline:
        futures = admin.create_topics([NewTopic(topic, partitions, rf)], operation_timeout=10)
        try:
            futures[topic].result(30)
            return
        except KafkaException as exc:
            if last is not None and exc.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS:
                return  # an earlier attempt that timed out on our side did create it
            last = exc  # NOT_CONTROLLER while the controller group (re-)elects: ask again
        except TimeoutError as exc:
            last = exc
        time.sleep(0.2)  # pacing between retries, not synchronisation
    raise AssertionError(f"topic not created: {last}\n{cluster.logs()}")


def partition_leader(producer: Producer, topic_name: str, partition: int) -> int:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        topic = producer.list_topics(topic_name, timeout=5).topics.get(topic_name)
        # A broker that has not applied the topic from the controller log yet answers without it.
        part = topic.partitions.get(partition) if topic is not None else None
        if part is not None and part.leader > 0:
            return int(part.leader)
        time.sleep(0.1)  # pacing between metadata polls
    raise AssertionError(f"no leader for {topic_name}-{partition}")


def consume_all(bootstrap: str, name: str, topic: str, ends: dict[int, int], history: History) -> None:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": name, "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, p, 0) for p in ends])
    view: dict[int, list[tuple[int, bytes]]] = {p: [] for p in ends}
    deadline = time.monotonic() + 60
    try:
        while any((view[p][-1][0] + 1 if view[p] else 0) < ends[p] for p in view):
            assert time.monotonic() < deadline, f"{name} did not reach {ends}"
            msg = consumer.poll(0.5)
            if msg is None or msg.error() is not None:
                continue
            part, offset, value = msg.partition(), msg.offset(), msg.value()
            assert part is not None and offset is not None and isinstance(value, bytes), msg
            view[part].append((offset, value))
    finally:
        consumer.close()
    history.reads[name] = view
