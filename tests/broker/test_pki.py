"""The built-in CA: broker certificates name their node id, and nothing else passes for one."""

from __future__ import annotations

import socket
import ssl
import threading
from pathlib import Path

from cryptography import x509
from streamraft_broker.security import pki


def _der(path: Path) -> bytes:
    return ssl.PEM_cert_to_DER_cert(path.read_text())


def test_broker_certificate_binds_its_node_id(tmp_path: Path) -> None:
    ca = pki.create_ca(tmp_path / "ca")
    files = pki.issue_broker(ca, tmp_path / "certs", 3, hosts=["broker-3.local", "127.0.0.2"])
    assert pki.certificate_node_id(_der(files.cert)) == 3
    cert = x509.load_pem_x509_certificate(files.cert.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "broker-3.local" in san.get_values_for_type(x509.DNSName)
    assert oct(files.key.stat().st_mode & 0o777) == "0o600"


def test_a_user_certificate_names_no_node(tmp_path: Path) -> None:
    ca = pki.create_ca(tmp_path / "ca")
    files = pki.issue(ca, tmp_path, "alice", common_name="alice", uris=["spiffe://streamraft/node/x"])
    assert pki.certificate_node_id(_der(files.cert)) is None


def test_certificates_verify_against_their_ca_in_a_tls_handshake(tmp_path: Path) -> None:
    ca = pki.create_ca(tmp_path / "ca")
    server = pki.issue_broker(ca, tmp_path, 1)
    client = pki.issue_broker(ca, tmp_path, 2)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(ca.cert))
    server_ctx.load_cert_chain(str(server.cert), str(server.key))
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    client_ctx = ssl.create_default_context(cafile=str(ca.cert))
    client_ctx.load_cert_chain(str(client.cert), str(client.key))
    a, b = socket.socketpair()
    seen: list[int | None] = []

    def serve() -> None:
        with server_ctx.wrap_socket(a, server_side=True) as tls:
            seen.append(pki.certificate_node_id(tls.getpeercert(binary_form=True) or b""))

    thread = threading.Thread(target=serve)
    thread.start()
    with client_ctx.wrap_socket(b, server_hostname="localhost") as tls:
        assert pki.certificate_node_id(tls.getpeercert(binary_form=True) or b"") == 1
    thread.join(10)
    assert seen == [2]
