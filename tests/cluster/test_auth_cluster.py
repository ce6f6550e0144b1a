"""A 3-broker replicated cluster with PLAINTEXT, SASL_SSL (the inter-broker listener) and SSL (client
certificates required) listeners. Brokers call each other (registration, forwarded requests) over SASL_SSL
with their own PLAIN login; a SCRAM user created through one non-controller broker (forwarded to the
controller, kept in the controller state) logs in on every broker; each listener's clients learn every
broker's endpoint on that listener."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic, ScramCredentialInfo, ScramMechanism
from confluent_kafka.admin import UserScramCredentialUpsertion as Upsert
from kio.schema.alter_user_scram_credentials.v0.request import (
    AlterUserScramCredentialsRequest as AlterRequest,
)
from kio.schema.alter_user_scram_credentials.v0.request import ScramCredentialUpsertion as UpsertWire
from kio.static.primitive import i8, i32

from tests.support.launcher import Cluster
from tests.support.security import (
    ADMIN_PASSWORD,
    ADMIN_USER,
    Material,
    confluent_mtls,
    confluent_sasl_ssl,
    make_material,
)
from tests.support.wire import WireClient

BROKER_USER, BROKER_PASSWORD = "broker", "broker-secret"
DEADLINE_S = 60.0
ALTER_USER_SCRAM_CREDENTIALS = 51


@pytest.fixture(scope="module")
def material(tmp_path_factory: pytest.TempPathFactory) -> Material:
    m = make_material(tmp_path_factory.mktemp("pki"))
    m.users_file.write_text(f"{ADMIN_USER}:{ADMIN_PASSWORD}\n{BROKER_USER}:{BROKER_PASSWORD}\n")
    return m


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, material: Material) -> Iterator[Cluster]:
    c = Cluster(Path(tmp_path_factory.mktemp("cluster")))
    for n, broker in c.brokers.items():
        # PLAINTEXT on a free port first (the harness's readiness probe), SASL_SSL on the member address.
        broker.extra_args += [
            "--listeners",
            f"PLAINTEXT://127.0.0.1:0,SASL_SSL://127.0.0.1:{c.kafka_ports[n]},SSL://127.0.0.1:0",
            "--ssl-client-auth", "required",
            "--inter-broker-listener-name", "SASL_SSL",
            "--ssl-keystore-certificate-chain", str(material.broker.cert),
            "--ssl-keystore-key", str(material.broker.key),
            "--ssl-truststore-location", str(material.ca.cert),
            "--sasl-enabled-mechanisms", "PLAIN,SCRAM-SHA-512",
            "--sasl-plain-users-file", str(material.users_file),
            "--sasl-mechanism-inter-broker-protocol", "PLAIN",
            "--sasl-inter-broker-username", BROKER_USER,
            "--sasl-inter-broker-password", BROKER_PASSWORD,
        ]  # fmt: skip
    with c:
        yield c


def _conf(material: Material, port: int, mechanism: str, user: str, password: str) -> dict[str, Any]:
    return {**confluent_sasl_ssl(material, port, mechanism, user, password), "socket.timeout.ms": 5000}


def _until(what: str, attempt: Any) -> Any:
    """Retries ``attempt`` (elections and controller-log application take a moment) until it returns."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        try:
            return attempt()
        except (KafkaException, AssertionError) as exc:
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: {exc}") from exc
        time.sleep(0.2)  # pacing between attempts


def test_scram_user_created_through_a_follower_logs_in_on_every_broker(
    cluster: Cluster, material: Material
) -> None:
    ports = cluster.kafka_ports

    def controller() -> int:
        ids = {
            AdminClient(_conf(material, p, "PLAIN", ADMIN_USER, ADMIN_PASSWORD))
            .list_topics(timeout=5)
            .controller_id
            for p in ports.values()
        }
        assert len(ids) == 1 and min(ids) > 0, ids
        return int(min(ids))

    leader = _until("an agreed controller", controller)
    follower = next(n for n in ports if n != leader)
    admin = AdminClient(_conf(material, ports[follower], "PLAIN", ADMIN_USER, ADMIN_PASSWORD))
    upsert = Upsert("alice", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096), b"alice-pw")
    # The follower forwards to the controller over the SASL_SSL inter-broker listener, as user "broker".
    _until("credential created", lambda: admin.alter_user_scram_credentials([upsert])["alice"].result(30))

    # Straight to the follower on the wire (its PLAINTEXT listener): it must forward to the controller.
    bob = UpsertWire(
        name="bob", mechanism=i8(2), iterations=i32(4096), salt=b"salt", salted_password=b"k" * 64
    )
    with WireClient("127.0.0.1", cluster.brokers[follower].listener_ports["PLAINTEXT"]) as wire:
        answer = wire.request(ALTER_USER_SCRAM_CREDENTIALS, 0, AlterRequest(deletions=(), upsertions=(bob,)))
    assert [(r.user, int(r.error_code)) for r in answer.results] == [("bob", 0)]
    described = admin.describe_user_scram_credentials()
    assert not isinstance(described, dict)
    assert set(_until("described", lambda: described.result(30))) == {"alice", "bob"}

    for n, port in ports.items():
        alice = AdminClient(_conf(material, port, "SCRAM-SHA-512", "alice", "alice-pw"))
        _until(f"alice logs in on broker {n}", lambda a=alice: a.list_topics(timeout=5))

    _until(
        "topic created",
        lambda: admin.create_topics([NewTopic("secured", 1, 3)])["secured"].result(30),
    )
    conf = _conf(material, ports[follower], "SCRAM-SHA-512", "alice", "alice-pw")
    producer = Producer({**conf, "acks": "all"})
    for i in range(10):
        producer.produce("secured", value=f"r{i}".encode())
    assert producer.flush(DEADLINE_S) == 0
    consumer = Consumer({**conf, "group.id": "secured-g", "auto.offset.reset": "earliest"})
    consumer.subscribe(["secured"])
    got: list[bytes] = []
    deadline = time.monotonic() + DEADLINE_S
    while len(got) < 10 and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is not None and msg.error() is None:
            got.append(bytes(msg.value() or b""))
    consumer.close()
    assert got == [f"r{i}".encode() for i in range(10)]
    # Clients of the SASL_SSL listener are told every broker's SASL_SSL address.
    brokers = AdminClient(conf).list_topics(timeout=10).brokers
    assert {b.id: b.port for b in brokers.values()} == ports
    # ... and clients of the PLAINTEXT listener every broker's PLAINTEXT address (from the registrations).
    plain = {n: b.listener_ports["PLAINTEXT"] for n, b in cluster.brokers.items()}
    plain_admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{plain[follower]}"})

    def plaintext_view() -> None:
        seen = {b.id: b.port for b in plain_admin.list_topics(timeout=10).brokers.values()}
        assert seen == plain, seen

    _until("PLAINTEXT endpoints of every broker", plaintext_view)


def test_mutual_tls_clients_on_every_broker(cluster: Cluster, material: Material) -> None:
    """The SSL listener (client certificates required) of a replicated cluster: a client with a
    certificate produces and consumes, learning every broker's SSL endpoint."""
    ssl_ports = {n: b.listener_ports["SSL"] for n, b in cluster.brokers.items()}
    conf = confluent_mtls(material, ssl_ports[1], material.alice)

    def ssl_view() -> None:
        seen = {b.id: b.port for b in AdminClient(conf).list_topics(timeout=10).brokers.values()}
        assert seen == ssl_ports, seen

    _until("SSL endpoints of every broker", ssl_view)
    admin = AdminClient(conf)
    _until("topic created", lambda: admin.create_topics([NewTopic("mtls", 1, 3)])["mtls"].result(30))
    producer = Producer({**conf, "acks": "all"})
    for i in range(10):
        producer.produce("mtls", value=f"m{i}".encode())
    assert producer.flush(DEADLINE_S) == 0
    consumer = Consumer({**conf, "group.id": "mtls-g", "auto.offset.reset": "earliest"})
    consumer.subscribe(["mtls"])
    got: list[bytes] = []
    deadline = time.monotonic() + DEADLINE_S
    while len(got) < 10 and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is not None and msg.error() is None:
            got.append(bytes(msg.value() or b""))
    consumer.close()
    assert got == [f"m{i}".encode() for i in range(10)]
