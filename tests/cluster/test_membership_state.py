"""The controller state machine's membership and move commands, and rack-aware placement (no processes)."""

from __future__ import annotations

import uuid
from collections import Counter

import pytest
from streamraft_broker.controller.commands import (
    CreateTopic,
    DecommissionBroker,
    Reassign,
    Reassigned,
    UnregisterBroker,
    encode,
)
from streamraft_broker.controller.state import (
    BROKER_ACTIVE,
    BROKER_DECOMMISSIONED,
    BROKER_DECOMMISSIONING,
    ControllerState,
    place_replicas,
    rack_alternating,
)

from tests.support.controller import broker_reg


def _state_with_topic(brokers: int = 4) -> ControllerState:
    state = ControllerState()
    for n in range(1, brokers + 1):
        state.apply(encode(broker_reg(n).command()))
    state.apply(encode(CreateTopic("t", uuid.uuid4(), ((1, 2, 3), (2, 3, 4)), {})))
    return state


def test_registration_is_recorded_once_and_updated_on_change() -> None:
    state = ControllerState()
    change = state.apply(encode(broker_reg(1, "a").command()))
    assert change is not None and change.kind == "broker" and change.broker is not None
    assert state.brokers[1].rack == "a" and state.brokers[1].state == BROKER_ACTIVE
    assert state.apply(encode(broker_reg(1, "a").command())) is None, (
        "an identical registration changed state"
    )
    moved = state.apply(encode(broker_reg(1, "a", port=7000).command()))
    assert moved is not None and state.brokers[1].kafka_port == 7001
    assert state.brokers[1].previous_incarnations == 0
    state.apply(encode(broker_reg(1, "a", incarnation="inc-2", port=7000).command()))
    assert state.brokers[1].previous_incarnations == 1, "a new incarnation id was not counted"


def test_decommission_states_and_placeable_brokers() -> None:
    state = _state_with_topic()
    assert state.placeable_brokers() == [1, 2, 3, 4]
    state.apply(encode(DecommissionBroker(4)))
    assert state.brokers[4].state == BROKER_DECOMMISSIONING
    assert state.placeable_brokers() == [1, 2, 3]
    assert state.replicas_on(4) == [("t", 1)]
    state.apply(encode(UnregisterBroker(4)))
    assert state.brokers[4].state == BROKER_DECOMMISSIONED
    # Registering again brings a decommissioned broker back as a new, active one.
    state.apply(encode(broker_reg(4, incarnation="inc-9").command()))
    assert state.brokers[4].state == BROKER_ACTIVE
    assert state.apply(encode(DecommissionBroker(99))) is None


def test_move_records_target_then_final_replicas_and_keeps_origin() -> None:
    state = _state_with_topic()
    change = state.apply(encode(Reassign("t", 0, (4, 2, 3))))
    assert change is not None and change.kind == "target" and change.partition == 0
    meta = state.topics["t"]
    assert meta.targets == {0: [4, 2, 3]} and meta.replicas[0] == [1, 2, 3]
    assert ("t", 0) in state.replicas_on(4), "a target replica is not counted as holding the partition"
    done = state.apply(encode(Reassigned("t", 0, (4, 2, 3))))
    assert done is not None and done.kind == "reassigned" and done.before == [1, 2, 3]
    assert meta.replicas[0] == [4, 2, 3] and meta.targets == {}
    assert meta.origin[0] == [1, 2, 3], "the group's bootstrap configuration must never change"
    assert state.apply(encode(Reassign("t", 7, (1, 2, 3)))) is None
    assert state.apply(encode(Reassign("missing", 0, (1, 2, 3)))) is None


def test_cancel_of_a_target_clears_it() -> None:
    state = _state_with_topic()
    state.apply(encode(Reassign("t", 1, (1, 3, 4))))
    change = state.apply(encode(Reassign("t", 1, None)))
    assert change is not None and state.topics["t"].targets == {}
    assert state.apply(encode(Reassign("t", 1, None))) is None


@pytest.mark.parametrize("brokers", [3, 4, 5, 6, 9])
def test_placement_spreads_replicas_and_leaders_evenly(brokers: int) -> None:
    ids = list(range(1, brokers + 1))
    placed = place_replicas(ids, brokers * 4, 3, 0)
    assert all(len(set(rs)) == 3 for rs in placed)
    replicas = Counter(b for rs in placed for b in rs)
    leaders = Counter(rs[0] for rs in placed)
    assert set(replicas.values()) == {12} and set(leaders.values()) == {4}, (replicas, leaders)


def test_placement_puts_replicas_in_different_racks() -> None:
    racks: dict[int, str | None] = {1: "a", 2: "a", 3: "b", 4: "b", 5: "c", 6: "c"}
    order = rack_alternating(list(racks), racks)
    assert [racks[b] for b in order] == ["a", "b", "c", "a", "b", "c"], order
    for rs in place_replicas(list(racks), 12, 3, 0, racks):
        assert len({racks[b] for b in rs}) == 3, rs
    # Uneven racks: still at most as many replicas per rack as the racks force.
    uneven: dict[int, str | None] = {1: "a", 2: "a", 3: "a", 4: "b", 5: "b"}
    for rs in place_replicas(list(uneven), 10, 3, 0, uneven):
        assert len({uneven[b] for b in rs}) == 2, rs
    assert rack_alternating([3, 1, 2], {}) == [1, 2, 3]


def test_unknown_command_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown controller command"):
        ControllerState().apply(b'{"op": "nope"}')
