"""X.509 for the clusters the operator runs: a CA per StreamCluster and certificates it signs.

Written against `cryptography` directly: the operator never imports broker code (import-linter), so it
cannot reuse ``streamraft_broker.security.pki``; what must match is only the wire contract, the URI SAN
``spiffe://streamraft/node/<id>`` a broker's Raft certificate carries (see docs/security.md).
EC P-256 keys: quick to generate on every reconcile that needs one, accepted by gRPC and OpenSSL.
"""

import datetime
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NODE_URI_PREFIX = "spiffe://streamraft/node/"
CA_DAYS = 3650
LEAF_DAYS = 90
RENEW_BEFORE = datetime.timedelta(days=30)
"""A certificate is replaced once less than this is left: long enough for a failed reconcile to retry and
for Secret volumes to propagate (about a minute on a kubelet) many times over."""
_BACKDATE = datetime.timedelta(minutes=5)  # tolerate clocks of peers a little behind ours


class CertificateError(ValueError):
    """Stored PEM material cannot be used (unparseable, or key and certificate do not belong together)."""


@dataclass(frozen=True)
class KeyPair:
    cert_pem: bytes
    key_pem: bytes


def node_uri(node_id: int) -> str:
    return f"{NODE_URI_PREFIX}{node_id}"


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _name(common_name: str, organization: str | None = "streamraft") -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization)] if organization else []
    return x509.Name([*attrs, x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64])])


def create_ca(common_name: str, now: datetime.datetime, days: int = CA_DAYS) -> KeyPair:
    key = _key()
    name = _name(common_name)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return KeyPair(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def load(pair: KeyPair) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    try:
        cert = x509.load_pem_x509_certificate(pair.cert_pem)
        key = serialization.load_pem_private_key(pair.key_pem, password=None)
    except ValueError as exc:
        raise CertificateError(f"unreadable certificate or key: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise CertificateError(f"key is {type(key).__name__}, expected an EC key")
    if key.public_key().public_numbers() != cert.public_key().public_numbers():  # type: ignore[union-attr]
        raise CertificateError("the key does not belong to the certificate")
    return cert, key


def issue(
    ca: KeyPair,
    common_name: str,
    now: datetime.datetime,
    *,
    dns: tuple[str, ...] = (),
    uris: tuple[str, ...] = (),
    server: bool = True,
    client: bool = True,
    days: int = LEAF_DAYS,
    organization: str | None = "streamraft",
) -> KeyPair:
    """A leaf certificate signed by `ca`; never valid beyond the CA itself. A Kafka client's principal is
    its subject DN, so a user certificate is issued with `organization=None`: `CN=<user>` exactly."""
    ca_cert, ca_key = load(ca)
    key = _key()
    not_after = min(now + datetime.timedelta(days=days), ca_cert.not_valid_after_utc)
    usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + (
        [ExtendedKeyUsageOID.CLIENT_AUTH] if client else []
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name, organization))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    sans += [x509.UniformResourceIdentifier(u) for u in uris]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    return KeyPair(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


@dataclass(frozen=True)
class CertInfo:
    """What decides whether a stored certificate is still the one wanted."""

    not_after: datetime.datetime
    issuer_key_id: bytes | None
    dns: frozenset[str]
    uris: frozenset[str]


def info(cert_pem: bytes) -> CertInfo:
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError as exc:
        raise CertificateError(f"unreadable certificate: {exc}") from None
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = frozenset(san.get_values_for_type(x509.DNSName))
        uris = frozenset(san.get_values_for_type(x509.UniformResourceIdentifier))
    except x509.ExtensionNotFound:
        dns, uris = frozenset(), frozenset()
    try:
        aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    except x509.ExtensionNotFound:
        aki = None
    return CertInfo(cert.not_valid_after_utc, aki, dns, uris)


def key_id(cert_pem: bytes) -> bytes:
    """Subject key identifier of a CA certificate (what its leaves name as their authority key id)."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    return x509.SubjectKeyIdentifier.from_public_key(cert.public_key()).digest


def renewal_due(
    not_after: datetime.datetime, now: datetime.datetime, threshold: datetime.timedelta = RENEW_BEFORE
) -> bool:
    """True once less than `threshold` of validity is left (or none at all)."""
    return not_after - now < threshold
