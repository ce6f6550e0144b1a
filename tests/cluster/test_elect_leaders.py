"""ElectLeaders on real brokers: ``kafka-leader-election --election-type preferred`` moves Raft leadership
back to each partition's first replica after it moved away; unclean elections are never needed while a
partition has a leader (Raft never elects a replica missing committed records); one node needs none."""

from __future__ import annotations

import re
import time
from pathlib import Path

import kafka.errors
import pytest
from confluent_kafka.admin import AdminClient
from kafka import KafkaAdminClient

from tests.javakafka.fetch import is_fetched
from tests.javakafka.tools import LEADER_ELECTION, run_tool
from tests.support.broker import running_broker
from tests.support.launcher import Cluster, create_topic, wait_controller
from tests.support.membership import admin

PARTITIONS = 3
PREFERRED, UNCLEAN = 0, 1
ELECTION_NOT_NEEDED = 84


def _leaders(bootstrap: str, topic: str) -> dict[int, tuple[int, int]]:
    """partition -> (leader, preferred replica), once every partition has a leader."""
    deadline = time.monotonic() + 30
    while True:
        md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, timeout=5).topics.get(topic)
        parts = md.partitions if md is not None else {}
        if len(parts) == PARTITIONS and all(p.leader > 0 for p in parts.values()):
            return {i: (p.leader, p.replicas[0]) for i, p in parts.items()}
        assert time.monotonic() < deadline, f"partitions without a leader: {parts}"
        time.sleep(0.1)  # pacing between metadata polls


def _codes(response: object) -> dict[tuple[str, int], int]:
    return {
        (r.topic, p.partition_id): p.error_code
        for r in response.replica_election_results  # type: ignore[attr-defined]
        for p in r.partition_result
    }


@pytest.mark.java
def test_preferred_election_moves_leaders_back(tmp_path: Path) -> None:
    if not is_fetched():
        pytest.fail("Apache Kafka jars missing; run `bash .ci/prepare-kafka`")
    topic = "elect"
    # No automatic rebalancing: only the election may bring leaders back (Kafka's
    # auto.leader.rebalance.enable=false).
    with Cluster(tmp_path, 3, ("--auto-leader-rebalance-enable", "false")) as cluster:
        wait_controller(cluster)
        create_topic(cluster, topic, PARTITIONS)
        leader, preferred = _leaders(cluster.bootstrap, topic)[0]
        if leader == preferred:
            status, body = admin(cluster.brokers[preferred], "POST", "/admin/leadership/handoff")
            assert status == 200, body
        before = _leaders(cluster.bootstrap, topic)
        moved = sorted(p for p, (lead, pref) in before.items() if lead != pref)
        assert 0 in moved, before

        out = run_tool(
            LEADER_ELECTION,
            [
                "--bootstrap-server",
                cluster.bootstrap,
                "--election-type",
                "preferred",
                "--all-topic-partitions",
            ],
        ).stdout
        done = re.search(r"Successfully completed leader election \(PREFERRED\) for partitions (.*)", out)
        assert done is not None, out
        # (The broker's own __consumer_offsets partitions may be listed too: their leaders are as random.)
        elected = [tp.rsplit("-", 1) for tp in done[1].split(", ")]
        assert sorted(int(p) for t, p in elected if t == topic) == moved, out
        assert all(lead == pref for lead, pref in _leaders(cluster.bootstrap, topic).values())

        client = KafkaAdminClient(bootstrap_servers=cluster.bootstrap)
        try:
            # Nothing left to elect: every partition answers ELECTION_NOT_NEEDED, preferred and unclean.
            for kind in (PREFERRED, UNCLEAN):
                answer = client.elect_leaders(kind, {topic: list(range(PARTITIONS))}, raise_errors=False)
                assert set(_codes(answer).values()) == {ELECTION_NOT_NEEDED}, (kind, answer)
            missing = client.elect_leaders(PREFERRED, {f"{topic}-missing": [0]}, raise_errors=False)
            assert _codes(missing) == {
                (f"{topic}-missing", 0): kafka.errors.UnknownTopicOrPartitionError.errno
            }
        finally:
            client.close()


def test_one_node_never_needs_an_election() -> None:
    with running_broker(metrics=False) as broker:
        client = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
        try:
            client.create_topics([kafka.admin.NewTopic("solo", 2, 1)])
            answer = client.elect_leaders(PREFERRED, {"solo": [0, 1]}, raise_errors=False)
            assert _codes(answer) == {("solo", 0): ELECTION_NOT_NEEDED, ("solo", 1): ELECTION_NOT_NEEDED}
        finally:
            client.close()
