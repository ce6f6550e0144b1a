"""Dynamic broker configs in the controller state: the AlterBrokerConfigs command, its validation (the same
on every broker), snapshots, and the layers a broker derives from them."""

from __future__ import annotations

import json

import pytest
from streamraft_broker.controller.commands import AlterBrokerConfigs, InvalidCommand, decode, encode
from streamraft_broker.controller.state import ControllerState, changes_between
from streamraft_broker.topics.broker_configs import (
    DYNAMIC_BROKER_CONFIGS,
    NotDynamicError,
    layers,
    merged,
    validate_broker_configs,
)
from streamraft_broker.topics.configs import ConfigSource, effective_configs


def _entry(entity: str, configs: dict[str, str]) -> bytes:
    return encode(AlterBrokerConfigs(entity, configs))


def test_the_entry_is_json_with_op_version_entity_and_configs() -> None:
    entry = _entry("", {"message.max.bytes": "2000000"})
    # Byte-exact: entries already in controller logs must keep reading the same.
    assert entry == (
        b'{"configs": {"message.max.bytes": "2000000"}, "entity": "", '
        b'"op": "alter_broker_configs", "version": 1}'
    )
    assert decode(entry) == AlterBrokerConfigs("", {"message.max.bytes": "2000000"})


def test_applied_configs_replace_the_entity_set_and_an_empty_set_removes_it() -> None:
    state = ControllerState()
    state.apply(_entry("", {"log.retention.ms": "60000", "message.max.bytes": "2000000"}))
    state.apply(_entry("2", {"message.max.bytes": "3000000"}))
    assert state.broker_configs == {
        "": {"log.retention.ms": "60000", "message.max.bytes": "2000000"},
        "2": {"message.max.bytes": "3000000"},
    }
    assert state.apply(_entry("2", {"message.max.bytes": "3000000"})) is None  # no change, no action
    change = state.apply(_entry("2", {}))
    assert change is not None and change.kind == "broker_configs"
    assert "2" not in state.broker_configs


@pytest.mark.parametrize(
    ("entity", "configs", "reason"),
    [
        ("", {"auto.create.topics.enable": "false"}, "Cannot update these configs dynamically"),
        ("", {"message.max.bytes": "big"}, "Invalid value 'big' for config message.max.bytes"),
        ("", {"log.segment.bytes": "-5"}, "log.segment.bytes"),
        ("broker-1", {}, "neither a broker id nor ''"),
        ("99999999999", {}, "neither a broker id nor ''"),
    ],
)
def test_an_invalid_entry_is_rejected_naming_the_problem_and_changes_nothing(
    entity: str, configs: dict[str, str], reason: str
) -> None:
    state = ControllerState()
    state.apply(_entry("", {"message.max.bytes": "2000000"}))
    before = state.to_snapshot()
    forged = json.dumps({"op": "alter_broker_configs", "entity": entity, "configs": configs}).encode()
    with pytest.raises(InvalidCommand, match=reason):
        state.apply(forged)
    assert state.to_snapshot() == before


def test_snapshots_keep_them_and_a_replacing_snapshot_reports_the_change() -> None:
    empty = ControllerState()
    assert b"broker_configs" not in empty.to_snapshot()  # as written before they existed
    state = ControllerState()
    state.apply(_entry("1", {"log.cleanup.policy": "compact"}))
    restored = ControllerState.from_snapshot(state.to_snapshot())
    assert restored.broker_configs == {"1": {"log.cleanup.policy": "compact"}}
    assert [c.kind for c in changes_between(empty, restored)] == ["broker_configs"]
    assert changes_between(restored, ControllerState.from_snapshot(state.to_snapshot())) == []
    hostile = json.loads(state.to_snapshot())
    hostile["broker_configs"] = {"1": {"num.io.threads": "8"}}
    with pytest.raises(ValueError, match="broker_configs"):
        ControllerState.from_snapshot(json.dumps(hostile).encode())


def test_only_settings_the_log_applies_live_are_dynamic() -> None:
    assert {"message.max.bytes", "log.retention.ms", "log.retention.bytes", "log.segment.bytes"} <= set(
        DYNAMIC_BROKER_CONFIGS
    )
    for static in ("broker.id", "num.partitions", "listeners", "compression.type", "min.insync.replicas"):
        with pytest.raises(NotDynamicError):
            validate_broker_configs({static: "1"})


def test_a_broker_own_value_beats_the_cluster_default_which_beats_its_static_setting() -> None:
    entities = {
        "": {"message.max.bytes": "2000000", "log.retention.ms": "1000"},
        "2": {"message.max.bytes": "3000000"},
    }
    static = {"max.message.bytes": "1500000"}
    on_2, on_1 = layers(entities, 2, static), layers(entities, 1, static)
    assert merged(on_2) == {"max.message.bytes": "3000000", "retention.ms": "1000"}
    assert merged(on_1) == {"max.message.bytes": "2000000", "retention.ms": "1000"}
    assert merged(layers({}, 1, static)) == static
    # A topic's description names every layer, most specific first, as Kafka's synonyms do.
    described = effective_configs({}, on_2)["max.message.bytes"]
    assert (described.value, described.source) == ("3000000", ConfigSource.DYNAMIC_BROKER_CONFIG)
    assert described.synonyms == (
        ("message.max.bytes", "3000000", ConfigSource.DYNAMIC_BROKER_CONFIG),
        ("message.max.bytes", "2000000", ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG),
        ("message.max.bytes", "1500000", ConfigSource.STATIC_BROKER_CONFIG),
        ("message.max.bytes", "1048588", ConfigSource.DEFAULT_CONFIG),
    )
    own = effective_configs({"max.message.bytes": "10"}, on_2)["max.message.bytes"]
    assert (own.value, own.source) == ("10", ConfigSource.DYNAMIC_TOPIC_CONFIG)
