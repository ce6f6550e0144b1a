"""Controller commands are validated when applied: an invalid one changes nothing, on every broker alike.

Regression: a create_topic entry forged into the controller log (over an unauthenticated Raft port) named
``../../../../victim/x``; every broker applied it and wrote segment files outside its data directory."""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from pathlib import Path
from typing import Any

import pytest
from streamraft_broker.controller.commands import AddPartitions, CreateTopic, Reassign, encode
from streamraft_broker.controller.state import (
    BrokerReg,
    ControllerState,
)
from streamraft_broker.controller.validation import InvalidCommand, validate_topic_name
from streamraft_broker.topics.paths import UnsafePath, partition_dir


def _cmd(**fields: Any) -> bytes:
    return json.dumps(fields).encode()


def _create(name: str = "t", replicas: Any = None, configs: Any = None, topic_id: Any = None) -> bytes:
    return _cmd(
        op="create_topic",
        name=name,
        id=str(uuid.uuid4()) if topic_id is None else topic_id,
        replicas=[[1, 2, 3]] if replicas is None else replicas,
        configs={} if configs is None else configs,
    )


def _state() -> ControllerState:
    state = ControllerState()
    for n in (1, 2, 3):
        state.apply(encode(BrokerReg(n, "127.0.0.1", 9000 + n, f"127.0.0.1:{9100 + n}", None, "i").command()))
    return state


@pytest.mark.parametrize(
    "name",
    ["../../../../victim/x", "..", ".", "", "a/b", "a\\b", "x" * 250, "caf\u00e9", "a b", "nul\x00", 7, None],
)
def test_create_topic_with_an_illegal_name_is_rejected_and_changes_nothing(name: Any) -> None:
    state = _state()
    before = state.to_snapshot()
    with pytest.raises(InvalidCommand, match="topic name"):
        state.apply(_create(name))
    assert state.to_snapshot() == before


def test_kafka_legal_names_are_accepted() -> None:
    state = _state()
    for name in ("a", "A.b_c-9", "x" * 249, "..a", "__consumer_offsets"):
        state.apply(_create(name))
    assert len(state.topics) == 5


@pytest.mark.parametrize(
    ("command", "reason"),
    [
        (_create(replicas=[]), "non-empty list"),
        (_create(replicas=[[1, 1, 2]]), "twice"),
        (_create(replicas=[[0]]), "not a node id"),
        (_create(replicas=[[True]]), "not a node id"),
        (_create(replicas=[["1"]]), "not a node id"),
        (_create(replicas=[[]]), "1..256"),
        (_create(replicas=[[1]] * 10_001), "exceed the limit"),
        (_create(replicas=[1, 2]), "node ids"),
        (_create(configs={"retention.ms": 5}), "value is not a string"),
        (_create(configs=["x"]), "object"),
        (_create(topic_id="not-a-uuid"), "UUID"),
        (_create(topic_id=12), "UUID"),
        (encode(AddPartitions("t", ((1, 2, 2),))), "twice"),
        (encode(Reassign("t", 0, (4, 4))), "twice"),
        (encode(Reassign("t", -1, (4,))), "partition"),
        (
            _cmd(
                op="register_broker",
                id=0,
                kafka_host="h",
                kafka_port=1,
                raft="h:1",
                rack=None,
                incarnation="i",
            ),
            "id",
        ),
        (
            _cmd(
                op="register_broker",
                id=4,
                kafka_host="h",
                kafka_port=70000,
                raft="h:1",
                rack=None,
                incarnation="i",
            ),
            "kafka_port",
        ),
        (
            _cmd(
                op="register_broker",
                id=4,
                kafka_host="",
                kafka_port=1,
                raft="h:1",
                rack=None,
                incarnation="i",
            ),
            "kafka_host",
        ),
        (
            _cmd(
                op="register_broker", id=4, kafka_host="h", kafka_port=1, raft="h", rack=None, incarnation="i"
            ),
            "raft address",
        ),
        (
            _cmd(
                op="register_broker", id=4, kafka_host="h", kafka_port=1, raft="h:1", rack=5, incarnation="i"
            ),
            "rack",
        ),
        (_cmd(op="decommission_broker", id="1"), "id"),
        (_cmd(op="delete_topic", name=["t"]), "topic name"),
        (_cmd(op="allocate_producer_ids", broker=True, request="r", size=10), "broker"),
        (_cmd(op="allocate_producer_ids", broker=1, request="r", size=0), "block size"),
        (b"\xff\xfe", "rejected"),
        (b"[1, 2]", "JSON object"),
    ],
)
def test_malformed_commands_are_rejected_and_change_nothing(command: bytes, reason: str) -> None:
    state = _state()
    state.apply(encode(CreateTopic("t", uuid.uuid4(), ((1, 2, 3),), {})))
    before = state.to_snapshot()
    with pytest.raises(InvalidCommand, match=reason):
        state.apply(command)
    assert state.to_snapshot() == before


def test_every_replica_reaches_the_same_state_through_rejections() -> None:
    log = [
        _create("good"),
        _create("../escape"),
        encode(AddPartitions("good", ((2, 3, 1),))),
        encode(AddPartitions("good", ((2, 2),))),
        _create("good2", configs={"cleanup.policy": "compact"}),
    ]
    snapshots = []
    for _ in range(2):
        state = _state()
        for entry in log:
            with contextlib.suppress(InvalidCommand):
                state.apply(entry)
        snapshots.append(state.to_snapshot())
    assert snapshots[0] == snapshots[1]
    restored = ControllerState.from_snapshot(snapshots[0])
    assert sorted(restored.topics) == ["good", "good2"]
    assert len(restored.topics["good"].replicas) == 2


def test_validate_topic_name_raises_value_error_naming_the_problem() -> None:
    with pytest.raises(ValueError, match="longer than 249"):
        validate_topic_name("y" * 250)
    validate_topic_name("ok")


def test_partition_dirs_never_leave_the_data_dir(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "logs").mkdir(parents=True)
    assert partition_dir(data, "t", 3) == (data / "logs").resolve() / "t-3"
    for name in ("../../victim/x", "../x", "a/b", "a\x00b"):
        with pytest.raises(UnsafePath):
            partition_dir(data, name, 0)
    # A symlink planted in logs/ pointing out is refused too.
    os.symlink(tmp_path, data / "logs" / "evil-0")
    with pytest.raises(UnsafePath, match="outside"):
        partition_dir(data, "evil", 0)
