"""A small certificate authority for clusters that bring none: a CA, then certificates it signs for
brokers (server and client use, so one file serves the Kafka listener and the Raft transport's mutual
TLS) and for users.

Everything is PEM on disk, keys mode 0600. Brokers' certificates carry their node id as a URI SAN
(``spiffe://streamraft/node/<id>``): that, not anything a peer says, is who a Raft peer is.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NODE_URI_PREFIX = "spiffe://streamraft/node/"
DEFAULT_DAYS = 365


def node_uri(node_id: int) -> str:
    return f"{NODE_URI_PREFIX}{node_id}"


def node_id_from_uri(uri: str) -> int | None:
    """The node id a broker certificate's URI SAN names, or None for any other URI."""
    if not uri.startswith(NODE_URI_PREFIX):
        return None
    tail = uri[len(NODE_URI_PREFIX) :]
    return int(tail) if tail.isdigit() else None


@dataclass(frozen=True)
class CertFiles:
    cert: Path
    key: Path
    ca: Path


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def create_ca(directory: Path, common_name: str = "streamraft-ca", days: int = 3650) -> CertFiles:
    """Writes ca.crt and ca.key into ``directory`` (created if missing)."""
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    files = CertFiles(cert=directory / "ca.crt", key=directory / "ca.key", ca=directory / "ca.crt")
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_private(files.key, _key_pem(key))
    return files


def issue(
    ca: CertFiles,
    directory: Path,
    name: str,
    *,
    common_name: str,
    dns: Sequence[str] = (),
    ips: Sequence[str] = (),
    uris: Sequence[str] = (),
    organizational_unit: str | None = None,
    days: int = DEFAULT_DAYS,
    not_before: datetime.datetime | None = None,
) -> CertFiles:
    """Writes ``<name>.crt`` and ``<name>.key`` signed by ``ca``, valid for server and client auth.

    ``not_before``/``days`` let tests make a certificate that has already expired."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = serialization.load_pem_private_key(ca.key.read_bytes(), password=None)
    ca_cert = x509.load_pem_x509_certificate(ca.cert.read_bytes())
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey), "the CA key is an EC key (create_ca writes one)"
    key = ec.generate_private_key(ec.SECP256R1())
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organizational_unit:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, organizational_unit))
    start = not_before or datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    sans += [x509.UniformResourceIdentifier(u) for u in uris]
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(attrs))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    files = CertFiles(cert=directory / f"{name}.crt", key=directory / f"{name}.key", ca=ca.cert)
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_private(files.key, _key_pem(key))
    return files


def issue_broker(
    ca: CertFiles, directory: Path, node_id: int, hosts: Sequence[str] = ("localhost",)
) -> CertFiles:
    """A broker's certificate: its node id as URI SAN, its host names / addresses as DNS / IP SANs."""
    ips, dns = [], []
    for host in hosts:
        try:
            ipaddress.ip_address(host)
            ips.append(host)
        except ValueError:
            dns.append(host)
    if "127.0.0.1" not in ips:
        ips.append("127.0.0.1")
    return issue(
        ca,
        directory,
        f"broker-{node_id}",
        common_name=f"broker-{node_id}",
        dns=dns,
        ips=ips,
        uris=[node_uri(node_id)],
        organizational_unit="streamraft-brokers",
    )


def certificate_node_id(cert_der: bytes) -> int | None:
    """The node id bound to a peer certificate (its ``spiffe://streamraft/node/<id>`` URI SAN)."""
    cert = x509.load_der_x509_certificate(cert_der)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    ids = {node_id_from_uri(u) for u in san.get_values_for_type(x509.UniformResourceIdentifier)}
    ids.discard(None)
    if len(ids) != 1:
        return None
    return ids.pop()
