"""End to end: a StreamCluster's brokers speak Raft over mutual TLS with certificates the operator issued,
and their admin API answers only with the operator-generated token; the TLS Kafka listener (on by default)
serves the same certificates, and a certificate rotated under acks=all load over it loses nothing.

One 3-broker cluster from the chart (operator watching one namespace, so with namespaced Roles). From the
host (outside the cluster's pods): the Raft port completes a TLS handshake only for a client certificate
from the cluster CA, presents the broker's node id, and does not speak plaintext gRPC; the admin API
answers 401 without the token and 200 with it. A TLS StreamUser gets a client certificate and its ACLs;
invalid StreamUsers are refused by the API server.
"""

from __future__ import annotations

import base64
import json
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from confluent_kafka import KafkaError
from confluent_kafka.admin import (
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)
from cryptography import x509

from tests.k8s.cluster import Cluster, WaitTimeout
from tests.k8s.release import installed_release, ready, resource
from tests.support.background_writer import AckedWriter, read_values
from tests.support.security import first_client_error

pytestmark = [pytest.mark.k8s, pytest.mark.slow]

RAFT_PORT = 9093
KAFKA_TLS_PORT = 9094
ADMIN_PORT = 9645
HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def _secret(k8s: Cluster, ns: str, name: str) -> dict[str, bytes] | None:
    obj = k8s.api.get(f"/api/v1/namespaces/{ns}/secrets/{name}")
    if obj is None:
        return None
    return {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}


def _dial(ip: str, port: int = RAFT_PORT, within: float = 30.0) -> socket.socket:
    """A TCP connection to a pod. Ready means the Kafka port answered; the Raft listener of the same
    process may still be binding, so connecting is retried for a bounded time, and a failure names
    what the host saw of the pod's address."""
    deadline = time.monotonic() + within
    while True:
        try:
            return socket.create_connection((ip, port), timeout=5)
        except OSError as exc:
            if time.monotonic() >= deadline:
                show = ["ip", "neigh", "show", ip]
                neigh = subprocess.run(show, check=False, capture_output=True, text=True).stdout
                detail = f"no connection to {ip}:{port} in {within} s: {exc}; neigh {neigh!r}"
                raise AssertionError(detail) from exc
            time.sleep(0.5)


def _plaintext_answer(ip: str) -> bytes:
    """What the Raft port sends back to a plaintext HTTP/2 (gRPC) client's opening."""
    with _dial(ip) as sock:
        sock.sendall(HTTP2_PREFACE + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")  # preface + empty SETTINGS
        chunks = b""
        try:
            while len(chunks) < 64:
                got = sock.recv(64)
                if not got:
                    break
                chunks += got
        except (TimeoutError, ConnectionResetError):
            pass
    return chunks


def _server_cert(ctx: ssl.SSLContext, ip: str, host: str, port: int = RAFT_PORT) -> x509.Certificate:
    with (
        _dial(ip, port) as raw,
        ctx.wrap_socket(raw, server_hostname=host) as conn,
    ):
        der = conn.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def _server_node_uris(ctx: ssl.SSLContext, ip: str, host: str) -> list[str]:
    san = _server_cert(ctx, ip, host).extensions.get_extension_for_class(x509.SubjectAlternativeName)
    return list(san.value.get_values_for_type(x509.UniformResourceIdentifier))


def _answer_without_client_cert(ctx: ssl.SSLContext, ip: str, host: str) -> bytes:
    """Bytes the server sends a client that has no certificate; b"" once it refused (alert or EOF)."""
    with _dial(ip) as raw:
        try:
            with ctx.wrap_socket(raw, server_hostname=host) as conn:
                conn.sendall(HTTP2_PREFACE)
                return conn.recv(64)
        except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
            return b""


def _scram_user(k8s: Cluster, ns: str, name: str, topic: str) -> str:
    """A SCRAM StreamUser that may write and read ``topic`` (idempotently) and read with groups named
    ``read-*``; returns the password from its Secret once the user is Ready."""
    acls = [
        {"resource": {"type": "topic", "name": topic}, "operations": ["Read", "Write", "Create", "Describe"]},
        {"resource": {"type": "group", "name": "read-", "patternType": "prefix"}, "operations": ["Read"]},
        {"resource": {"type": "cluster"}, "operations": ["IdempotentWrite"]},
    ]
    spec = {"cluster": "demo", "authentication": {"type": "scram-sha-512"}, "authorization": {"acls": acls}}
    k8s.apply(resource("StreamUser", name, spec), namespace=ns)
    user = k8s.wait_for(lambda: ready(k8s, ns, "streamusers", name), 90, f"StreamUser {name} Ready")
    assert user["status"]["username"] == f"User:{name}"
    creds = _secret(k8s, ns, f"{name}-streamuser")
    assert creds is not None and creds["sasl.mechanism"] == b"SCRAM-SHA-512"
    return creds["password"].decode()


def _admin(ip: str, token: str | None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    req = urllib.request.Request(f"http://{ip}:{ADMIN_PORT}/admin/health", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_raft_over_operator_issued_mtls_and_admin_api_needs_the_token(k8s: Cluster) -> None:
    with installed_release(k8s, "sec") as release:
        ns = release.namespace
        roles = k8s.get("roles", "-n", ns)["items"]
        assert any(any("secrets" in r["resources"] for r in role["rules"]) for role in roles), roles

        acls_on = {"authorizer.class.name": "streamraft.acl", "super.users": "User:ANONYMOUS"}
        # The TLS Kafka listener authenticates with SCRAM (SASL_SSL); it is on by default, SSL without it.
        listeners = {"tls": {"authentication": "scram-sha-512"}}
        cluster = resource(
            "StreamCluster",
            "demo",
            {"replicas": 3, "storage": {"size": "1Gi"}, "config": acls_on, "listeners": listeners},
        )
        k8s.apply(cluster, namespace=ns)
        k8s.wait_for(lambda: ready(k8s, ns, "streamclusters", "demo"), 240, "StreamCluster demo Ready")

        ca = _secret(k8s, ns, "demo-ca")
        token_data = _secret(k8s, ns, "demo-admin-token")
        assert ca is not None and token_data is not None
        token = token_data["token"].decode()
        sts = k8s.get("statefulset", "demo", "-n", ns)
        script = sts["spec"]["template"]["spec"]["containers"][0]["command"][2]
        assert "--raft-tls-cert" in script and "--admin-token-file" in script

        with tempfile.TemporaryDirectory() as tmp:
            d = Path(tmp)
            (d / "ca.crt").write_bytes(ca["ca.crt"])
            # A client with broker 1's certificate, as a Raft peer would dial broker 2.
            peer = _secret(k8s, ns, "demo-0-raft-tls")
            assert peer is not None
            (d / "tls.crt").write_bytes(peer["tls.crt"])
            (d / "tls.key").write_bytes(peer["tls.key"])
            mtls = ssl.create_default_context(cafile=str(d / "ca.crt"))
            mtls.load_cert_chain(d / "tls.crt", d / "tls.key")
            mtls.set_alpn_protocols(["h2"])
            anonymous = ssl.create_default_context(cafile=str(d / "ca.crt"))
            anonymous.set_alpn_protocols(["h2"])

            for ordinal in range(3):
                pod = k8s.pod_ready(ns, f"demo-{ordinal}")
                assert pod is not None
                ip = pod["status"]["podIP"]
                host = f"demo-{ordinal}.demo-headless.{ns}.svc.cluster.local"

                # mTLS with a cluster certificate: the broker presents its own node id.
                assert _server_node_uris(mtls, ip, host) == [f"spiffe://streamraft/node/{ordinal + 1}"]
                # Without a client certificate the server ends the connection (TLS 1.3: on first read).
                assert _answer_without_client_cert(anonymous, ip, host) == b""

                # Plaintext gRPC gets no HTTP/2 SETTINGS frame back: at most a TLS alert, then EOF.
                answer = _plaintext_answer(ip)
                assert len(answer) < 9 or answer[3] != 0x04, answer
                assert not answer or answer[0] in (0x15, 0x16), answer  # TLS alert/handshake record

                # The admin API: 401 without the token (or with a wrong one), 200 with it.
                assert _admin(ip, None) == 401
                assert _admin(ip, "not-the-token") == 401
                assert _admin(ip, token) == 200

            # The TLS Kafka listener serves the same broker certificate, verified by name; a SCRAM
            # StreamUser logs in over it with the password the operator generated, within its ACLs.
            kafka_tls = ssl.create_default_context(cafile=str(d / "ca.crt"))
            pods = [f"demo-{i}.demo-headless.{ns}.svc.cluster.local" for i in range(3)]
            bob = _scram_user(k8s, ns, "bob", "rotation")
            over_tls = {
                "bootstrap.servers": ",".join(f"{name}:{KAFKA_TLS_PORT}" for name in pods),
                "security.protocol": "SASL_SSL",
                "ssl.ca.location": str(d / "ca.crt"),
                "sasl.mechanisms": "SCRAM-SHA-512",
                "sasl.username": "bob",
                "sasl.password": bob,
            }
            status = k8s.api.get(f"/apis/streamraft.io/v1alpha1/namespaces/{ns}/streamclusters/demo")
            assert (status or {})["status"]["bootstrapTls"] == f"demo-bootstrap.{ns}.svc:{KAFKA_TLS_PORT}"

            # A reissued certificate reaches the running broker under acks=all load over that listener: the
            # operator remakes the deleted Secret, the Secret volume follows, the Raft transport and the
            # Kafka listener re-read their files. No restart, nothing lost.
            pod = k8s.pod_ready(ns, "demo-0")
            assert pod is not None
            ip0, host0 = pod["status"]["podIP"], pods[0]
            restarts = [c.get("restartCount", 0) for c in pod["status"].get("containerStatuses") or []]
            old_serial = _server_cert(mtls, ip0, host0).serial_number
            assert _server_cert(kafka_tls, ip0, host0, KAFKA_TLS_PORT).serial_number == old_serial

            def reissued() -> bool:
                secret = _secret(k8s, ns, "demo-0-raft-tls")
                if secret is None:
                    return False
                new = x509.load_pem_x509_certificate(secret["tls.crt"]).serial_number
                return (
                    new != old_serial
                    and _server_cert(mtls, ip0, host0).serial_number == new
                    and _server_cert(kafka_tls, ip0, host0, KAFKA_TLS_PORT).serial_number == new
                )

            with AckedWriter(over_tls, "rotation") as writer:
                writer.wait_for_more(100, 120, "over TLS before the rotation")
                k8s.kubectl("delete", "secret", "demo-0-raft-tls", "-n", ns)
                k8s.wait_for(reissued, 90, "broker 1 serving its reissued certificate on Raft and Kafka TLS")
                writer.wait_for_more(100, 120, "over TLS after the rotation")
            assert writer.failed == []
            assert len(writer.acked) == writer.sent
            assert read_values(over_tls, "rotation", writer.acked, 120) == writer.acked
            # A wrong password: librdkafka reports the broker's SCRAM refusal, and no metadata.
            refused = first_client_error({**over_tls, "sasl.password": "not-" + bob}, timeout=60)
            assert refused.code() == KafkaError._AUTHENTICATION, refused
            pod = k8s.pod_ready(ns, "demo-0")
            assert pod is not None
            assert [
                c.get("restartCount", 0) for c in pod["status"].get("containerStatuses") or []
            ] == restarts
            assert ready(k8s, ns, "streamclusters", "demo") is not None

        # A TLS StreamUser: client certificate from the cluster CA, its ACLs on the brokers.
        alice = resource(
            "StreamUser",
            "alice",
            {
                "cluster": "demo",
                "authentication": {"type": "tls"},
                "authorization": {
                    "acls": [
                        {"resource": {"type": "topic", "name": "orders"}, "operations": ["Read", "Write"]}
                    ]
                },
            },
        )
        k8s.apply(alice, namespace=ns)
        try:
            user = k8s.wait_for(lambda: ready(k8s, ns, "streamusers", "alice"), 60, "StreamUser alice Ready")
        except WaitTimeout:
            got = k8s.api.get(f"/apis/streamraft.io/v1alpha1/namespaces/{ns}/streamusers/alice")
            pytest.fail(f"StreamUser alice not Ready: {(got or {}).get('status')}")
        assert user["status"]["username"] == "User:CN=alice"
        assert user["status"]["observedGeneration"] == user["metadata"]["generation"]
        creds = _secret(k8s, ns, "alice-streamuser")
        assert creds is not None
        cert = x509.load_pem_x509_certificate(creds["tls.crt"])
        assert cert.subject.rfc4514_string() == "CN=alice"
        cert.verify_directly_issued_by(x509.load_pem_x509_certificate(ca["ca.crt"]))
        admin = AdminClient({"bootstrap.servers": f"{ip}:9092"})
        flt = AclBindingFilter(
            ResourceType.ANY,
            None,  # any name
            ResourcePatternType.ANY,
            "User:CN=alice",
            None,  # any host
            AclOperation.ANY,
            AclPermissionType.ANY,
        )
        found = admin.describe_acls(flt, request_timeout=10).result(timeout=15)
        assert sorted((b.name, b.operation.name) for b in found) == [("orders", "READ"), ("orders", "WRITE")]

        # Invalid StreamUsers never reach the operator: the schema, then the CEL rules, refuse them.
        bad = resource("StreamUser", "mallory", {"cluster": "demo", "authentication": {"type": "plain"}})
        out = k8s.kubectl("apply", "-n", ns, "-f", "-", stdin=json.dumps(bad), check=False)
        assert out.returncode != 0
        assert 'Unsupported value: "plain"' in out.stderr, out.stderr
        nameless = resource(
            "StreamUser",
            "mallory",
            {
                "cluster": "demo",
                "authentication": {"type": "tls"},
                "authorization": {"acls": [{"resource": {"type": "topic"}, "operations": ["Read"]}]},
            },
        )
        out = k8s.kubectl("apply", "-n", ns, "-f", "-", stdin=json.dumps(nameless), check=False)
        assert out.returncode != 0
        assert "resource.name is required unless type is cluster" in out.stderr, out.stderr
