"""A broker restarted on an EMPTY data directory (its volume lost) rejoins without ever voting or counting
with its blank state: it is demoted to learner in every group it was a voter of, catches up from the
leaders, is promoted back, and then the cluster survives losing another broker with every acknowledged
write readable (real processes, SIGKILL, history checker)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from tests.support.history import History
from tests.support.launcher import Cluster, consume_all, create_topic, partition_leader, wait_controller
from tests.support.membership import rejoin_view
from tests.support.metrics import metrics_cluster
from tests.support.poll import poll

pytestmark = pytest.mark.timeout(300)

TOPIC = "wiped"
PARTITIONS = 2
PER_PHASE = 200


def _produce(producer: Producer, history: History, phase: str) -> None:
    errors: list[Any] = []

    def on_delivery(err: Any, msg: Any) -> None:
        if err is not None:
            errors.append(err)
        else:
            history.acked.append((int(msg.partition()), int(msg.offset()), bytes(msg.value())))

    for i in range(PER_PHASE):
        producer.produce(
            TOPIC, value=f"{phase}-{i}".encode(), partition=i % PARTITIONS, on_delivery=on_delivery
        )
        producer.poll(0)
    assert producer.flush(90) == 0, "messages left unacknowledged"
    assert not errors, errors[:3]


def _voter_everywhere(cluster: Cluster, node: int) -> bool:
    """Every group hosted on ``node`` has it as a voter, in its own view and in every other broker's view
    of the groups they share, and ``node`` has finished rebuilding (marker gone)."""
    own = rejoin_view(cluster.brokers[node].admin_port)
    if own["state"] != "done" or own["recovering"]:
        return False
    for n, b in cluster.brokers.items():
        if not b.running:
            continue
        view = own if n == node else rejoin_view(b.admin_port)
        for gid, g in view["groups"].items():
            if gid in own["groups"] and node not in g["voters"]:
                return False
    # The controller group and both partitions (plus __consumer_offsets if created) are hosted.
    return len(own["groups"]) >= 1 + PARTITIONS


def _wipe_and_restart(cluster: Cluster, victim: int) -> None:
    broker = cluster.brokers[victim]
    broker.kill()
    shutil.rmtree(broker.data_dir)
    broker.start()


def _check_all_readable(cluster: Cluster, history: History, name: str, total: int) -> None:
    ends = {p: 1 + max(o for part, o, _ in history.acked if part == p) for p in range(PARTITIONS)}
    live = ",".join(f"127.0.0.1:{cluster.kafka_ports[n]}" for n, b in cluster.brokers.items() if b.running)
    consume_all(live, name, TOPIC, ends, history)
    problems = history.check()
    assert not problems, problems[:10]
    assert sum(len(v) for v in history.reads[name].values()) == total


def _scenario(tmp_path: Path, pick_victim: str) -> None:
    history = History()
    with metrics_cluster(tmp_path) as cluster:
        create_topic(cluster, TOPIC, PARTITIONS)
        producer = Producer(
            {
                "bootstrap.servers": cluster.bootstrap,
                "acks": "all",
                "enable.idempotence": True,
                "message.timeout.ms": 90_000,
            }
        )
        _produce(producer, history, "before")
        controller = wait_controller(cluster)
        if pick_victim == "controller":
            victim = controller
        else:
            leader0 = partition_leader(producer, TOPIC, 0)
            victim = next(n for n in sorted(cluster.brokers) if n not in (controller, leader0))

        # A brand-new cluster: the launcher starts brokers one after another, so the first ones find each
        # other blank and form it ("fresh"); a later one may find it formed and go through a rejoin.
        def settled() -> bool:
            views = [rejoin_view(b.admin_port) for b in cluster.brokers.values()]
            if not all(v["state"] in ("fresh", "done") and not v["recovering"] for v in views):
                return False
            # ... and the late one, if any, promoted back everywhere (no move runs here: no learners).
            return all(not g["learners"] for v in views for g in v["groups"].values())

        poll("every broker settled after the first start", settled, 60)

        _wipe_and_restart(cluster, victim)
        _produce(producer, history, "during")
        poll(f"broker {victim} rebuilt and a voter again", lambda: _voter_everywhere(cluster, victim), 90)
        _produce(producer, history, "after")
        _check_all_readable(cluster, history, "reader-rejoined", 3 * PER_PHASE)

        # The rebuilt broker now holds a quorum's share: losing another broker keeps everything readable
        # and writable (with only its pre-wipe state this would need the killed broker's disk).
        other = next(n for n in sorted(cluster.brokers) if n != victim)
        cluster.brokers[other].kill()
        _produce(producer, history, "one-down")
        producer.flush(10)
        _check_all_readable(cluster, history, "reader-one-down", 4 * PER_PHASE)


def test_wiped_follower_rejoins_as_voter_after_catching_up(tmp_path: Path) -> None:
    _scenario(tmp_path, "follower")


def test_wiped_controller_leader_rejoins(tmp_path: Path) -> None:
    _scenario(tmp_path, "controller")
