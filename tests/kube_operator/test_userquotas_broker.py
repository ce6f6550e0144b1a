"""A StreamUser's spec.quotas applied by the operator's reconcile (`userreconcile.apply_user`, and
`remove_user` when the StreamUser is deleted) against a real `streamraft broker`, read back with other
clients than the operator's: kafka-python's DescribeClientQuotas and Kafka's own kafka-configs; and a
SCRAM producer logged in as the user is throttled by the quota the operator set.

The broker has a PLAINTEXT listener for the operator (ANONYMOUS, a super user, as the operator is in a
StreamCluster with ACLs on) and a SASL_PLAINTEXT one for the user, ACLs enforced, and
``quota.window.num=2`` so a throttled rate settles within a second or two (see test_quota_enforcement).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from streamraft_operator.userreconcile import apply_user, remove_user
from streamraft_operator.userspec import UserSpec, parse_user

from tests.javakafka.tools import CONFIG_COMMAND, run_tool
from tests.support import client_quotas
from tests.support.broker_process import BrokerProcess
from tests.support.fixtures import module_broker

AUTHORIZER = ["--authorizer-class-name", "streamraft.acl", "--super-users", "User:ANONYMOUS"]
LISTENERS = ["--listeners", "PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0"]
SASL = ["--sasl-enabled-mechanisms", "SCRAM-SHA-512"]
WINDOWS = ["--quota-window-num", "2"]
PASSWORD = b"alice-secret-password"
TOPIC = "metered"
QUOTA = 256 * 1024
"""producerByteRate of the throttling test, bytes per second."""
VALUE = b"m" * 16 * 1024
RECORDS = 64
"""1 MiB in all: about four seconds at QUOTA, well under one without it."""


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    yield from module_broker(tmp_path_factory, extra_args=AUTHORIZER + LISTENERS + SASL + WINDOWS)


def _user(name: str = "alice", auth: str = "scram-sha-512", **quotas: float) -> UserSpec:
    acl = {"resource": {"type": "topic", "name": TOPIC}, "operations": ["Write", "Describe"]}
    spec: dict[str, Any] = {
        "cluster": "c",
        "authentication": {"type": auth},
        "authorization": {"acls": [acl]},
        "quotas": quotas,
    }
    return parse_user(name, "ns", spec)


def _described(broker: BrokerProcess, entity: dict[str, str | None]) -> dict[str, float]:
    """The values of exactly this entity (a None name: the type's default), as kafka-python's
    DescribeClientQuotas sees them."""
    components = [
        (kind, client_quotas.EXACT, name) if name is not None else (kind, client_quotas.DEFAULT, None)
        for kind, name in entity.items()
    ]
    with client_quotas.admin_client(broker.bootstrap) as admin:
        code, found = client_quotas.describe(admin, components, strict=True)
    assert code == 0
    return found.get(tuple(sorted(entity.items())), {})


FOREIGN: list[dict[str, str | None]] = [
    {"user": "CN=alice"},
    {"user": "alice", "client-id": "app"},
    {"user": None},
]
"""Entities that are not alice's StreamUser's: its TLS namesake, one of its client-ids, the default user."""


@pytest.fixture
def foreign_quotas(broker: BrokerProcess) -> Iterator[list[dict[str, str | None]]]:
    for entity in FOREIGN:
        client_quotas.set_quotas(broker.bootstrap, entity, {"producer_byte_rate": 999.0})
    yield FOREIGN
    # The broker outlives the test: a default-user quota left behind would bind every other user.
    for entity in FOREIGN:
        client_quotas.set_quotas(broker.bootstrap, entity, {"producer_byte_rate": None})


def test_quotas_follow_the_spec_and_go_with_the_user(
    broker: BrokerProcess, foreign_quotas: list[dict[str, str | None]]
) -> None:
    addresses = [broker.bootstrap]
    alice: dict[str, str | None] = {"user": "alice"}
    u = _user(producerByteRate=102400, consumerByteRate=204800, requestPercentage=25)
    plan = apply_user(addresses, u, PASSWORD, password_new=True)
    assert plan.quota_ops == (
        ("consumer_byte_rate", 204800.0),
        ("producer_byte_rate", 102400.0),
        ("request_percentage", 25.0),
    )
    assert _described(broker, alice) == {
        "producer_byte_rate": 102400.0,
        "consumer_byte_rate": 204800.0,
        "request_percentage": 25.0,
    }
    assert apply_user(addresses, u, PASSWORD, password_new=False).noop  # idempotent

    # A changed value is set, a dropped one removed; drift behind the operator's back is reverted.
    client_quotas.set_quotas(broker.bootstrap, alice, {"controller_mutation_rate": 5.0})
    changed = _user(producerByteRate=51200, requestPercentage=12.5)
    plan = apply_user(addresses, changed, PASSWORD, password_new=False)
    assert plan.quota_ops == (
        ("consumer_byte_rate", None),
        ("controller_mutation_rate", None),
        ("producer_byte_rate", 51200.0),
        ("request_percentage", 12.5),
    )
    assert _described(broker, alice) == {"producer_byte_rate": 51200.0, "request_percentage": 12.5}

    # No quotas left in the spec: none left on the entity.
    apply_user(addresses, _user(), PASSWORD, password_new=False)
    assert _described(broker, alice) == {}

    # Deleting the StreamUser removes every quota of its entity, and only of its entity.
    apply_user(addresses, changed, PASSWORD, password_new=False)
    assert "and 2 quota(s) of User:alice" in remove_user(addresses, changed)
    assert _described(broker, alice) == {}
    for entity in foreign_quotas:
        assert _described(broker, entity) == {"producer_byte_rate": 999.0}, entity
    assert "and 0 quota(s)" in remove_user(addresses, changed)  # deleting again is a no-op


@pytest.mark.java
def test_kafka_configs_describes_what_the_operator_applied(broker: BrokerProcess) -> None:
    """Kafka's own tool (Java Admin client) reads the operator's AlterClientQuotas back, TLS user too."""
    addresses = [broker.bootstrap]
    bob = _user("bob", "tls", producerByteRate=4096, requestPercentage=50)
    apply_user(addresses, bob, None, password_new=False)
    out = run_tool(
        CONFIG_COMMAND,
        ["--bootstrap-server", broker.bootstrap, "--describe", "--entity-type", "users"],
    ).stdout
    assert (
        "Quota configs for user-principal 'CN=bob' are producer_byte_rate=4096.0, request_percentage=50.0"
        in (out)
    ), out
    remove_user(addresses, bob)


@dataclass
class Run:
    seconds: float = 0.0
    throttles_ms: list[float] = field(default_factory=list)
    """throttle_time_ms of the broker's responses, as librdkafka's throttle_cb reports them."""


def _produce_as(broker: BrokerProcess, user: str, password: bytes) -> Run:
    run = Run()
    errors: list[str] = []

    def delivered(err: object, _msg: object) -> None:
        if err is not None:
            errors.append(str(err))

    producer = Producer(
        {
            "bootstrap.servers": f"127.0.0.1:{broker.listener_ports['SASL_PLAINTEXT']}",
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanisms": "SCRAM-SHA-512",
            "sasl.username": user,
            "sasl.password": password.decode(),
            "linger.ms": 5,
            "batch.size": 32768,
            "acks": 1,
            "throttle_cb": lambda event: run.throttles_ms.append(event.throttle_time * 1000),
            "error_cb": lambda err: errors.append(str(err)),
        }
    )
    started = time.monotonic()
    for _ in range(RECORDS):
        producer.produce(TOPIC, VALUE, on_delivery=delivered)
        producer.poll(0)
    left = producer.flush(30)
    run.seconds = time.monotonic() - started
    producer.poll(0.2)  # the last responses' throttle callbacks
    assert left == 0 and not errors, (left, errors, run)
    return run


def test_a_scram_producer_is_throttled_at_the_users_producer_byte_rate(broker: BrokerProcess) -> None:
    addresses = [broker.bootstrap]
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(TOPIC, 1, 1)])[TOPIC].result(15)
    carol = _user("carol", producerByteRate=QUOTA)
    apply_user(addresses, carol, PASSWORD, password_new=True)
    assert _described(broker, {"user": "carol"}) == {"producer_byte_rate": float(QUOTA)}

    throttled = _produce_as(broker, "carol", PASSWORD)
    assert throttled.throttles_ms and max(throttled.throttles_ms) > 0, throttled
    # 1 MiB at 256 KiB/s, after at most a window's allowance: seconds, not the fraction of one it takes free.
    assert throttled.seconds > 1.5, throttled

    # The quota dropped from the spec: the same producer runs free.
    apply_user(addresses, _user("carol"), PASSWORD, password_new=False)
    free = _produce_as(broker, "carol", PASSWORD)
    assert free.throttles_ms == [] and free.seconds < throttled.seconds / 2, (free, throttled)
