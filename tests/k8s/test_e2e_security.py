"""End to end: a StreamCluster's brokers speak Raft over mutual TLS with certificates the operator issued,
and their admin API answers only with the operator-generated token.

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
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import pytest
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

pytestmark = [pytest.mark.k8s, pytest.mark.slow]

RAFT_PORT = 9093
ADMIN_PORT = 9645
HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def _secret(k8s: Cluster, ns: str, name: str) -> dict[str, bytes] | None:
    obj = k8s.api.get(f"/api/v1/namespaces/{ns}/secrets/{name}")
    if obj is None:
        return None
    return {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}


def _plaintext_answer(ip: str) -> bytes:
    """What the Raft port sends back to a plaintext HTTP/2 (gRPC) client's opening."""
    with socket.create_connection((ip, RAFT_PORT), timeout=5) as sock:
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


def _server_cert(ctx: ssl.SSLContext, ip: str, host: str) -> x509.Certificate:
    with (
        socket.create_connection((ip, RAFT_PORT), timeout=5) as raw,
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
    with socket.create_connection((ip, RAFT_PORT), timeout=5) as raw:
        try:
            with ctx.wrap_socket(raw, server_hostname=host) as conn:
                conn.sendall(HTTP2_PREFACE)
                return conn.recv(64)
        except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
            return b""


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
        cluster = resource(
            "StreamCluster", "demo", {"replicas": 3, "storage": {"size": "1Gi"}, "config": acls_on}
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

            # A reissued certificate reaches the running broker: the operator remakes the deleted Secret,
            # the Secret volume follows, the Raft transport re-reads its files. No restart.
            pod = k8s.pod_ready(ns, "demo-0")
            assert pod is not None
            ip0, host0 = pod["status"]["podIP"], f"demo-0.demo-headless.{ns}.svc.cluster.local"
            restarts = [c.get("restartCount", 0) for c in pod["status"].get("containerStatuses") or []]
            old_serial = _server_cert(mtls, ip0, host0).serial_number
            k8s.kubectl("delete", "secret", "demo-0-raft-tls", "-n", ns)

            def reissued() -> bool:
                secret = _secret(k8s, ns, "demo-0-raft-tls")
                if secret is None:
                    return False
                new = x509.load_pem_x509_certificate(secret["tls.crt"]).serial_number
                return new != old_serial and _server_cert(mtls, ip0, host0).serial_number == new

            k8s.wait_for(reissued, 90, "broker 1 serving its reissued Raft certificate")
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
