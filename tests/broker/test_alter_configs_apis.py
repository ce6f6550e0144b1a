"""AlterConfigs (legacy) and IncrementalAlterConfigs answer each resource on its own, with the same checks:
only topics and dynamic broker configs can be altered, a bad value or operation changes nothing,
validate_only checks without changing. The legacy API replaces a topic's whole set of overrides; the
incremental one changes only what it names."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource, ConfigSource, NewTopic, ResourceType
from kio.schema.alter_configs.v2 import request as legacy_req
from kio.schema.incremental_alter_configs.v1 import request as iac_req
from kio.static.primitive import i8

from tests.support.broker_process import BrokerProcess
from tests.support.fixtures import module_broker
from tests.support.wire import WireClient

DEADLINE_S = 30.0
TOPIC, BROKER = 2, 4
SET, DELETE, APPEND = 0, 1, 2
UNKNOWN_TOPIC_OR_PARTITION = 3
INVALID_CONFIG = 40
INVALID_REQUEST = 42
CREATED = {"cleanup.policy": "compact", "retention.ms": "100000"}


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    yield from module_broker(tmp_path_factory)


def _new_topic(broker: BrokerProcess, name: str) -> None:
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(name, 1, 1, config=CREATED)])[name].result(DEADLINE_S)


def _overrides(broker: BrokerProcess, name: str) -> dict[str, str]:
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    resource = ConfigResource(ResourceType.TOPIC, name)
    described = admin.describe_configs([resource])[resource].result(DEADLINE_S)
    return {
        key: entry.value
        for key, entry in described.items()
        if entry.source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    }


def _answer(broker: BrokerProcess, api_key: int, version: int, request: Any) -> tuple[int, str | None]:
    """The (error code, error message) of an alter request's only resource."""
    with WireClient("127.0.0.1", broker.port) as c:
        (result,) = c.request(api_key, version, request).responses
    return int(result.error_code), result.error_message


def _legacy(
    broker: BrokerProcess,
    rtype: int,
    name: str,
    configs: list[tuple[str, str | None]],
    *,
    validate_only: bool = False,
) -> tuple[int, str | None]:
    configs_given = tuple(legacy_req.AlterableConfig(name=k, value=v) for k, v in configs)
    resource = legacy_req.AlterConfigsResource(
        resource_type=i8(rtype), resource_name=name, configs=configs_given
    )
    request = legacy_req.AlterConfigsRequest(resources=(resource,), validate_only=validate_only)
    return _answer(broker, 33, 2, request)


def _incremental(
    broker: BrokerProcess,
    rtype: int,
    name: str,
    ops: list[tuple[str, int, str | None]],
    *,
    validate_only: bool = False,
) -> tuple[int, str | None]:
    ops_given = tuple(iac_req.AlterableConfig(name=k, config_operation=i8(op), value=v) for k, op, v in ops)
    resource = iac_req.AlterConfigsResource(resource_type=i8(rtype), resource_name=name, configs=ops_given)
    request = iac_req.IncrementalAlterConfigsRequest(resources=(resource,), validate_only=validate_only)
    return _answer(broker, 44, 1, request)


def _refused(answer: tuple[int, str | None], code: int, says: str) -> None:
    assert answer[0] == code, answer
    assert answer[1] is not None and says in answer[1], answer


def test_both_apis_refuse_what_is_not_a_topic_or_a_valid_change(broker: BrokerProcess) -> None:
    name = "refusals"
    _new_topic(broker, name)
    # Broker configs: only the dynamic ones, with valid values, of "" (cluster-wide) or a broker id.
    static = "Cannot update these configs dynamically: num.partitions"
    _refused(_legacy(broker, BROKER, "0", [("num.partitions", "5")]), INVALID_REQUEST, static)
    _refused(_incremental(broker, BROKER, "", [("num.partitions", SET, "5")]), INVALID_REQUEST, static)
    bad = _incremental(broker, BROKER, "", [("log.retention.ms", SET, "soon")])
    _refused(bad, INVALID_CONFIG, "Invalid value 'soon' for config log.retention.ms")
    _refused(_incremental(broker, BROKER, "x", []), INVALID_REQUEST, "neither a broker id nor ''")
    missing = f"{name}-missing"
    _refused(_legacy(broker, TOPIC, missing, []), UNKNOWN_TOPIC_OR_PARTITION, "does not exist")
    _refused(_incremental(broker, TOPIC, missing, []), UNKNOWN_TOPIC_OR_PARTITION, "does not exist")
    # What only the legacy form can say wrong: a null value, the same config twice.
    _refused(_legacy(broker, TOPIC, name, [("retention.ms", None)]), INVALID_REQUEST, "null value")
    twice = [("retention.ms", "1"), ("retention.ms", "2")]
    _refused(_legacy(broker, TOPIC, name, twice), INVALID_REQUEST, "more than once")
    # What only the incremental form can say wrong: SET without a value, APPEND to a config not a list.
    unset = _incremental(broker, TOPIC, name, [("retention.ms", SET, None)])
    _refused(unset, INVALID_CONFIG, "needs a value")
    appended = _incremental(broker, TOPIC, name, [("retention.ms", APPEND, "1")])
    _refused(appended, INVALID_CONFIG, "need a list config")
    # A bad value, checked even when only validating.
    for validate_only in (False, True):
        legacy = _legacy(broker, TOPIC, name, [("retention.ms", "soon")], validate_only=validate_only)
        _refused(legacy, INVALID_CONFIG, "retention.ms")
        ops = [("retention.ms", SET, "soon")]
        incremental = _incremental(broker, TOPIC, name, ops, validate_only=validate_only)
        _refused(incremental, INVALID_CONFIG, "retention.ms")
    assert _overrides(broker, name) == CREATED


def test_legacy_replaces_every_override_and_incremental_changes_what_it_names(broker: BrokerProcess) -> None:
    name = "replaced"
    _new_topic(broker, name)
    # validate_only answers as the change would, and changes nothing.
    assert _legacy(broker, TOPIC, name, [("retention.ms", "5000")], validate_only=True) == (0, None)
    dropped = _incremental(broker, TOPIC, name, [("cleanup.policy", DELETE, None)], validate_only=True)
    assert dropped == (0, None)
    assert _overrides(broker, name) == CREATED

    assert _incremental(broker, TOPIC, name, [("segment.ms", SET, "60000")]) == (0, None)
    assert _overrides(broker, name) == {**CREATED, "segment.ms": "60000"}
    # The legacy form drops every override it does not give (back to the default).
    assert _legacy(broker, TOPIC, name, [("retention.ms", "5000")]) == (0, None)
    assert _overrides(broker, name) == {"retention.ms": "5000"}
    assert _legacy(broker, TOPIC, name, []) == (0, None)
    assert _overrides(broker, name) == {}
