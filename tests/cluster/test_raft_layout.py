"""A data directory written with one --raft-log layout is refused by the other, before anything is deleted."""

from __future__ import annotations

from pathlib import Path

import pytest
from confluent_kafka import Producer
from streamraft_broker.replication.service import check_raft_layout

from tests.support.history import History
from tests.support.launcher import Cluster, consume_all, create_topic

pytestmark = pytest.mark.timeout(120)


def test_layouts_are_told_apart(tmp_path: Path) -> None:
    raft = tmp_path / "raft"
    assert check_raft_layout(raft, partition_raft_log=True) is None  # nothing written yet
    (raft / "group-1").mkdir(parents=True)  # the controller group: a SegmentLog in either layout
    (raft / "group-1" / "00000000000000000001.seg").write_bytes(b"")
    assert check_raft_layout(raft, partition_raft_log=True) is None
    (raft / "group-7").mkdir()
    (raft / "group-7" / "00000000000000000001.seg").write_bytes(b"")
    problem = check_raft_layout(raft, partition_raft_log=True)
    assert problem is not None and "group-7" in problem and "--raft-log separate" in problem
    assert check_raft_layout(raft, partition_raft_log=False) is None
    (raft / "group-9").mkdir()
    (raft / "group-9" / "entries").write_bytes(b"")
    problem = check_raft_layout(raft, partition_raft_log=False)
    assert problem is not None and "group-9" in problem and "--raft-log partition" in problem


def test_broker_refuses_the_other_layout_and_keeps_the_partition_log(tmp_path: Path) -> None:
    with Cluster(tmp_path, 1) as cluster:
        create_topic(cluster, "kept", 1, rf=1)
        producer = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all"})
        producer.produce("kept", value=b"v" * 100, partition=0)
        assert producer.flush(30) == 0
        broker = cluster.brokers[1]
        broker.terminate()
        segment = next((broker.data_dir / "state" / "logs" / "kept-0").glob("*.log"))
        size = segment.stat().st_size
        assert size > 100
        broker.env = {"STREAMRAFT_RAFT_LOG": "separate"}
        with pytest.raises(RuntimeError, match=r"written with --raft-log partition"):
            broker.start()
        assert segment.stat().st_size == size  # refused before the start-up cleanup could delete it
        broker.env = None
        broker.start()


def test_separate_layout_still_replicates_and_survives_sigkill(tmp_path: Path) -> None:
    """--raft-log separate (a consensus log beside the partition log, copied as it applies) stays usable."""
    with Cluster(tmp_path, 3, extra_args=("--raft-log", "separate")) as cluster:
        create_topic(cluster, "sep", 1)
        producer = Producer(
            {"bootstrap.servers": cluster.bootstrap, "acks": "all", "enable.idempotence": True}
        )
        for i in range(200):
            producer.produce("sep", value=f"r{i}".encode(), partition=0)
        assert producer.flush(30) == 0
        for b in cluster.brokers.values():
            b.kill()
        for b in cluster.brokers.values():
            b.start()
        history = History()
        consume_all(cluster.bootstrap, "after", "sep", {0: 200}, history)
        assert [v for _, v in history.reads["after"][0]] == [f"r{i}".encode() for i in range(200)]
        assert any((b.data_dir / "raft").glob("group-*/*.seg") for b in cluster.brokers.values())
