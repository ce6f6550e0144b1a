"""The controller group's state is snapshotted and its Raft log compacted on every broker (real processes,
SIGKILL): a broker restarted on its own disk rebuilds the cluster metadata from its snapshot plus the
entries after it, and a broker restarted on an EMPTY disk gets the snapshot from the controller leader
(InstallSnapshot). Either way it must serve Metadata for every topic and hold its replicas again."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import pytest
from confluent_kafka import Message, Producer
from confluent_kafka.admin import AdminClient
from streamraft_broker.controller.state import CONTROLLER_GROUP, ControllerState
from streamraft_consensus.core.storage import Compacted
from streamraft_consensus.storage import codec
from streamraft_consensus.storage.files import read_checked
from streamraft_consensus.storage.segment_log import _SNAP_MAGIC, SegmentLog

from tests.support.broker_process import BrokerProcess
from tests.support.history import History
from tests.support.launcher import Cluster, _admin_conf, consume_all, create_topic, wait_controller
from tests.support.membership import add_broker, registered, rejoin_view
from tests.support.poll import poll, wait_for
from tests.support.wire import metadata_topics

pytestmark = pytest.mark.timeout(300)

THRESHOLD = 20
"""Controller entries between snapshots: low, so creating the topics below crosses it."""
TOPICS = {f"t{i:02d}": 1 + i % 3 for i in range(24)}
GONE = "gone"
"""Created and deleted before the snapshot: must never come back."""
CONSUMED = ("t00", "t01", "t02", "t23")
"""Topics read back in full after the produce (reading all 24 would only make the test slower)."""


def _controller_dir(broker: BrokerProcess) -> Path:
    return broker.data_dir / "raft" / f"group-{CONTROLLER_GROUP}"


def _read_snapshot(broker: BrokerProcess) -> tuple[int, ControllerState] | None:
    """The broker's controller snapshot on disk: (index, state), None if it has none (yet)."""
    for path in sorted(_controller_dir(broker).glob("snap-*.snap"), reverse=True):
        try:
            meta, data = codec.decode_snapshot(read_checked(path, _SNAP_MAGIC))
        except FileNotFoundError:
            continue  # replaced by a newer one while listing
        return meta.index, ControllerState.from_snapshot(data)
    return None


def _snapshotted_everywhere(cluster: Cluster) -> dict[int, tuple[int, ControllerState]]:
    """Waits until every broker holds a snapshot taken after GONE was deleted and some topics created."""
    found: dict[int, tuple[int, ControllerState]] = {}

    def ready() -> bool:
        for n, b in cluster.brokers.items():
            snap = _read_snapshot(b)
            if snap is None or GONE not in snap[1].deleted_topics or not set(TOPICS) & set(snap[1].topics):
                return False
            found[n] = snap
        return True

    poll("a controller snapshot on every broker", ready, 60)
    return found


def _create_topics(cluster: Cluster) -> None:
    create_topic(cluster, GONE, 1)
    admin = AdminClient(_admin_conf(cluster.bootstrap))
    admin.delete_topics([GONE], operation_timeout=10)[GONE].result(30)
    for name, partitions in TOPICS.items():
        create_topic(cluster, name, partitions)


def _metadata(port: int) -> dict[str, tuple[str, dict[int, int]]]:
    """This broker's own Metadata answer: topic -> (topic id, {partition: leader}) for error-free topics."""
    return {
        str(t.name): (str(t.topic_id), {int(p.partition_index): int(p.leader_id) for p in t.partitions})
        for t in metadata_topics("127.0.0.1", port, 5)
    }


def _serves_metadata(cluster: Cluster, node: int, expected: dict[str, int]) -> None:
    """Waits until ``node`` itself lists exactly the expected topics (with the ids a healthy broker
    reports), each with its partitions and a live leader for every one; GONE never listed."""
    live = {n for n, b in cluster.brokers.items() if b.running}
    reference = next(n for n in sorted(live) if n != node)
    seen: dict[str, tuple[str, dict[int, int]]] = {}

    def matches() -> bool:
        seen.clear()
        seen.update(_metadata(cluster.kafka_ports[node]))
        assert GONE not in seen, f"deleted topic {GONE} is back on broker {node}"
        ids = _metadata(cluster.kafka_ports[reference])
        for name, partitions in expected.items():
            if name not in seen or seen[name][0] != ids.get(name, ("",))[0]:
                return False
            leaders = seen[name][1]
            if sorted(leaders) != list(range(partitions)) or not set(leaders.values()) <= live:
                return False
        return True

    try:
        poll(f"broker {node} serves Metadata for every topic", matches, 90)
    except AssertionError as exc:
        missing = sorted(set(expected) - set(seen))
        raise AssertionError(f"{exc}: it lists {sorted(seen)}, missing {missing}\n{cluster.logs()}") from None


def _log_since(broker: BrokerProcess, offset: int) -> str:
    with broker.log_path.open("rb") as f:
        f.seek(offset)
        return f.read().decode(errors="replace")


def _produce_and_read(cluster: Cluster, expected: dict[str, int], tag: str) -> None:
    """One acks=all record to every partition of every topic through the live brokers, then some topics
    read back whole (every record ever acknowledged in them, in order)."""
    live = ",".join(f"127.0.0.1:{cluster.kafka_ports[n]}" for n, b in cluster.brokers.items() if b.running)
    producer = Producer({"bootstrap.servers": live, "acks": "all", "message.timeout.ms": 90_000})
    acked: dict[str, list[tuple[int, int, bytes]]] = {name: [] for name in expected}
    errors: list[object] = []

    def on_delivery(err: object, msg: Message) -> None:
        part, offset, value, topic = msg.partition(), msg.offset(), msg.value(), msg.topic()
        if err is not None:
            errors.append(err)
        elif part is not None and offset is not None and isinstance(value, bytes) and topic is not None:
            acked[topic].append((part, offset, value))

    for name, partitions in expected.items():
        for p in range(partitions):
            producer.produce(name, value=f"{tag}-{name}-{p}".encode(), partition=p, on_delivery=on_delivery)
            producer.poll(0)
    assert producer.flush(120) == 0, f"records left unacknowledged\n{cluster.logs()}"
    assert not errors, errors[:3]
    for name in CONSUMED:
        history = History()
        history.acked = acked[name]
        ends = {p: 1 + max(o for part, o, _ in acked[name] if part == p) for p in range(expected[name])}
        consume_all(live, f"reader-{tag}-{name}", name, ends, history)
        problems = history.check()
        assert not problems, (name, problems[:5])


def _compacted_then_kill_a_follower(cluster: Cluster) -> tuple[int, int]:
    """Topics created (one deleted) until every broker snapshotted the controller group, then a broker other
    than the controller leader SIGKILLed. Returns (controller, victim)."""
    _create_topics(cluster)
    _snapshotted_everywhere(cluster)
    controller = wait_controller(cluster)
    victim = next(n for n in sorted(cluster.brokers) if n != controller)
    cluster.brokers[victim].kill()
    return controller, victim


def test_restart_on_own_disk_rebuilds_metadata_from_the_controller_snapshot(tmp_path: Path) -> None:
    with Cluster(tmp_path, 3, extra_args=("--controller-snapshot-entries", str(THRESHOLD))) as cluster:
        controller, victim = _compacted_then_kill_a_follower(cluster)
        broker = cluster.brokers[victim]

        # On the victim's disk the controller log Raft will read starts after the snapshot, not at 1.
        snap = _read_snapshot(broker)
        assert snap is not None
        index, saved = snap
        assert index >= THRESHOLD and GONE in saved.deleted_topics
        storage = SegmentLog(_controller_dir(broker))
        try:
            assert storage.first_index() == index + 1
            with pytest.raises(Compacted):
                storage.entries(1, 2)
        finally:
            storage.close()

        offset = broker.log_path.stat().st_size
        broker.start()
        _serves_metadata(cluster, victim, TOPICS)
        restarted = _log_since(broker, offset)
        assert f"event=controller_snapshot_restored node={victim} index={index} " in restarted
        assert re.search(rf"event=group_created node={victim} group=1 .*applied={index}\b", restarted), (
            "the controller group did not start from its snapshot"
        )

        # With the controller leader down too, every partition needs the restarted broker's replica.
        cluster.brokers[controller].kill()
        _serves_metadata(cluster, victim, TOPICS)
        _produce_and_read(cluster, TOPICS, "after-restart")


def _rebuilt_everywhere(cluster: Cluster, node: int, groups: int) -> bool:
    """``node`` finished rebuilding its wiped disk: every group it should host (the controller group and
    ``groups`` partitions at least) is hosted and recovered, and it is a voter in each, in every view."""
    own = rejoin_view(cluster.brokers[node].admin_port)
    if own["state"] != "done" or own["recovering"] or len(own["groups"]) < 1 + groups:
        return False
    for n, b in cluster.brokers.items():
        view = own if n == node else rejoin_view(b.admin_port)
        for gid, g in view["groups"].items():
            if gid in own["groups"] and node not in g["voters"]:
                return False
    return True


def test_broker_on_an_empty_disk_gets_the_controller_snapshot_from_the_leader(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path, 3, extra_args=("--controller-snapshot-entries", str(THRESHOLD)))
    for b in cluster.brokers.values():
        b.metrics = True  # for the rejoin view
    with cluster:
        controller, victim = _compacted_then_kill_a_follower(cluster)
        broker = cluster.brokers[victim]
        offset = broker.log_path.stat().st_size
        shutil.rmtree(broker.data_dir)
        broker.start()
        expected = {**TOPICS, "after": 2}
        create_topic(cluster, "after", 2)  # after the snapshot: reaches the victim as a log entry

        _serves_metadata(cluster, victim, expected)
        restarted = _log_since(broker, offset)
        assert re.search(rf"event=controller_snapshot_restored node={victim} .*replaying=False", restarted), (
            "the controller state did not come from the leader's snapshot"
        )
        snap = _read_snapshot(broker)
        assert snap is not None and GONE in snap[1].deleted_topics, "the installed snapshot is not on disk"

        deadline = time.monotonic() + 120
        while not _rebuilt_everywhere(cluster, victim, sum(expected.values())):
            assert time.monotonic() < deadline, f"broker {victim} never finished rebuilding\n{cluster.logs()}"
            time.sleep(0.2)  # pacing between admin polls
        cluster.brokers[controller].kill()
        _serves_metadata(cluster, victim, expected)
        _produce_and_read(cluster, expected, "after-wipe")


def test_broker_joining_after_compaction_gets_a_snapshot_naming_it(tmp_path: Path) -> None:
    """A broker that joins the controller group (as a learner) after every snapshot was taken cannot
    restore those: the Raft core refuses a snapshot whose configuration lacks it, and the entries before
    them are gone. The configuration change that adds it makes every broker snapshot again."""
    joinable = ("--controller-snapshot-entries", str(THRESHOLD), "--allow-broker-join", "true")
    with Cluster(tmp_path, 3, extra_args=joinable) as cluster:
        _create_topics(cluster)
        _snapshotted_everywhere(cluster)
        joined = add_broker(cluster, tmp_path, 4, "a")
        wait_for("broker 4 sees its own registration", lambda: 4 in registered(joined), logs=cluster.logs)
        _serves_metadata(cluster, 4, TOPICS)
        assert "event=controller_snapshot_restored node=4 " in joined.log_path.read_text(errors="replace")
