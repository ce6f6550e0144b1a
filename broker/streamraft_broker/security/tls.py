"""TLS for SSL and SASL_SSL listeners (stdlib ``ssl``, TLS 1.2 and 1.3 only) and the principal of a client
certificate.

Key material is PEM only (``ssl.keystore.type=PEM``): either ``ssl.keystore.location`` (one file with the
private key and the certificate chain) or ``ssl.keystore.certificate.chain`` + ``ssl.keystore.key``, each
PEM text as in Kafka or, here also, a path to a PEM file. ``ssl.truststore.location`` is a PEM file of CA
certificates. ``ssl.client.auth`` is Kafka's none / requested / required.

A client certificate's principal is ``User:`` + its subject DN as Kafka prints it (RFC 2253, most specific
attribute first: ``CN=alice,OU=eng``), rewritten by ``ssl.principal.mapping.rules``.
"""

from __future__ import annotations

import logging
import os
import re
import ssl
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from cryptography import x509

from streamraft_broker.config import BrokerConfig, ConfigError

_PEM_BEGIN = "-----BEGIN"
log = logging.getLogger(__name__)


def _pem_file(value: str, what: str, tmp: list[str]) -> str:
    """A PEM value given as text (Kafka) or as a file path -> a path the ssl module can load."""
    if value.lstrip().startswith(_PEM_BEGIN):
        fd, path = tempfile.mkstemp(prefix="streamraft-pem-", suffix=".pem")
        with os.fdopen(fd, "w") as f:
            f.write(value)
        tmp.append(path)
        return path
    if not Path(value).is_file():
        raise ConfigError(f"{what}: {value!r} is neither PEM text nor a readable file")
    return value


def _load_keystore(ctx: ssl.SSLContext, cfg: BrokerConfig) -> None:
    password = cfg.ssl_key_password or None
    tmp: list[str] = []
    try:
        if cfg.ssl_keystore_location is not None:
            store = cfg.ssl_keystore_location
            if not store.is_file():
                raise ConfigError(f"ssl_keystore_location: {store} is not a readable file")
            ctx.load_cert_chain(str(store), password=password)
        elif cfg.ssl_keystore_certificate_chain and cfg.ssl_keystore_key:
            chain = _pem_file(cfg.ssl_keystore_certificate_chain, "ssl_keystore_certificate_chain", tmp)
            key = _pem_file(cfg.ssl_keystore_key, "ssl_keystore_key", tmp)
            ctx.load_cert_chain(chain, key, password=password)
        else:
            raise ConfigError(
                "an SSL or SASL_SSL listener needs ssl_keystore_location or "
                "ssl_keystore_certificate_chain and ssl_keystore_key"
            )
    except ssl.SSLError as exc:
        raise ConfigError(f"ssl keystore: cannot load the key and certificate: {exc.reason or exc}") from None
    finally:
        for path in tmp:
            os.unlink(path)


def _load_truststore(ctx: ssl.SSLContext, cfg: BrokerConfig) -> None:
    path = cfg.ssl_truststore_location
    if path is None:
        return
    if not path.is_file():
        raise ConfigError(f"ssl_truststore_location: {path} is not a readable file")
    try:
        ctx.load_verify_locations(cafile=str(path))
    except ssl.SSLError as exc:
        raise ConfigError(f"ssl_truststore_location: {path}: {exc.reason or exc}") from None


def server_context(cfg: BrokerConfig, security_protocol: str) -> ssl.SSLContext:
    """The context of this broker's SSL (or SASL_SSL) listeners. As in Kafka, ``ssl.client.auth`` is for
    SSL listeners: a SASL_SSL client authenticates with SASL and is not asked for a certificate."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    _load_keystore(ctx, cfg)
    _load_truststore(ctx, cfg)
    client_auth = cfg.ssl_client_auth if security_protocol == "SSL" else "none"
    if client_auth != "none" and cfg.ssl_truststore_location is None:
        raise ConfigError(f"ssl_client_auth={client_auth} needs ssl_truststore_location")
    ctx.verify_mode = {
        "none": ssl.CERT_NONE,
        "requested": ssl.CERT_OPTIONAL,
        "required": ssl.CERT_REQUIRED,
    }[client_auth]
    return ctx


def keystore_files(cfg: BrokerConfig) -> tuple[Path, ...]:
    """The files the listeners' key material is read from (PEM given as text has none)."""
    out: list[Path] = []
    if cfg.ssl_keystore_location is not None:
        out.append(cfg.ssl_keystore_location)
    else:
        for value in (cfg.ssl_keystore_certificate_chain, cfg.ssl_keystore_key):
            if value and not value.lstrip().startswith(_PEM_BEGIN):
                out.append(Path(value))
    if cfg.ssl_truststore_location is not None:
        out.append(cfg.ssl_truststore_location)
    return tuple(out)


def _stamp(paths: tuple[Path, ...]) -> tuple[tuple[int, int], ...]:
    stamps: list[tuple[int, int]] = []
    for path in paths:
        try:
            st = path.stat()
        except OSError:
            stamps.append((-1, -1))
        else:
            stamps.append((st.st_mtime_ns, st.st_size))
    return tuple(stamps)


class KeystoreWatcher:
    """Loads renewed key material into the running listeners' contexts, so a certificate rotated on disk
    (a Kubernetes Secret volume swaps its files atomically) is served without a restart.

    New handshakes use the reloaded certificate; open connections keep theirs. A reload that fails (a
    certificate and key that do not match, say, while a non-atomic writer is half done) keeps the current
    material, is logged with the reason, and is tried again at the next change. A truststore reload adds
    CA certificates: one removed from the file stays trusted until a restart."""

    def __init__(self, cfg: BrokerConfig, contexts: list[ssl.SSLContext]) -> None:
        self._cfg = cfg
        self._contexts = contexts
        self._files = keystore_files(cfg)
        self._stamp = _stamp(self._files)

    def check(self) -> bool:
        """Reloads if any file changed since the last check; True when new material was loaded."""
        stamp = _stamp(self._files)
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        with tempfile.TemporaryDirectory(prefix="streamraft-tls-") as tmp:
            try:
                # A failed load leaves an SSLContext half-updated (the new certificate with the old key:
                # every handshake fails), and the files may change again meanwhile. So the files are
                # copied once, tried on a scratch context, and only then loaded into the live ones.
                snapshot = self._snapshot(Path(tmp))
                _load_keystore(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), snapshot)
                for ctx in self._contexts:
                    _load_keystore(ctx, snapshot)
                    _load_truststore(ctx, snapshot)
            except (ConfigError, OSError) as exc:
                log.warning("tls_keystore_reload_failed", extra={"reason": str(exc)})
                return False
        log.info("tls_keystore_reloaded", extra={"files": [str(f) for f in self._files]})
        return True

    def _snapshot(self, directory: Path) -> BrokerConfig:
        """The settings, with every key file replaced by a private copy taken now."""
        copies: dict[Path, Path] = {}
        for i, path in enumerate(self._files):
            copy = directory / f"{i}.pem"
            copy.write_bytes(path.read_bytes())
            copies[path] = copy

        def moved(value: str) -> str:
            return str(copies.get(Path(value), value)) if value else value

        cfg = self._cfg
        return replace(
            cfg,
            ssl_keystore_location=copies.get(cfg.ssl_keystore_location)
            if cfg.ssl_keystore_location
            else None,
            ssl_keystore_certificate_chain=moved(cfg.ssl_keystore_certificate_chain),
            ssl_keystore_key=moved(cfg.ssl_keystore_key),
            ssl_truststore_location=(
                copies.get(cfg.ssl_truststore_location) if cfg.ssl_truststore_location else None
            ),
        )


def client_context(cfg: BrokerConfig) -> ssl.SSLContext:
    """This broker as a TLS client of another broker: verifies the peer against the truststore and
    presents the broker's own certificate (for listeners that want client certificates)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    _load_truststore(ctx, cfg)
    if cfg.ssl_truststore_location is None:
        ctx.load_default_certs()
    _load_keystore(ctx, cfg)
    return ctx


# ---------------------------------------------------------------------- principal of a certificate


def subject_dn(cert_der: bytes) -> str:
    """The subject DN in RFC 2253 order, as Java's ``X500Principal.getName()`` prints it."""
    return x509.load_der_x509_certificate(cert_der).subject.rfc4514_string()


@dataclass(frozen=True)
class _Rule:
    pattern: re.Pattern[str] | None
    """None: DEFAULT (the DN unchanged)."""
    replacement: str = ""
    case: str = ""


_RULE = re.compile(r"\s*(DEFAULT|RULE:((?:\\.|[^\\/])*)/((?:\\.|[^\\/])*)/([LU]?))\s*(?:,|$)")


def _java_replacement(text: str) -> str:
    """Java's ``$1`` group references -> Python's ``\\g<1>``."""
    return re.sub(r"\$(\d+)", r"\\g<\1>", text.replace("\\/", "/"))


class PrincipalMapper:
    """``ssl.principal.mapping.rules``: the first RULE whose pattern matches the whole DN rewrites it;
    DEFAULT keeps the DN as it is. No rule matching is an error (Kafka refuses the connection)."""

    def __init__(self, rules: str) -> None:
        self.rules: list[_Rule] = []
        text = rules.strip() or "DEFAULT"
        pos = 0
        while pos < len(text):
            m = _RULE.match(text, pos)
            if m is None or m.end() == pos:
                raise ConfigError(f"ssl_principal_mapping_rules: cannot parse {text[pos:]!r}")
            pos = m.end()
            if m.group(1) == "DEFAULT":
                self.rules.append(_Rule(None))
                continue
            try:
                pattern = re.compile(m.group(2).replace("\\/", "/"))
            except re.error as exc:
                raise ConfigError(f"ssl_principal_mapping_rules: bad pattern {m.group(2)!r}: {exc}") from None
            self.rules.append(_Rule(pattern, _java_replacement(m.group(3)), m.group(4)))

    def map(self, dn: str) -> str:
        for rule in self.rules:
            if rule.pattern is None:
                return dn
            if rule.pattern.fullmatch(dn):
                name = rule.pattern.sub(rule.replacement, dn, count=1)
                return name.lower() if rule.case == "L" else name.upper() if rule.case == "U" else name
        raise ValueError(f"no ssl.principal.mapping.rules rule matches {dn!r}")
