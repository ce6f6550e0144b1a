"""Key material and broker flags for the authentication tests: a CA with broker and user certificates
(one already expired), a PLAIN users file, a JWKS with one signing key (and a second key it does not
list, for forged tokens), and the client settings of each Kafka client for SASL_SSL / SSL."""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import jwt
from confluent_kafka import KafkaError, Producer
from cryptography.hazmat.primitives.asymmetric import rsa
from streamraft_broker.security import pki

ADMIN_USER, ADMIN_PASSWORD = "admin", "admin-secret"
AUDIENCE, ISSUER = "streamraft", "https://issuer.test"
KID = "test-key-1"


@dataclass(frozen=True)
class Material:
    dir: Path
    ca: pki.CertFiles
    broker: pki.CertFiles
    alice: pki.CertFiles
    expired: pki.CertFiles
    stranger: pki.CertFiles
    """Signed by another CA the broker does not trust."""
    users_file: Path
    jwks: Path
    signing_key: rsa.RSAPrivateKey
    forging_key: rsa.RSAPrivateKey

    def token(self, subject: str, *, lifetime_s: float = 300.0, forged: bool = False) -> str:
        now = time.time()
        claims = {
            "sub": subject,
            "aud": AUDIENCE,
            "iss": ISSUER,
            "iat": int(now),
            "exp": int(now + lifetime_s),
        }
        key = self.forging_key if forged else self.signing_key
        return jwt.encode(claims, key, algorithm="RS256", headers={"kid": KID})


def make_material(directory: Path) -> Material:
    ca = pki.create_ca(directory / "ca")
    broker = pki.issue_broker(ca, directory / "certs", 0, ["localhost"])
    alice = pki.issue(ca, directory / "certs", "alice", common_name="alice", organizational_unit="eng")
    long_ago = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=30)
    expired = pki.issue(ca, directory / "certs", "expired", common_name="old", not_before=long_ago, days=1)
    other_ca = pki.create_ca(directory / "other-ca", common_name="other-ca")
    stranger = pki.issue(other_ca, directory / "other-certs", "stranger", common_name="stranger")
    users = directory / "plain-users.txt"
    users.write_text(f"# PLAIN users\n{ADMIN_USER}:{ADMIN_PASSWORD}\n")
    signing = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forging = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(signing.public_key()))
    jwk.update({"kid": KID, "use": "sig", "alg": "RS256"})
    jwks = directory / "jwks.json"
    jwks.write_text(json.dumps({"keys": [jwk]}))
    return Material(directory, ca, broker, alice, expired, stranger, users, jwks, signing, forging)


def broker_args(
    m: Material, *, client_auth: str = "required", extra: dict[str, str] | None = None
) -> list[str]:
    """PLAINTEXT first (the harness's readiness probe speaks plaintext), then SSL (client certificates),
    SASL_SSL and SASL_PLAINTEXT, all on free ports."""
    settings = {
        "listeners": "PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0,SASL_SSL://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0",
        "ssl-keystore-certificate-chain": str(m.broker.cert),
        "ssl-keystore-key": str(m.broker.key),
        "ssl-truststore-location": str(m.ca.cert),
        "ssl-client-auth": client_auth,
        "sasl-enabled-mechanisms": "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512,OAUTHBEARER",
        "sasl-plain-users-file": str(m.users_file),
        "sasl-oauthbearer-jwks-endpoint-url": m.jwks.as_uri(),
        "sasl-oauthbearer-expected-audience": AUDIENCE,
        "sasl-oauthbearer-expected-issuer": ISSUER,
        "auto-create-topics": "true",
        **(extra or {}),
    }
    out: list[str] = []
    for key, value in settings.items():
        out += [f"--{key}", value]
    return out


def confluent_sasl_ssl(m: Material, port: int, mechanism: str, user: str, password: str) -> dict[str, object]:
    return {
        "bootstrap.servers": f"127.0.0.1:{port}",
        "security.protocol": "SASL_SSL",
        "ssl.ca.location": str(m.ca.cert),
        "sasl.mechanisms": mechanism,
        "sasl.username": user,
        "sasl.password": password,
    }


def confluent_mtls(m: Material, port: int, cert: pki.CertFiles) -> dict[str, object]:
    return {
        "bootstrap.servers": f"127.0.0.1:{port}",
        "security.protocol": "SSL",
        "ssl.ca.location": str(m.ca.cert),
        "ssl.certificate.location": str(cert.cert),
        "ssl.key.location": str(cert.key),
    }


def kafka_python_sasl_ssl(m: Material, port: int, user: str, password: str) -> dict[str, object]:
    """kafka-python and aiokafka take the same keyword names (aiokafka wants an SSLContext instead of
    ``ssl_cafile``; see ``aiokafka_ssl_context``)."""
    return {
        "bootstrap_servers": f"127.0.0.1:{port}",
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": user,
        "sasl_plain_password": password,
    }


def first_client_error(conf: Mapping[str, object], timeout: float = 30.0) -> KafkaError:
    """The first error a confluent-kafka producer reports trying to reach the cluster (e.g. a refused
    login), polled for at most ``timeout`` seconds."""
    errors: list[KafkaError] = []
    producer = Producer({**conf, "error_cb": errors.append})
    deadline = time.monotonic() + timeout
    while not errors and time.monotonic() < deadline:
        producer.poll(0.2)
    assert errors, "the client reported no error"
    return errors[0]


def login_count(metrics_url: str, result: str) -> float:
    """Sum of the broker's ``streamraft_authentications_total`` samples with this result."""
    import urllib.request  # noqa: PLC0415

    with urllib.request.urlopen(metrics_url, timeout=10) as resp:
        text = resp.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith("streamraft_authentications_total{") and f'result="{result}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total
