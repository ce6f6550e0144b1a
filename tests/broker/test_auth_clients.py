"""Listeners and client authentication with real clients: one broker with PLAINTEXT, SSL (client
certificates required), SASL_SSL and SASL_PLAINTEXT listeners; confluent-kafka, kafka-python, aiokafka
and kcat produce and consume over SASL_SSL with SCRAM-SHA-512 and over mutual TLS; wrong passwords,
untrusted or expired certificates and forged or expired OAUTHBEARER tokens are refused."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import (
    AdminClient,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)
from kafka import KafkaConsumer, KafkaProducer
from kafka.net.sasl.oauth import AbstractTokenProvider
from kio.schema.metadata.v12.request import MetadataRequest
from streamraft_broker.config import load_config
from streamraft_broker.security import outbound
from streamraft_broker.security.listeners import Listener

from tests.support.broker_process import BrokerProcess
from tests.support.fixtures import module_broker
from tests.support.security import (
    ADMIN_PASSWORD,
    ADMIN_USER,
    Material,
    broker_args,
    confluent_mtls,
    confluent_sasl_ssl,
    first_client_error,
    kafka_python_sasl_ssl,
    make_material,
)

DEADLINE_S = 30.0
METADATA_ALL = MetadataRequest(
    topics=None, allow_auto_topic_creation=False, include_topic_authorized_operations=False
)
USER, PASSWORD = "alice", "alice-password"


@pytest.fixture(scope="module")
def material(tmp_path_factory: pytest.TempPathFactory) -> Material:
    return make_material(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory, material: Material) -> Iterator[BrokerProcess]:
    yield from module_broker(tmp_path_factory, extra_args=broker_args(material))


def _port(broker: BrokerProcess, listener: str) -> int:
    return broker.listener_ports[listener]


def _admin(broker: BrokerProcess, material: Material) -> AdminClient:
    return AdminClient(
        confluent_sasl_ssl(material, _port(broker, "SASL_SSL"), "PLAIN", ADMIN_USER, ADMIN_PASSWORD)
    )


@pytest.fixture(scope="module")
def scram_user(broker: BrokerProcess, material: Material) -> tuple[str, str]:
    """alice gets a SCRAM-SHA-512 credential through AlterUserScramCredentials (as kafka-configs does)."""
    upsert = UserScramCredentialUpsertion(
        USER, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192), PASSWORD.encode()
    )
    admin = _admin(broker, material)  # kept alive until the futures resolve
    for future in admin.alter_user_scram_credentials([upsert]).values():
        future.result(timeout=DEADLINE_S)
    return USER, PASSWORD


def _confluent_roundtrip(conf: dict[str, Any], topic: str, n: int = 20) -> list[bytes]:
    producer = Producer({**conf, "acks": "all"})
    for i in range(n):
        producer.produce(topic, value=f"v{i}".encode())
    assert producer.flush(DEADLINE_S) == 0
    consumer = Consumer(
        {
            **conf,
            "group.id": f"g-{uuid.uuid4().hex[:6]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    got: list[bytes] = []
    deadline = time.monotonic() + DEADLINE_S
    try:
        while len(got) < n and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                got.append(bytes(msg.value() or b""))
    finally:
        consumer.close()
    return got


def _kafka_python_values(consumer: KafkaConsumer, n: int) -> list[bytes]:
    """The first ``n`` values (the iterator ends after consumer_timeout_ms without records)."""
    got: list[bytes] = []
    for message in consumer:
        got.append(message.value)
        if len(got) == n:
            break
    return got


def _expected(n: int = 20) -> list[bytes]:
    return [f"v{i}".encode() for i in range(n)]


# ---------------------------------------------------------------------- listeners


def test_each_listener_advertises_its_own_endpoint(broker: BrokerProcess, material: Material) -> None:
    confs = {
        "PLAINTEXT": {"bootstrap.servers": broker.bootstrap},
        "SSL": confluent_mtls(material, _port(broker, "SSL"), material.alice),
        "SASL_SSL": confluent_sasl_ssl(
            material, _port(broker, "SASL_SSL"), "PLAIN", ADMIN_USER, ADMIN_PASSWORD
        ),
    }
    for listener, conf in confs.items():
        brokers = AdminClient(conf).list_topics(timeout=DEADLINE_S).brokers
        assert [(b.host, b.port) for b in brokers.values()] == [("127.0.0.1", _port(broker, listener))], (
            listener
        )


def test_plaintext_listener_still_serves_clients(broker: BrokerProcess) -> None:
    assert _confluent_roundtrip({"bootstrap.servers": broker.bootstrap}, "plain-topic") == _expected()


# ---------------------------------------------------------------------- SCRAM credentials API


def test_scram_credentials_are_described_altered_and_deleted(
    broker: BrokerProcess, material: Material, scram_user: tuple[str, str]
) -> None:
    admin = _admin(broker, material)
    per_user = admin.describe_user_scram_credentials([USER])
    assert isinstance(per_user, dict)  # one future per named user
    infos = per_user[USER].result(timeout=DEADLINE_S).scram_credential_infos
    assert [(i.mechanism, i.iterations) for i in infos] == [(ScramMechanism.SCRAM_SHA_512, 8192)]
    too_few = UserScramCredentialUpsertion(
        "bob", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 100), b"pw"
    )
    with pytest.raises(KafkaException, match=r"(?i)iterations"):
        admin.alter_user_scram_credentials([too_few])["bob"].result(timeout=DEADLINE_S)
    missing = UserScramCredentialDeletion("nobody", ScramMechanism.SCRAM_SHA_256)
    with pytest.raises(KafkaException, match=r"(?i)does not exist"):
        admin.alter_user_scram_credentials([missing])["nobody"].result(timeout=DEADLINE_S)
    carol = UserScramCredentialUpsertion(
        "carol", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096), b"pw"
    )
    admin.alter_user_scram_credentials([carol])["carol"].result(timeout=DEADLINE_S)
    delete = UserScramCredentialDeletion("carol", ScramMechanism.SCRAM_SHA_256)
    admin.alter_user_scram_credentials([delete])["carol"].result(timeout=DEADLINE_S)
    everyone = admin.describe_user_scram_credentials()
    assert not isinstance(everyone, dict)  # one future for all users
    assert set(everyone.result(timeout=DEADLINE_S)) == {USER}


# ---------------------------------------------------------------------- SASL_SSL with SCRAM-SHA-512


def test_confluent_scram_sha512_over_sasl_ssl(
    broker: BrokerProcess, material: Material, scram_user: tuple[str, str]
) -> None:
    conf = confluent_sasl_ssl(material, _port(broker, "SASL_SSL"), "SCRAM-SHA-512", *scram_user)
    assert _confluent_roundtrip(conf, "scram-confluent") == _expected()


def test_confluent_wrong_password_is_an_authentication_error(
    broker: BrokerProcess, material: Material, scram_user: tuple[str, str]
) -> None:
    conf = confluent_sasl_ssl(material, _port(broker, "SASL_SSL"), "SCRAM-SHA-512", USER, "wrong")
    error = first_client_error(conf)
    assert error.code() == KafkaError._AUTHENTICATION, error
    assert "invalid credentials" in error.str()


def test_kafka_python_scram_sha512_over_sasl_ssl(
    broker: BrokerProcess, material: Material, scram_user: tuple[str, str]
) -> None:
    conf = {
        **kafka_python_sasl_ssl(material, _port(broker, "SASL_SSL"), *scram_user),
        "ssl_cafile": str(material.ca.cert),
    }
    producer = KafkaProducer(acks="all", **conf)
    for i in range(20):
        producer.send("scram-kafka-python", value=f"v{i}".encode())
    producer.flush(timeout=DEADLINE_S)
    producer.close(timeout=10)
    consumer = KafkaConsumer(
        "scram-kafka-python", auto_offset_reset="earliest", consumer_timeout_ms=10_000, **conf
    )
    got = _kafka_python_values(consumer, 20)
    consumer.close()
    assert got == _expected()


def test_kafka_python_wrong_password_is_an_authentication_error(
    broker: BrokerProcess, material: Material, scram_user: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    """kafka-python 3 retries a refused bootstrap until its timeout; the refusal it logs is the broker's
    SASL_AUTHENTICATION_FAILED."""
    from kafka.errors import KafkaTimeoutError  # noqa: PLC0415

    conf = {
        **kafka_python_sasl_ssl(material, _port(broker, "SASL_SSL"), USER, "wrong"),
        "ssl_cafile": str(material.ca.cert),
        "bootstrap_timeout_ms": 1500,
    }
    with pytest.raises(KafkaTimeoutError):
        KafkaProducer(**conf)
    refusals = [r.getMessage() for r in caplog.records if "SaslAuthenticationFailedError" in r.getMessage()]
    assert refusals and "invalid credentials with SASL mechanism SCRAM-SHA-512" in refusals[0]


def _aiokafka_tls(material: Material, cert: Any = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(material.ca.cert))
    if cert is not None:
        ctx.load_cert_chain(str(cert.cert), str(cert.key))
    return ctx


async def _aiokafka_roundtrip(topic: str, **conf: Any) -> list[bytes]:
    producer = AIOKafkaProducer(acks="all", **conf)
    await producer.start()
    try:
        for i in range(20):
            await producer.send_and_wait(topic, value=f"v{i}".encode())
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(topic, auto_offset_reset="earliest", **conf)
    await consumer.start()
    got: list[bytes] = []
    try:
        async with asyncio.timeout(DEADLINE_S):
            async for msg in consumer:
                got.append(bytes(msg.value or b""))
                if len(got) == 20:
                    break
    finally:
        await consumer.stop()
    return got


def test_aiokafka_scram_sha512_over_sasl_ssl(
    broker: BrokerProcess, material: Material, scram_user: tuple[str, str]
) -> None:
    conf = kafka_python_sasl_ssl(material, _port(broker, "SASL_SSL"), *scram_user)
    got = asyncio.run(_aiokafka_roundtrip("scram-aiokafka", ssl_context=_aiokafka_tls(material), **conf))
    assert got == _expected()


def test_aiokafka_wrong_password_is_an_authentication_error(
    broker: BrokerProcess, material: Material, scram_user: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    """aiokafka logs the broker's SASL_AUTHENTICATION_FAILED and fails its bootstrap."""
    from aiokafka.errors import KafkaConnectionError  # noqa: PLC0415

    async def start() -> None:
        conf = kafka_python_sasl_ssl(material, _port(broker, "SASL_SSL"), USER, "wrong")
        producer = AIOKafkaProducer(ssl_context=_aiokafka_tls(material), **conf)
        try:
            await producer.start()
        finally:
            await producer.stop()

    with pytest.raises(KafkaConnectionError):
        asyncio.run(start())
    refusals = [r.getMessage() for r in caplog.records if "SaslAuthenticationFailed" in r.getMessage()]
    assert refusals and "invalid credentials with SASL mechanism SCRAM-SHA-512" in refusals[0]


def _kcat(args: list[str], stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["kcat", *args], input=stdin, capture_output=True, timeout=DEADLINE_S, check=False)


def test_kcat_scram_sha512_over_sasl_ssl(
    broker: BrokerProcess, material: Material, scram_user: tuple[str, str]
) -> None:
    common = [
        "-b", f"127.0.0.1:{_port(broker, 'SASL_SSL')}",
        "-X", "security.protocol=SASL_SSL",
        "-X", f"ssl.ca.location={material.ca.cert}",
        "-X", "sasl.mechanisms=SCRAM-SHA-512",
        "-X", f"sasl.username={scram_user[0]}",
        "-X", f"sasl.password={scram_user[1]}",
    ]  # fmt: skip
    produced = _kcat([*common, "-P", "-t", "scram-kcat"], stdin=b"one\ntwo\n")
    assert produced.returncode == 0, produced.stderr
    consumed = _kcat([*common, "-C", "-t", "scram-kcat", "-e", "-o", "beginning"])
    assert consumed.stdout.split() == [b"one", b"two"], consumed.stderr


# ---------------------------------------------------------------------- mutual TLS


def test_confluent_over_mutual_tls(broker: BrokerProcess, material: Material) -> None:
    conf = confluent_mtls(material, _port(broker, "SSL"), material.alice)
    assert _confluent_roundtrip(conf, "mtls-confluent") == _expected()


def test_kafka_python_over_mutual_tls(broker: BrokerProcess, material: Material) -> None:
    conf: dict[str, Any] = {
        "bootstrap_servers": f"127.0.0.1:{_port(broker, 'SSL')}",
        "security_protocol": "SSL",
        "ssl_cafile": str(material.ca.cert),
        "ssl_certfile": str(material.alice.cert),
        "ssl_keyfile": str(material.alice.key),
    }
    producer = KafkaProducer(acks="all", **conf)
    for i in range(20):
        producer.send("mtls-kafka-python", value=f"v{i}".encode())
    producer.flush(timeout=DEADLINE_S)
    producer.close(timeout=10)
    consumer = KafkaConsumer(
        "mtls-kafka-python", auto_offset_reset="earliest", consumer_timeout_ms=10_000, **conf
    )
    got = _kafka_python_values(consumer, 20)
    consumer.close()
    assert got == _expected()


def test_aiokafka_over_mutual_tls(broker: BrokerProcess, material: Material) -> None:
    got = asyncio.run(
        _aiokafka_roundtrip(
            "mtls-aiokafka",
            bootstrap_servers=f"127.0.0.1:{_port(broker, 'SSL')}",
            security_protocol="SSL",
            ssl_context=_aiokafka_tls(material, material.alice),
        )
    )
    assert got == _expected()


def test_kcat_over_mutual_tls(broker: BrokerProcess, material: Material) -> None:
    common = [
        "-b", f"127.0.0.1:{_port(broker, 'SSL')}",
        "-X", "security.protocol=SSL",
        "-X", f"ssl.ca.location={material.ca.cert}",
        "-X", f"ssl.certificate.location={material.alice.cert}",
        "-X", f"ssl.key.location={material.alice.key}",
    ]  # fmt: skip
    assert _kcat([*common, "-P", "-t", "mtls-kcat"], stdin=b"a\nb\n").returncode == 0
    consumed = _kcat([*common, "-C", "-t", "mtls-kcat", "-e", "-o", "beginning"])
    assert consumed.stdout.split() == [b"a", b"b"], consumed.stderr


@pytest.mark.parametrize("which", ["expired", "stranger", "none"])
def test_refused_client_certificates(broker: BrokerProcess, material: Material, which: str) -> None:
    """An expired certificate, one from a CA the broker does not trust, and none at all (the listener
    requires one) all fail the TLS handshake."""
    if which == "none":
        conf = confluent_mtls(material, _port(broker, "SSL"), material.alice)
        del conf["ssl.certificate.location"], conf["ssl.key.location"]
    else:
        conf = confluent_mtls(material, _port(broker, "SSL"), getattr(material, which))
    error = first_client_error(conf)
    assert error.code() in (KafkaError._SSL, KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN), error
    # The broker logs why, as Kafka logs a failed SSL authentication.
    reason = {
        "expired": "certificate has expired",
        "stranger": "unable to get local issuer certificate",
        "none": "PEER_DID_NOT_RETURN_A_CERTIFICATE",
    }[which]
    expected = f"TLS handshake with 127.0.0.1 on SSL failed: {reason}"
    deadline = time.monotonic() + DEADLINE_S
    while expected not in broker.log_tail(500) and time.monotonic() < deadline:
        time.sleep(0.05)  # polling the broker's log for the line, bounded above
    assert expected in broker.log_tail(500)


# ---------------------------------------------------------------------- OAUTHBEARER


def _oauth_conf(broker: BrokerProcess, material: Material, token: Callable[[], str]) -> dict[str, Any]:
    return {
        "bootstrap.servers": f"127.0.0.1:{_port(broker, 'SASL_SSL')}",
        "security.protocol": "SASL_SSL",
        "ssl.ca.location": str(material.ca.cert),
        "sasl.mechanisms": "OAUTHBEARER",
        "oauth_cb": lambda _config: (token(), time.time() + 300),
    }


def test_confluent_oauthbearer_token_from_the_jwks_is_accepted(
    broker: BrokerProcess, material: Material
) -> None:
    conf = _oauth_conf(broker, material, lambda: material.token("service-a"))
    assert _confluent_roundtrip(conf, "oauth-confluent") == _expected()


@pytest.mark.parametrize("kind", ["forged", "expired"])
def test_confluent_oauthbearer_bad_token_is_refused(
    broker: BrokerProcess, material: Material, kind: str
) -> None:
    token = material.token(
        "service-a", forged=kind == "forged", lifetime_s=-120 if kind == "expired" else 300
    )
    error = first_client_error(_oauth_conf(broker, material, lambda: token))
    assert error.code() == KafkaError._AUTHENTICATION, error
    assert ("Signature" if kind == "forged" else "expired") in error.str()


class _Tokens(AbstractTokenProvider):  # type: ignore[misc]
    def __init__(self, material: Material) -> None:
        self.material = material

    def token(self) -> str:
        return self.material.token("service-b")


def test_kafka_python_oauthbearer(broker: BrokerProcess, material: Material) -> None:
    conf: dict[str, Any] = {
        "bootstrap_servers": f"127.0.0.1:{_port(broker, 'SASL_SSL')}",
        "security_protocol": "SASL_SSL",
        "ssl_cafile": str(material.ca.cert),
        "sasl_mechanism": "OAUTHBEARER",
        "sasl_oauth_token_provider": _Tokens(material),
    }
    producer = KafkaProducer(acks="all", **conf)
    producer.send("oauth-kafka-python", value=b"x").get(timeout=DEADLINE_S)
    producer.close(timeout=10)


# ---------------------------------------------------------------------- streamraft users


def _streamraft(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streamraft_broker.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=DEADLINE_S,
        check=False,
    )


def test_streamraft_users_create_list_delete(
    broker: BrokerProcess, material: Material, tmp_path: Path
) -> None:
    port = _port(broker, "SASL_SSL")
    admin = tmp_path / "admin.properties"
    admin.write_text(
        "".join(
            f"{k}={v}\n"
            for k, v in confluent_sasl_ssl(material, port, "PLAIN", ADMIN_USER, ADMIN_PASSWORD).items()
        )
    )
    common = ["--bootstrap-server", f"127.0.0.1:{port}", "--command-config", str(admin)]
    made = _streamraft(
        "users",
        "create",
        "erin",
        "--mechanism",
        "SCRAM-SHA-256",
        "--password-stdin",
        *common,
        stdin="erin-pw\n",
    )
    assert made.returncode == 0, made.stderr
    assert "erin-pw" not in made.stdout + made.stderr
    conf = confluent_sasl_ssl(material, port, "SCRAM-SHA-256", "erin", "erin-pw")
    assert AdminClient(conf).list_topics(timeout=DEADLINE_S).brokers  # erin logs in
    assert "erin: SCRAM-SHA-256 (iterations 8192)" in _streamraft("users", "list", *common).stdout
    assert _streamraft("users", "delete", "erin", "--mechanism", "SCRAM-SHA-256", *common).returncode == 0
    assert "erin" not in _streamraft("users", "list", *common).stdout
    assert first_client_error(conf).code() == KafkaError._AUTHENTICATION


# ---------------------------------------------------------------------- the broker as a client


@pytest.mark.parametrize(
    "login",
    [
        ("SSL", "PLAIN", "", ""),  # mutual TLS with the broker's own certificate
        ("SASL_SSL", "PLAIN", ADMIN_USER, ADMIN_PASSWORD),
        ("SASL_SSL", "SCRAM-SHA-512", USER, PASSWORD),
    ],
)
def test_broker_outbound_connections_log_in(
    broker: BrokerProcess, material: Material, scram_user: tuple[str, str], login: tuple[str, str, str, str]
) -> None:
    """What a broker does before each call to another broker (security.outbound): TLS with its certificate,
    then its SASL login; a wrong password is refused with the peer's message."""
    listener, mechanism, user, password = login
    port = _port(broker, listener)

    def configure(secret: str) -> None:
        cfg = load_config(
            {
                "ssl_keystore_certificate_chain": str(material.broker.cert),
                "ssl_keystore_key": str(material.broker.key),
                "ssl_truststore_location": str(material.ca.cert),
                "sasl_mechanism_inter_broker_protocol": mechanism,
                "sasl_inter_broker_username": user,
                "sasl_inter_broker_password": secret,
            },
            {},
        )
        outbound.configure(cfg, Listener(listener, listener, "127.0.0.1", port))

    async def metadata() -> Any:
        reader, writer = await outbound.open_connection("127.0.0.1", port)
        try:
            writer.write(outbound.encode(3, 12, METADATA_ALL, 1))
            await writer.drain()
            return await outbound.read_frame(reader)
        finally:
            writer.close()

    try:
        configure(password)
        assert len(asyncio.run(metadata())) > 8
        if listener == "SASL_SSL":
            configure("wrong")
            with pytest.raises(outbound.OutboundAuthFailed, match=f"peer refused {user}"):
                asyncio.run(metadata())
    finally:
        outbound.configure(load_config({}, {}), Listener("PLAINTEXT", "PLAINTEXT", "127.0.0.1", 0))
