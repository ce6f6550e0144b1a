"""Client quota rules as Kafka defines them: entity precedence and sensor sharing, key validation, the
DescribeClientQuotas filter, the all-or-nothing command, snapshots, and the sliding-window throttle math."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamraft_broker.controller.commands import AlterClientQuotas, InvalidCommand, encode
from streamraft_broker.controller.state import ControllerState
from streamraft_broker.quotas.accounting import bind_account, reset_account
from streamraft_broker.quotas.entities import (
    INVALID_REQUEST,
    UNSUPPORTED_VERSION,
    Alteration,
    ClientQuotas,
    Entity,
    QuotaError,
    check_op,
    make_entity,
)
from streamraft_broker.quotas.manager import QuotaManager
from streamraft_broker.quotas.sensor import RateSensor, WindowConfig
from streamraft_broker.quotas.store import QuotaFile

D = None  # the default entity of a type


def _set(quotas: ClientQuotas, entity: dict[str, str | None], **values: float | None) -> None:
    quotas.apply([Alteration(make_entity(entity.items()), tuple(values.items()))])


# Kafka's documented order, most specific first, with the sensor tags (user, client-id) each one gives the
# pair (alice, app): an empty tag means every client-id (or user) shares the sensor.
PRECEDENCE: list[tuple[dict[str, str | None], tuple[str, str]]] = [
    ({"user": "alice", "client-id": "app"}, ("alice", "app")),
    ({"user": "alice", "client-id": D}, ("alice", "app")),
    ({"user": "alice"}, ("alice", "")),
    ({"user": D, "client-id": "app"}, ("alice", "app")),
    ({"user": D, "client-id": D}, ("alice", "app")),
    ({"user": D}, ("alice", "")),
    ({"client-id": "app"}, ("", "app")),
    ({"client-id": D}, ("", "app")),
]


def test_the_most_specific_entity_wins_in_kafkas_order() -> None:
    quotas = ClientQuotas()
    for rank, (entity, _) in enumerate(PRECEDENCE):
        _set(quotas, entity, producer_byte_rate=1000.0 + rank)
    for rank, (entity, tags) in enumerate(PRECEDENCE):
        found = quotas.resolve("producer_byte_rate", "alice", "app")
        assert found is not None
        assert (found.bound, (found.user_tag, found.client_tag)) == (1000.0 + rank, tags), entity
        _set(quotas, entity, producer_byte_rate=None)  # remove it: the next level applies
    assert quotas.resolve("producer_byte_rate", "alice", "app") is None
    assert quotas.entities == {}, "an entity whose last key is removed is gone"


def test_each_key_resolves_on_its_own() -> None:
    quotas = ClientQuotas()
    _set(quotas, {"user": "alice"}, consumer_byte_rate=2048.0)
    _set(quotas, {"client-id": "app"}, producer_byte_rate=1024.0)
    produce = quotas.resolve("producer_byte_rate", "alice", "app")
    fetch = quotas.resolve("consumer_byte_rate", "alice", "app")
    assert produce is not None and fetch is not None
    assert (produce.bound, produce.user_tag, produce.client_tag) == (1024.0, "", "app")
    assert (fetch.bound, fetch.user_tag, fetch.client_tag) == (2048.0, "alice", "")
    assert quotas.resolve("request_percentage", "alice", "app") is None
    assert quotas.resolve("producer_byte_rate", "bob", "other") is None


@pytest.mark.parametrize(
    ("components", "message"),
    [
        ([], "empty"),
        ([("user", "a"), ("user", "b")], "more than once"),
        ([("group", "g")], "unknown quota entity type"),
        ([("ip", "10.0.0.1"), ("user", "a")], "cannot be combined"),
        ([("ip", "not-an-ip")], "not a valid IP address"),
        ([("client-id", "")], "1..32767 characters"),
    ],
)
def test_bad_entities_are_refused_with_a_reason(
    components: list[tuple[str, str | None]], message: str
) -> None:
    with pytest.raises(QuotaError, match=message) as caught:
        make_entity(components)
    assert caught.value.error_code == INVALID_REQUEST


@pytest.mark.parametrize(
    ("entity", "key", "value", "message"),
    [
        ({"client-id": "c"}, "producer_byte_rate", 1.5, "whole number"),
        ({"client-id": "c"}, "consumer_byte_rate", 0.0, "above 0"),
        ({"client-id": "c"}, "request_percentage", -1.0, "above 0"),
        ({"client-id": "c"}, "request_percentage", float("nan"), "finite"),
        ({"client-id": "c"}, "producer_byte_rate", 1e19, "largest allowed"),
        ({"client-id": "c"}, "connection_creation_rate", 5.0, "not a quota key"),
        ({"ip": "10.0.0.1"}, "producer_byte_rate", 5.0, "not a quota key"),
        ({"ip": None}, "connection_creation_rate", 2.5, "whole number"),
        ({"user": "u"}, "retention.ms", 5.0, "not a quota key"),
    ],
)
def test_bad_values_are_refused_with_a_reason(
    entity: dict[str, str | None], key: str, value: float, message: str
) -> None:
    with pytest.raises(QuotaError, match=message):
        check_op(make_entity(entity.items()), key, value)


def test_stored_only_keys_are_accepted() -> None:
    quotas = ClientQuotas()
    _set(quotas, {"user": "u"}, controller_mutation_rate=2.5, request_percentage=12.5)
    _set(quotas, {"ip": "192.168.0.7"}, connection_creation_rate=10.0)
    _set(quotas, {"ip": D}, connection_creation_rate=100.0)
    assert quotas.entities[(("user", "u"),)] == {"controller_mutation_rate": 2.5, "request_percentage": 12.5}
    assert quotas.entities[(("ip", D),)] == {"connection_creation_rate": 100.0}


def test_an_invalid_entry_makes_the_whole_command_fail_and_change_nothing() -> None:
    quotas = ClientQuotas()
    _set(quotas, {"client-id": "c"}, producer_byte_rate=100.0)
    before = quotas.to_json()
    command = [
        Alteration((("client-id", "c"),), (("producer_byte_rate", 5.0),)),
        Alteration((("user", "u"),), (("producer_byte_rate", 1.5),)),
    ]
    with pytest.raises(ValueError, match="whole number"):
        quotas.apply(command)
    assert quotas.to_json() == before
    state = ControllerState()
    with pytest.raises(InvalidCommand, match="entity must be a list"):
        state.apply(json.dumps({"op": "alter_client_quotas", "entries": [{"entity": "x"}]}).encode())


def _describe_keys(
    quotas: ClientQuotas, components: list[tuple[str, int, str | None]], strict: bool
) -> set[Entity]:
    return {entity for entity, _ in quotas.describe(components, strict)}


def test_describe_filters_as_kafka() -> None:
    quotas = ClientQuotas()
    alice_app: Entity = (("client-id", "app"), ("user", "alice"))
    for entity in [
        {"user": "alice"},
        {"user": D},
        {"client-id": "app"},
        {"user": "alice", "client-id": "app"},
    ]:
        _set(quotas, entity, producer_byte_rate=10.0)
    _set(quotas, {"ip": "10.1.1.1"}, connection_creation_rate=3.0)
    everything = set(quotas.entities)
    assert _describe_keys(quotas, [], strict=False) == everything
    assert _describe_keys(quotas, [("user", 0, "alice")], strict=False) == {(("user", "alice"),), alice_app}
    assert _describe_keys(quotas, [("user", 0, "alice")], strict=True) == {(("user", "alice"),)}
    assert _describe_keys(quotas, [("user", 1, None)], strict=False) == {(("user", D),)}
    assert _describe_keys(quotas, [("user", 2, None)], strict=True) == {
        (("user", "alice"),),
        (("user", D),),
    }
    assert _describe_keys(quotas, [("user", 2, None), ("client-id", 2, None)], strict=False) == {alice_app}
    assert _describe_keys(quotas, [("ip", 2, None)], strict=True) == {(("ip", "10.1.1.1"),)}


@pytest.mark.parametrize(
    ("components", "code", "message"),
    [
        ([("user", 0, None)], INVALID_REQUEST, "needs a match string"),
        ([("user", 1, "x")], INVALID_REQUEST, "takes no match string"),
        ([("user", 2, None), ("user", 1, None)], INVALID_REQUEST, "more than once"),
        ([("ip", 2, None), ("user", 2, None)], INVALID_REQUEST, "cannot be combined"),
        ([("topic", 2, None)], UNSUPPORTED_VERSION, "unsupported entity type"),
        ([("user", 7, None)], UNSUPPORTED_VERSION, "unknown match type"),
    ],
)
def test_describe_refuses_filters_kafka_refuses(
    components: list[tuple[str, int, str | None]], code: int, message: str
) -> None:
    with pytest.raises(QuotaError, match=message) as caught:
        ClientQuotas().describe(components, strict=False)
    assert caught.value.error_code == code


def test_controller_snapshot_keeps_quotas_and_reads_older_snapshots() -> None:
    state = ControllerState()
    alteration = Alteration(
        make_entity([("user", "alice"), ("client-id", D)]), (("consumer_byte_rate", 4096.0),)
    )
    assert state.apply(encode(AlterClientQuotas((alteration,)))) is None
    restored = ControllerState.from_snapshot(state.to_snapshot())
    assert restored.client_quotas.entities == {
        (("client-id", D), ("user", "alice")): {"consumer_byte_rate": 4096.0}
    }
    found = restored.client_quotas.resolve("consumer_byte_rate", "alice", "any")
    assert found is not None and found.bound == 4096.0

    older = json.loads(state.to_snapshot())
    del older["client_quotas"]  # written before client quotas existed
    assert ControllerState.from_snapshot(json.dumps(older).encode()).client_quotas.entities == {}
    older["client_quotas"] = [{"entity": [["user", "u"]], "quotas": {"producer_byte_rate": 0.5}}]
    with pytest.raises(ValueError, match="client_quotas"):
        ControllerState.from_snapshot(json.dumps(older).encode())


def test_an_invalid_command_in_the_log_changes_nothing() -> None:
    state = ControllerState()
    bad = json.dumps(
        {"op": "alter_client_quotas", "entries": [{"entity": [["user", "u"]], "ops": [["x", 1]]}]}
    )
    with pytest.raises(ValueError, match="not a quota key"):
        state.apply(bad.encode())
    assert state.client_quotas.entities == {}


def test_rate_and_throttle_follow_kafkas_window_arithmetic() -> None:
    config = WindowConfig(samples=11, window_ms=1000)
    sensor = RateSensor(config, now_ms=0)
    # A fresh sensor divides by (samples - 1) whole windows: 11,000 bytes at once is 1,100 B/s.
    sensor.record(11_000, 0)
    assert sensor.rate(0) == pytest.approx(1100.0)
    # Over a 1,000 B/s quota by 10 %: silent for 10 % of the 10 s window.
    assert sensor.throttle_ms(1000.0, 0) == 1000
    assert sensor.throttle_ms(1100.0, 0) == 0
    # 4.5 s later: elapsed 4.5 s (4 full windows) is topped up by 6 windows, 10.5 s.
    sensor.record(0, 4500)
    assert sensor.window_ms(4500) == pytest.approx(10_500)
    # Samples older than samples * window no longer count.
    assert sensor.rate(11_000) == 0.0


def test_a_sample_slot_is_reused_after_samples_windows() -> None:
    sensor = RateSensor(WindowConfig(samples=2, window_ms=1000), now_ms=0)
    sensor.record(1000, 0)
    sensor.record(500, 1000)  # second sample
    assert sensor.rate(1500) == pytest.approx(1500 / 1.5)
    sensor.record(100, 2000)  # third window reuses the first slot: its 1000 bytes are gone
    assert sensor.rate(2000) == pytest.approx(600 / 1.0)


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _produce(manager: QuotaManager, client_id: str, size: int) -> int:
    account = manager.begin(client_id, size)
    assert account is not None
    token = bind_account(account)
    try:
        return manager.record_produce(acks=1)
    finally:
        reset_account(token)


def test_a_user_quota_is_shared_by_its_client_ids_and_a_client_default_is_not() -> None:
    quotas = ClientQuotas()
    clock = _Clock()
    manager = QuotaManager(lambda: quotas, WindowConfig(samples=11, window_ms=1000), clock=clock)
    assert manager.begin("a", 10) is None, "nothing is measured while no quota exists"
    # ANONYMOUS (a PLAINTEXT connection's user) may send 1,000 B/s over all its client-ids together.
    _set(quotas, {"user": "ANONYMOUS"}, producer_byte_rate=1000.0)
    assert _produce(manager, "a", 6000) == 0
    assert _produce(manager, "b", 6000) == 2000  # 12,000 B over 10 s: 20 % over, for 20 % of 10 s
    # Per client-id default instead: each client-id has its own 1,000 B/s.
    _set(quotas, {"user": "ANONYMOUS"}, producer_byte_rate=None)
    _set(quotas, {"client-id": None}, producer_byte_rate=1000.0)
    assert _produce(manager, "c", 6000) == 0
    assert _produce(manager, "d", 6000) == 0
    assert _produce(manager, "c", 5500) == 1500


def test_sensors_stay_bounded_whatever_client_ids_arrive() -> None:
    quotas = ClientQuotas()
    _set(quotas, {"client-id": None}, producer_byte_rate=1000.0)
    manager = QuotaManager(lambda: quotas, clock=_Clock(), max_sensors=3)
    for i in range(20):
        _produce(manager, f"client-{i}-" + "x" * 30_000, 10)
    assert len(manager._sensors) == 3
    assert all(len(key[2]) < 100 for key in manager._sensors)


def test_the_quota_file_keeps_commands_and_names_itself_when_unreadable(tmp_path: Path) -> None:
    store = QuotaFile(tmp_path)
    alteration = Alteration(make_entity([("client-id", "c")]), (("producer_byte_rate", 100.0),))
    store.apply(AlterClientQuotas((alteration,)))
    again = QuotaFile(tmp_path)
    again.load()
    assert again.quotas.entities == {(("client-id", "c"),): {"producer_byte_rate": 100.0}}
    with pytest.raises(ValueError, match="whole number"):
        again.apply(AlterClientQuotas((Alteration(alteration.entity, (("producer_byte_rate", 0.5),)),)))
    assert again.quotas.entities == {(("client-id", "c"),): {"producer_byte_rate": 100.0}}
    (tmp_path / "client-quotas.json").write_text('{"version": 1, "entities": [{"entity": [["user", "u"]]}]}')
    with pytest.raises(RuntimeError, match=r"client-quotas\.json"):
        QuotaFile(tmp_path).load()
