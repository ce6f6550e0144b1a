"""The controller state's snapshot format and what a broker must do when a snapshot replaces its state
(no processes; the brokers' side is in test_controller_snapshot.py)."""

from __future__ import annotations

import json
import uuid

import pytest
from streamraft_broker.controller.commands import (
    AddPartitions,
    AllocateProducerIds,
    CreateTopic,
    DecommissionBroker,
    DeleteTopic,
    Reassign,
    Reassigned,
    UnregisterBroker,
    encode,
)
from streamraft_broker.controller.state import (
    BROKER_DECOMMISSIONED,
    BROKER_DECOMMISSIONING,
    SNAPSHOT_VERSION,
    ControllerState,
    changes_between,
)

from tests.support.controller import broker_reg


def _commands() -> list[bytes]:
    """A cluster's life: registrations (one broker back on a new disk, one decommissioned), topics with
    configs, partitions added, moves finished and in progress, a delete, producer-id blocks."""
    return [
        encode(broker_reg(1, "a").command()),
        encode(broker_reg(2, "b").command()),
        encode(broker_reg(3, None).command()),
        encode(broker_reg(4, "a").command()),
        encode(broker_reg(5, "b").command()),
        encode(CreateTopic("orders", uuid.uuid4(), ((1, 2, 3), (2, 3, 4)), {"retention.ms": "60000"})),
        encode(CreateTopic("gone", uuid.uuid4(), ((3, 4, 5),), {})),
        encode(CreateTopic("events", uuid.uuid4(), ((4, 5, 1),), {"cleanup.policy": "compact"})),
        encode(AllocateProducerIds(2, "req-a", 1000)),
        encode(AddPartitions("orders", ((3, 4, 5),))),
        encode(Reassign("orders", 0, (5, 2, 3))),
        encode(Reassigned("orders", 0, (5, 2, 3))),
        encode(Reassign("events", 0, (2, 5, 1))),  # still moving when the snapshot is taken
        encode(DeleteTopic("gone")),
        encode(broker_reg(2, "b", incarnation="inc-2", port=7000).command()),  # restarted on an empty disk
        encode(DecommissionBroker(5)),
        encode(DecommissionBroker(4)),
        encode(UnregisterBroker(4)),
        encode(AllocateProducerIds(1, "req-b", 500)),
        encode(AllocateProducerIds(2, "req-c", 250)),
    ]


def _built(commands: list[bytes]) -> ControllerState:
    state = ControllerState()
    for c in commands:
        state.apply(c)
    return state


def _assert_same(a: ControllerState, b: ControllerState) -> None:
    assert a.topics == b.topics
    assert list(a.topics) == list(b.topics), "topic order (log order) changed"
    assert a.brokers == b.brokers
    assert list(a.brokers) == list(b.brokers)
    assert a.deleted_topics == b.deleted_topics
    assert a.producer_ids == b.producer_ids


def test_snapshot_round_trips_everything_the_state_holds() -> None:
    state = _built(_commands())
    # The sequence really exercised every part of the state.
    assert state.topics["orders"].targets == {} and state.topics["orders"].replicas[0] == [5, 2, 3]
    assert state.topics["orders"].origin[0] == [1, 2, 3] and len(state.topics["orders"].replicas) == 3
    assert state.topics["events"].targets == {0: [2, 5, 1]}
    assert state.deleted_topics == {"gone"} and "gone" not in state.topics
    assert state.brokers[2].previous_incarnations == 1 and state.brokers[2].kafka_port == 7002
    assert state.brokers[3].rack is None
    assert state.brokers[4].state == BROKER_DECOMMISSIONED
    assert state.brokers[5].state == BROKER_DECOMMISSIONING
    assert state.producer_ids.next_id == 1750 and len(state.producer_ids.last_grant) == 2

    data = state.to_snapshot()
    restored = ControllerState.from_snapshot(data)
    _assert_same(state, restored)
    assert restored.to_snapshot() == data, "a restored state does not save to the same bytes"
    assert json.loads(data)["version"] == SNAPSHOT_VERSION

    # The restored copy goes on exactly like the original: next producer-id block, a second create of an
    # existing name, a new topic placed after the others.
    more = [
        encode(AllocateProducerIds(3, "req-d", 10)),
        encode(CreateTopic("orders", uuid.uuid4(), ((1, 2, 3),), {})),
        encode(CreateTopic("gone", uuid.uuid4(), ((1, 2, 3),), {})),
        encode(Reassigned("events", 0, (2, 5, 1))),
    ]
    for c in more:
        assert state.apply(c) == restored.apply(c)
    _assert_same(state, restored)
    assert restored.producer_ids.last_grant[3].start == 1750
    assert restored.deleted_topics == set() and restored.topics["events"].targets == {}


def test_empty_state_round_trips() -> None:
    _assert_same(ControllerState(), ControllerState.from_snapshot(ControllerState().to_snapshot()))


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: b"\x00garbage", "not valid JSON"),
        (lambda d: d[: len(d) // 2], "not valid JSON"),
        (lambda d: b"[1, 2]", "no version field"),
        (lambda d: _edit(d, lambda doc: doc.pop("version")), "no version field"),
        (
            lambda d: _edit(d, lambda doc: doc.update(version=SNAPSHOT_VERSION + 1)),
            "version 2 is not supported",
        ),
        (lambda d: _edit(d, lambda doc: doc.pop("topics")), "field 'topics'"),
        (lambda d: _edit(d, lambda doc: doc["topics"][0].update(id="not-a-uuid")), "field 'topics'"),
        (lambda d: _edit(d, lambda doc: doc["topics"][0]["origin"].pop()), "field 'topics'"),
        (lambda d: _edit(d, lambda doc: doc["brokers"][0].update(state="sleeping")), "field 'brokers'"),
        (lambda d: _edit(d, lambda doc: doc["producer_ids"].pop("next_id")), "field 'producer_ids'"),
    ],
)
def test_corrupt_or_unknown_snapshot_is_refused_naming_the_problem(mutate: object, message: str) -> None:
    data = _built(_commands()).to_snapshot()
    assert callable(mutate)
    with pytest.raises(ValueError, match=message):
        ControllerState.from_snapshot(mutate(data))


def _edit(data: bytes, change: object) -> bytes:
    doc = json.loads(data)
    assert callable(change)
    change(doc)
    return json.dumps(doc).encode()


def test_changes_from_an_empty_state_create_everything() -> None:
    state = _built(_commands())
    changes = changes_between(ControllerState(), state)
    assert [(c.kind, c.broker.node_id) for c in changes if c.broker is not None] == [
        ("broker", n) for n in (1, 2, 3, 4, 5)
    ]
    topics = [(c.kind, c.topic.name) for c in changes if c.topic is not None]
    assert topics == [("created", "orders"), ("created", "events")]
    assert changes_between(state, ControllerState.from_snapshot(state.to_snapshot())) == []


def test_changes_between_two_points_of_one_log() -> None:
    commands = _commands()
    old = _built(commands[:8])  # three topics, nothing moved or deleted yet
    new = _built(commands)
    kinds = [
        (c.kind, c.topic.name if c.topic else c.broker.node_id if c.broker else None)
        for c in changes_between(old, new)
    ]
    assert kinds == [
        ("broker", 2),
        ("broker", 4),
        ("broker", 5),
        ("deleted", "gone"),
        ("extended", "orders"),
        ("reassigned", "orders"),
        ("target", "events"),
    ]
    by_kind = {c.kind: c for c in changes_between(old, new)}
    assert by_kind["extended"].first_new == 2
    assert by_kind["reassigned"].partition == 0 and by_kind["reassigned"].before == [1, 2, 3]
    assert by_kind["target"].partition == 0


def test_a_topic_deleted_and_created_again_is_both() -> None:
    old = _built(_commands())
    new = ControllerState.from_snapshot(old.to_snapshot())
    new.apply(encode(DeleteTopic("events")))
    new.apply(encode(CreateTopic("events", uuid.uuid4(), ((1, 2, 3),), {})))
    changes = [c for c in changes_between(old, new) if c.topic is not None]
    assert [(c.kind, c.topic.name) for c in changes if c.topic is not None] == [
        ("deleted", "events"),
        ("created", "events"),
    ]
    assert changes[0].topic is not None and changes[1].topic is not None
    assert changes[0].topic.topic_id == old.topics["events"].topic_id
    assert changes[1].topic.topic_id == new.topics["events"].topic_id != old.topics["events"].topic_id
