"""The SASL state machine on the wire (Kafka's SaslServerAuthenticator behaviour) and re-authentication
(KIP-368): requests before authentication close the connection, a refused login answers
SASL_AUTHENTICATION_FAILED and closes after ``connection.failed.authentication.delay.ms``, a session
lives ``connections.max.reauth.ms`` (or until its OAUTHBEARER token expires) and a client re-authenticates
on the same connection; librdkafka keeps working across re-authentications."""

from __future__ import annotations

import struct
import time
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import Producer
from kio.schema.api_versions.v3.request import ApiVersionsRequest
from kio.schema.metadata.v12.request import MetadataRequest
from kio.schema.sasl_authenticate.v2.request import SaslAuthenticateRequest
from kio.schema.sasl_handshake.v0.request import SaslHandshakeRequest as SaslHandshakeV0
from kio.schema.sasl_handshake.v1.request import SaslHandshakeRequest

from tests.support.broker_process import BrokerProcess
from tests.support.fixtures import module_broker
from tests.support.security import (
    ADMIN_PASSWORD,
    ADMIN_USER,
    Material,
    broker_args,
    login_count,
    make_material,
)
from tests.support.wire import WireClient

REAUTH_MS = 3000
"""Long enough that a client on a loaded machine re-authenticates in time (they start at 85-90 %)."""
FAILED_DELAY_MS = 400
SASL_HANDSHAKE, SASL_AUTHENTICATE, METADATA, API_VERSIONS = 17, 36, 3, 18
PLAIN_OK = f"\0{ADMIN_USER}\0{ADMIN_PASSWORD}".encode()
METADATA_ALL = MetadataRequest(
    topics=None, allow_auto_topic_creation=False, include_topic_authorized_operations=False
)


@pytest.fixture(scope="module")
def material(tmp_path_factory: pytest.TempPathFactory) -> Material:
    return make_material(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory, material: Material) -> Iterator[BrokerProcess]:
    extra = {
        "connections-max-reauth-ms": str(REAUTH_MS),
        "connection-failed-authentication-delay-ms": str(FAILED_DELAY_MS),
    }
    yield from module_broker(tmp_path_factory, extra_args=broker_args(material, extra=extra))


def _sasl_client(broker: BrokerProcess) -> WireClient:
    return WireClient("127.0.0.1", broker.listener_ports["SASL_PLAINTEXT"])


def _login(client: WireClient, mechanism: str = "PLAIN", token: bytes = PLAIN_OK) -> Any:
    shake = client.request(SASL_HANDSHAKE, 1, SaslHandshakeRequest(mechanism=mechanism))
    assert int(shake.error_code) == 0, shake
    return client.request(SASL_AUTHENTICATE, 2, SaslAuthenticateRequest(auth_bytes=token))


def _closed(client: WireClient) -> bool:
    """True once the broker closed the connection (EOF), waiting at most a few seconds for it."""
    client.sock.settimeout(5.0)
    try:
        return client.sock.recv(1) == b""
    except ConnectionError:
        return True


def test_only_api_versions_and_sasl_before_authentication(broker: BrokerProcess) -> None:
    with _sasl_client(broker) as client:
        versions = client.request(
            API_VERSIONS, 3, ApiVersionsRequest(client_software_name="t", client_software_version="1")
        )
        keys = {int(k.api_key): (int(k.min_version), int(k.max_version)) for k in versions.api_keys}
        assert keys[SASL_HANDSHAKE] == (0, 1) and keys[SASL_AUTHENTICATE] == (0, 2)
        client.send_raw(client.encode_request(METADATA, 12, METADATA_ALL, 99))
        assert _closed(client)
    assert "Unexpected Kafka request of type METADATA during SASL handshake" in broker.log_tail(200)


def test_refused_login_answers_58_then_closes_after_the_delay(broker: BrokerProcess) -> None:
    with _sasl_client(broker) as client:
        answer = _login(client, token=f"\0{ADMIN_USER}\0not-the-password".encode())
        refused_at = time.monotonic()
        assert int(answer.error_code) == 58
        assert answer.error_message == "Authentication failed: Invalid username or password"
        assert _closed(client)
        # (the answer reaches us a little after the broker sent it and started the delay)
        assert time.monotonic() - refused_at >= FAILED_DELAY_MS / 1000 * 0.5
    assert "not-the-password" not in broker.log_tail(500)


def test_unsupported_mechanism_names_the_enabled_ones(broker: BrokerProcess) -> None:
    with _sasl_client(broker) as client:
        shake = client.request(SASL_HANDSHAKE, 1, SaslHandshakeRequest(mechanism="GSSAPI"))
        assert int(shake.error_code) == 33
        assert list(shake.mechanisms) == ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"]


def test_sasl_requests_on_a_plaintext_listener_are_an_illegal_state(broker: BrokerProcess) -> None:
    with WireClient("127.0.0.1", broker.port) as client:
        answer = client.request(SASL_AUTHENTICATE, 2, SaslAuthenticateRequest(auth_bytes=PLAIN_OK))
        assert int(answer.error_code) == 34


def test_v0_handshake_then_bare_tokens(broker: BrokerProcess) -> None:
    """SaslHandshake v0: the token goes without Kafka framing, as old clients send it."""
    with _sasl_client(broker) as client:
        shake = client.request(SASL_HANDSHAKE, 0, SaslHandshakeV0(mechanism="PLAIN"))
        assert int(shake.error_code) == 0
        client.send_raw(struct.pack(">i", len(PLAIN_OK)) + PLAIN_OK)
        assert client.recv_frame() == b""  # PLAIN's (empty) server answer
        assert client.request(METADATA, 12, METADATA_ALL).brokers


def test_session_lifetime_and_reauthentication_on_the_same_connection(broker: BrokerProcess) -> None:
    with _sasl_client(broker) as client:
        started = time.monotonic()
        answer = _login(client)
        assert int(answer.error_code) == 0
        assert answer.session_lifetime.total_seconds() * 1000 == REAUTH_MS
        assert client.request(METADATA, 12, METADATA_ALL).brokers
        # Re-authenticating before expiry starts a new session on this connection.
        while time.monotonic() - started < REAUTH_MS / 1000 * 0.6:
            time.sleep(0.05)
        again = _login(client)
        assert int(again.error_code) == 0
        renewed = time.monotonic()
        while time.monotonic() - started < REAUTH_MS / 1000 * 1.2:  # past the first session's end
            time.sleep(0.05)
        assert time.monotonic() - renewed < REAUTH_MS / 1000
        assert client.request(METADATA, 12, METADATA_ALL).brokers
        # The second session runs out too: the next request closes the connection.
        while time.monotonic() - renewed < REAUTH_MS / 1000 + 0.2:
            time.sleep(0.05)
        client.send_raw(client.encode_request(METADATA, 12, METADATA_ALL, 77))
        assert _closed(client)
    assert "after its session expired without re-authentication" in broker.log_tail(200)


def test_reauthentication_keeps_mechanism_and_principal(broker: BrokerProcess, material: Material) -> None:
    with _sasl_client(broker) as client:
        assert int(_login(client).error_code) == 0
        shake = client.request(SASL_HANDSHAKE, 1, SaslHandshakeRequest(mechanism="OAUTHBEARER"))
        assert int(shake.error_code) == 33  # another mechanism than the session's
        assert _closed(client)
    with _sasl_client(broker) as client:
        token = material.token("service-a", lifetime_s=1.0)
        first = _login(client, "OAUTHBEARER", f"n,,\x01auth=Bearer {token}\x01\x01".encode())
        assert int(first.error_code) == 0
        # The session ends with the token, before connections.max.reauth.ms.
        assert 0 < first.session_lifetime.total_seconds() * 1000 <= 1000
        stranger = material.token("service-b")
        second = _login(client, "OAUTHBEARER", f"n,,\x01auth=Bearer {stranger}\x01\x01".encode())
        assert int(second.error_code) == 58 and "re-authentication as User:service-b" in second.error_message


def test_librdkafka_reauthenticates_and_keeps_its_connections(broker: BrokerProcess) -> None:
    """A producer working for three session lifetimes: every record is acknowledged and the broker never
    had to close a connection for an expired session (librdkafka re-authenticated in time)."""
    before = broker.log_tail(100_000).count("session expired")
    reauths = login_count(broker.metrics_url, "reauthentication")
    delivered: list[bool] = []
    producer = Producer(
        {
            "bootstrap.servers": f"127.0.0.1:{broker.listener_ports['SASL_PLAINTEXT']}",
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanisms": "PLAIN",
            "sasl.username": ADMIN_USER,
            "sasl.password": ADMIN_PASSWORD,
            "linger.ms": 0,
        }
    )
    end = time.monotonic() + 3 * REAUTH_MS / 1000
    sent = 0
    while time.monotonic() < end:
        producer.produce("reauth", value=b"x", on_delivery=lambda e, _m: delivered.append(e is None))
        sent += 1
        producer.poll(0.05)
    assert producer.flush(30) == 0
    assert len(delivered) == sent and all(delivered)
    log = broker.log_tail(100_000)
    assert log.count("session expired") == before, log[-2000:]
    # Each of its connections (bootstrap and broker) re-authenticated at least once per lifetime.
    assert login_count(broker.metrics_url, "reauthentication") - reauths >= 2


def test_before_authentication_only_small_frames_are_read(broker: BrokerProcess) -> None:
    """sasl.server.max.receive.size (Kafka's default, 512 KiB): an anonymous peer cannot make the broker
    buffer a large request."""
    with _sasl_client(broker) as client:
        client.send_raw(struct.pack(">i", 600_000) + b"\0" * 1000)
        assert _closed(client)
    assert "exceeds the maximum of 524288 bytes" in broker.log_tail(200)


def test_v0_bare_tokens_may_be_shorter_than_a_request_header(broker: BrokerProcess) -> None:
    refusals = broker.log_tail(100_000).count("Invalid username or password")
    with _sasl_client(broker) as client:
        assert int(client.request(SASL_HANDSHAKE, 0, SaslHandshakeV0(mechanism="PLAIN")).error_code) == 0
        client.send_raw(struct.pack(">i", 4) + b"\0a\0b")  # user "a", password "b": refused, not mis-framed
        assert _closed(client)
    deadline = time.monotonic() + 10
    while broker.log_tail(100_000).count("Invalid username or password") == refusals:
        assert time.monotonic() < deadline, broker.log_tail(20)
        time.sleep(0.05)  # polling the broker's log for the refusal, bounded above
