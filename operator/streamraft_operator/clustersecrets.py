"""The Secrets the operator generates for a StreamCluster: its CA, one Raft certificate per broker, and
the admin API token.

Decisions are pure functions of what the Secrets hold now (`ca_renewal`, `leaf_renewal`); `ensure`
reads, decides and writes only what must change, so a reconcile that finds everything in order writes
nothing, and a restart half-way through repeats nothing twice (a missing piece is simply made next time).
Key material never leaves the Secrets: not in status, not in events, not in logs.
"""

import base64
import datetime
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from streamraft_operator import certs
from streamraft_operator.spec import ClusterSpec

Obj = dict[str, Any]
CA_CERT = "ca.crt"
CA_KEY = "ca.key"
TLS_CERT = "tls.crt"
TLS_KEY = "tls.key"
TOKEN_KEY = "token"


def ca_secret_name(c: ClusterSpec) -> str:
    return f"{c.name}-ca"


def broker_secret_name(c: ClusterSpec, ordinal: int) -> str:
    return f"{c.name}-{ordinal}-raft-tls"


def admin_token_secret_name(c: ClusterSpec) -> str:
    return f"{c.name}-admin-token"


def broker_dns(c: ClusterSpec, ordinal: int) -> tuple[str, ...]:
    """Every stable name of the pod (its Raft peers dial the fully qualified one, the member list), and the
    bootstrap Service's names when the TLS Kafka listener is on."""
    pod = f"{c.name}-{ordinal}"
    svc = f"{c.name}-headless"
    names = (
        f"{pod}.{svc}.{c.namespace}.svc.cluster.local",
        f"{pod}.{svc}.{c.namespace}.svc",
        f"{pod}.{svc}.{c.namespace}",
        f"{pod}.{svc}",
        pod,
    )
    if not c.tls_listener:
        return names
    # TLS Kafka clients reach any broker first through the bootstrap Service.
    boot = f"{c.name}-bootstrap"
    return (
        *names,
        f"{boot}.{c.namespace}.svc.cluster.local",
        f"{boot}.{c.namespace}.svc",
        f"{boot}.{c.namespace}",
        boot,
    )


def _decode(data: Mapping[str, str] | None, key: str) -> bytes | None:
    if not data or key not in data:
        return None
    try:
        return base64.b64decode(data[key], validate=True)
    except ValueError:
        return None


def secret_data(secret: Mapping[str, Any] | None) -> dict[str, bytes]:
    """A Secret's data decoded; keys that are not valid base64 are left out (treated as missing)."""
    data = (secret or {}).get("data") or {}
    out: dict[str, bytes] = {}
    for key in data:
        value = _decode(data, key)
        if value is not None:
            out[key] = value
    return out


def ca_renewal(data: Mapping[str, bytes], now: datetime.datetime) -> str | None:
    """Why the CA must be (re)made, or None to keep it."""
    cert, key = data.get(CA_CERT), data.get(CA_KEY)
    if not cert or not key:
        return "no CA yet"
    try:
        certs.load(certs.KeyPair(cert, key))
        left = certs.info(cert).not_after
    except certs.CertificateError as exc:
        return f"stored CA unusable: {exc}"
    if certs.renewal_due(left, now):
        return f"CA expires {left.isoformat()}"
    return None


def leaf_renewal(
    data: Mapping[str, bytes],
    ca_cert: bytes,
    dns: tuple[str, ...],
    uris: tuple[str, ...],
    now: datetime.datetime,
) -> str | None:
    """Why a broker's certificate must be (re)issued, or None to keep it: missing, unreadable, signed by
    another CA, naming other hosts or node, or close to expiry."""
    cert, key = data.get(TLS_CERT), data.get(TLS_KEY)
    if not cert or not key:
        return "no certificate yet"
    try:
        certs.load(certs.KeyPair(cert, key))
        got = certs.info(cert)
    except certs.CertificateError as exc:
        return f"stored certificate unusable: {exc}"
    if got.issuer_key_id != certs.key_id(ca_cert) or data.get(CA_CERT) != ca_cert:
        return "signed by another CA"
    if got.dns != frozenset(dns) or got.uris != frozenset(uris):
        return "names changed"
    if certs.renewal_due(got.not_after, now):
        return f"expires {got.not_after.isoformat()}"
    return None


def secret(c: ClusterSpec, name: str, data: Mapping[str, bytes], labels: Mapping[str, str]) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": c.namespace, "labels": dict(labels)},
        "type": "Opaque",
        "data": {k: base64.b64encode(v).decode() for k, v in sorted(data.items())},
    }


def new_token() -> bytes:
    """256 random bits, URL-safe (a bearer token goes into an HTTP header as is)."""
    return secrets.token_urlsafe(32).encode()


@dataclass(frozen=True)
class Wanted:
    """The Secrets to write now (complete objects) and a line per change for events."""

    secrets: tuple[Obj, ...]
    changes: tuple[str, ...]


def plan_secrets(
    c: ClusterSpec,
    existing: Mapping[str, Mapping[str, bytes]],
    now: datetime.datetime,
    labels: Mapping[str, str],
) -> Wanted:
    """Secrets to create or replace, given the decoded data of those that exist (by name).

    Issues certificates (so it is not free of randomness), but writes nothing itself."""
    out: list[Obj] = []
    changes: list[str] = []
    token_name = admin_token_secret_name(c)
    if not existing.get(token_name, {}).get(TOKEN_KEY, b"").strip():
        out.append(secret(c, token_name, {TOKEN_KEY: new_token()}, labels))
        changes.append(f"generated the admin API token ({token_name})")
    if not c.certificates:
        return Wanted(tuple(out), tuple(changes))
    ca_data = existing.get(ca_secret_name(c), {})
    why = ca_renewal(ca_data, now)
    if why is not None:
        ca = certs.create_ca(f"streamraft {c.namespace}/{c.name} CA", now)
        out.append(secret(c, ca_secret_name(c), {CA_CERT: ca.cert_pem, CA_KEY: ca.key_pem}, labels))
        changes.append(f"created the cluster CA ({why})")
    else:
        ca = certs.KeyPair(ca_data[CA_CERT], ca_data[CA_KEY])
    for ordinal in range(c.replicas):
        name = broker_secret_name(c, ordinal)
        dns = broker_dns(c, ordinal)
        uris = (certs.node_uri(ordinal + 1),)
        why = leaf_renewal(existing.get(name, {}), ca.cert_pem, dns, uris, now)
        if why is None:
            continue
        leaf = certs.issue(ca, f"{c.name}-{ordinal}", now, dns=dns, uris=uris)
        data = {TLS_CERT: leaf.cert_pem, TLS_KEY: leaf.key_pem, CA_CERT: ca.cert_pem}
        out.append(secret(c, name, data, labels))
        changes.append(f"issued the certificate of broker {ordinal + 1} ({why})")
    return Wanted(tuple(out), tuple(changes))


def secret_names(c: ClusterSpec) -> list[str]:
    names = [admin_token_secret_name(c)]
    if c.certificates:
        names.append(ca_secret_name(c))
        names += [broker_secret_name(c, i) for i in range(c.replicas)]
    return names
