"""Replica moves on a real cluster: AlterPartitionReassignments (API 45) moves a partition's Raft group
onto a broker that joined later, acked writes survive the move, and Metadata shows the new replicas."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from kio.schema.alter_partition_reassignments.v0 import request as alter
from kio.schema.list_partition_reassignments.v0 import request as listing
from kio.schema.types import BrokerId, TopicName
from kio.static.primitive import i32

from tests.support.kafka_io import read_all, send
from tests.support.launcher import create_topic, partition_leader, wait_controller
from tests.support.membership import add_broker, racked_cluster, registered, replicas, wire
from tests.support.poll import wait_for

TOPIC = "moves"


def _alter(port: int, moves: dict[tuple[str, int], list[int] | None]) -> dict[tuple[str, int], int]:
    topics: dict[str, list[Any]] = {}
    for (name, p), target in moves.items():
        topics.setdefault(name, []).append(
            alter.ReassignablePartition(
                partition_index=i32(p),
                replicas=None if target is None else tuple(BrokerId(b) for b in target),
            )
        )
    body = alter.AlterPartitionReassignmentsRequest(
        topics=tuple(
            alter.ReassignableTopic(name=TopicName(n), partitions=tuple(ps)) for n, ps in topics.items()
        )
    )
    resp = wire(port, 45, 0, body)
    return {
        (str(t.name), int(p.partition_index)): int(p.error_code) for t in resp.responses for p in t.partitions
    }


def _controller_of(port: int) -> int | None:
    found = int(AdminClient({"bootstrap.servers": f"127.0.0.1:{port}"}).list_topics(timeout=5).controller_id)
    return found if found > 0 else None


def _ongoing(port: int) -> dict[tuple[str, int], list[int]]:
    resp = wire(port, 46, 0, listing.ListPartitionReassignmentsRequest(topics=None))
    assert int(resp.error_code) == 0, resp
    return {
        (str(t.name), int(p.partition_index)): list(p.replicas) for t in resp.topics for p in t.partitions
    }


def test_move_to_a_new_broker_keeps_acked_writes(tmp_path: Path) -> None:
    with racked_cluster(tmp_path, {1: "a", 2: "b", 3: "c"}) as cluster:
        create_topic(cluster, TOPIC, 2, 3)
        before = replicas(cluster.kafka_ports[1], TOPIC)
        assert sorted(before[0]) == [1, 2, 3], before
        acked = send(cluster.bootstrap, TOPIC, 0, [f"before-{i}".encode() for i in range(200)])
        assert len(acked) == 200

        b4 = add_broker(cluster, tmp_path, 4, "d")
        wait_for("broker 4 registered", lambda: 4 in registered(cluster.brokers[1]), logs=cluster.logs)
        controller = wait_controller(cluster)
        cport = cluster.kafka_ports[controller]
        leaving = before[0][-1]
        target = [4 if b == leaving else b for b in before[0]]

        # Bad requests are refused with a clear error code, and a non-controller says so.
        bad = _alter(cport, {(TOPIC, 0): [1, 2], (TOPIC, 1): [1, 2, 9], ("nope", 0): [1, 2, 3]})
        assert bad == {(TOPIC, 0): 39, (TOPIC, 1): 39, ("nope", 0): 3}, bad
        assert _alter(cport, {(TOPIC, 1): None}) == {(TOPIC, 1): 85}
        other = next(n for n in (1, 2, 3) if n != controller)
        assert _alter(cluster.kafka_ports[other], {(TOPIC, 0): target}) == {(TOPIC, 0): 41}

        assert _alter(cport, {(TOPIC, 0): target}) == {(TOPIC, 0): 0}
        during = send(cluster.bootstrap, TOPIC, 0, [f"during-{i}".encode() for i in range(200)])
        acked += during

        def moved() -> bool:
            views = [replicas(p, TOPIC)[0] for p in cluster.kafka_ports.values()]
            return all(v == target for v in views) and not _ongoing(cport)

        wait_for(f"{TOPIC}-0 moved to {target} on every broker", moved, timeout=90, logs=cluster.logs)
        assert replicas(b4.port, TOPIC)[1] == before[1], "the other partition did not move"

        # The removed replica goes down; writes and reads go through the new replica set only.
        cluster.brokers[leaving].kill()
        hosts = ",".join(f"127.0.0.1:{cluster.kafka_ports[n]}" for n in target)
        acked += send(hosts, TOPIC, 0, [f"after-{i}".encode() for i in range(100)])
        assert len(acked) == 500, len(acked)
        got = read_all(hosts, TOPIC, 0, len(acked), cluster.logs)
        missing = set(acked) - set(got)
        assert not missing, f"{len(missing)} acked records lost, e.g. {sorted(missing)[:3]}"
        assert len(got) == len(set(got)), "a record was read twice"


def test_move_resumes_after_its_leader_restarts(tmp_path: Path) -> None:
    """A move to a broker that is down waits (listed as ongoing); SIGKILL of the partition's leader and a
    restart do not lose it: once the new broker is up, the new leader finishes the move."""
    with racked_cluster(tmp_path, {1: "a", 2: "b", 3: "c"}) as cluster:
        create_topic(cluster, TOPIC, 1, 3)
        b4 = add_broker(cluster, tmp_path, 4, "d")
        wait_for("broker 4 registered", lambda: 4 in registered(cluster.brokers[1]), logs=cluster.logs)
        b4.kill()
        acked = send(cluster.bootstrap, TOPIC, 0, [f"a-{i}".encode() for i in range(100)])
        current = replicas(cluster.kafka_ports[1], TOPIC)[0]
        target = [*current[:2], 4]
        controller = wait_for("a controller", partial(_controller_of, cluster.kafka_ports[1]))
        cport = cluster.kafka_ports[controller]
        assert _alter(cport, {(TOPIC, 0): target}) == {(TOPIC, 0): 0}
        assert _ongoing(cport) == {(TOPIC, 0): [*current, 4]}
        leader = partition_leader(Producer({"bootstrap.servers": cluster.bootstrap}), TOPIC, 0)
        cluster.brokers[leader].kill()
        cluster.brokers[leader].start()
        acked += send(cluster.bootstrap, TOPIC, 0, [f"b-{i}".encode() for i in range(100)])
        b4.start()

        def moved() -> bool:
            views = [replicas(p, TOPIC)[0] for p in cluster.kafka_ports.values()]
            return all(v == target for v in views) and not _ongoing(cport)

        wait_for(f"{TOPIC}-0 moved to {target} after the restart", moved, timeout=90, logs=cluster.logs)
        got = read_all(cluster.bootstrap, TOPIC, 0, len(acked), cluster.logs)
        assert set(acked) <= set(got) and len(got) == len(set(got)), "acked records lost or duplicated"
