"""Replication metrics and the leadership hand-off endpoint on a real 3-broker cluster."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest
from confluent_kafka import Producer

from tests.support.launcher import create_topic
from tests.support.metrics import Samples, hosted, metrics_cluster, scrape, value
from tests.support.poll import poll

pytestmark = pytest.mark.timeout(300)

TOPIC = "observed"
PARTITIONS = 6


def handoff(port: int) -> dict[str, int]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/admin/leadership/handoff", data=b"", method="POST")
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 200
        body: dict[str, int] = json.loads(resp.read())
        return body


def test_replication_metrics_and_handoff(tmp_path: Path) -> None:
    with metrics_cluster(tmp_path) as cluster:
        ports = {n: b.metrics_port for n, b in cluster.brokers.items()}
        create_topic(cluster, TOPIC, PARTITIONS)

        def led() -> dict[int, int]:
            return {n: int(value(scrape(p), "streamraft_partitions_led")) for n, p in ports.items()}

        # Every partition has exactly one leader, counted by the broker that leads it.
        samples: dict[int, Samples] = {}

        def settled() -> bool:
            samples.update({n: scrape(p) for n, p in ports.items()})
            return (
                # RF=3 on 3 brokers: every broker hosts every partition (ours, and any internal topic's)
                # and knows its leader.
                len({hosted(s) for s in samples.values()}) == 1
                and all(hosted(s, TOPIC) == PARTITIONS for s in samples.values())
                and sum(value(s, "streamraft_partitions_led") for s in samples.values()) == hosted(samples[1])
                and all(value(s, "streamraft_leaderless_partitions") == 0 for s in samples.values())
                and len({value(s, "streamraft_controller_leader_id") for s in samples.values()}) == 1
            )

        poll("every partition led once and known everywhere", settled)
        total = hosted(samples[1])
        with urllib.request.urlopen(f"{cluster.brokers[2].admin_url}/admin/health", timeout=10) as resp:
            health = json.loads(resp.read())
        assert health["status"] == "ok" and health["node_id"] == 2 and health["leaderless"] == 0, health
        controllers = {value(s, "streamraft_controller_leader_id") for s in samples.values()}
        assert controllers.pop() in ports
        assert all(v >= 1 for s in samples.values() for _, v in s["streamraft_raft_term"])
        assert sum(value(s, "streamraft_raft_elections_total") for s in samples.values()) >= PARTITIONS

        producer = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all", "linger.ms": 5})
        for i in range(600):
            producer.produce(TOPIC, value=b"v" * 1000, partition=i % PARTITIONS)
            producer.poll(0)
        assert producer.flush(60) == 0
        produced = sum(
            v
            for p in ports.values()
            for labels, v in scrape(p).get("streamraft_messages_in_total", [])
            if labels["topic"] == TOPIC
        )
        # Counted once, where the batch was accepted (the leader), from the batch headers.
        assert produced == 600, produced
        commits = sum(
            value(scrape(p), "streamraft_raft_commit_latency_seconds_count") for p in ports.values()
        )
        assert commits >= PARTITIONS  # batches are counted where they were proposed (the leaders)
        poll(
            "no follower lag once idle",
            lambda: all(
                value(scrape(p), "streamraft_raft_follower_lag_entries") == 0 for p in ports.values()
            ),
        )

        # Idle groups quiesce, and their lag series stay (at zero): one per follower of each partition.
        poll(
            "a lag series per follower of each of our partitions",
            lambda: (
                sum(
                    labels["topic"] == TOPIC
                    for p in ports.values()
                    for labels, _ in scrape(p).get("streamraft_raft_follower_lag_entries", [])
                )
                == 2 * PARTITIONS
            ),
        )

        # Hand-off: the busiest broker gives every leadership away and says so.
        counts = led()
        busiest = max(counts, key=lambda n: counts[n])
        assert counts[busiest] >= 1
        answer = handoff(cluster.brokers[busiest].admin_port)
        # "of" also counts the controller group when this broker leads it.
        assert answer["moved"] == answer["of"] >= counts[busiest], (answer, counts)
        # The gauge is refreshed by the hand-off itself (the preStop hook reads it next); only the 10 s
        # preferred-leader balancing could have moved a leadership back this soon.
        assert value(scrape(ports[busiest]), "streamraft_partitions_led") <= 1

        # A dead broker: the survivors' leaders see a voter gone, and leadership moves off the dead one.
        changes_before = sum(value(scrape(p), "streamraft_raft_leader_changes_total") for p in ports.values())
        victim = max((n for n in ports if n != busiest), key=lambda n: led()[n])
        victim_changes = value(scrape(ports[victim]), "streamraft_raft_leader_changes_total")
        cluster.brokers[victim].kill()
        alive = [n for n in ports if n != victim]
        poll(
            "survivors lead every partition",
            lambda: sum(int(value(scrape(ports[n]), "streamraft_partitions_led")) for n in alive) == total,
        )
        poll(
            "every partition under-replicated without the dead broker",
            lambda: (
                sum(value(scrape(ports[n]), "streamraft_under_replicated_partitions") for n in alive) == total
            ),
        )
        # Partitions the victim led changed leader on both survivors: their counters grew.
        changes_after = sum(value(scrape(ports[n]), "streamraft_raft_leader_changes_total") for n in alive)
        survivors_before = changes_before - victim_changes
        assert changes_after > survivors_before, (changes_before, victim_changes, changes_after)
        cluster.brokers[victim].start()
        ports[victim] = cluster.brokers[victim].metrics_port
        poll(
            "fully replicated again after the restart",
            lambda: (
                sum(value(scrape(p), "streamraft_under_replicated_partitions") for p in ports.values()) == 0
            ),
            timeout=60,
        )
