"""Certificates and keys for the local control plane, made with the openssl CLI.

The `cryptography` package is not installed in this venv, and openssl is on every machine that can run
the control plane, so the CLI is the dependency-free choice. EC P-256 keys keep generation fast on a
shared 2-core machine; the service-account key is RSA because every token consumer accepts RS256.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

_DAYS = "3650"


@dataclass(frozen=True)
class Pki:
    """Paths of everything the control plane components and clients need."""

    directory: Path

    @property
    def ca_crt(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.directory / "ca.key"

    @property
    def front_proxy_ca_crt(self) -> Path:
        return self.directory / "front-proxy-ca.crt"

    @property
    def sa_key(self) -> Path:
        return self.directory / "sa.key"

    @property
    def sa_pub(self) -> Path:
        return self.directory / "sa.pub"

    def crt(self, name: str) -> Path:
        return self.directory / f"{name}.crt"

    def key(self, name: str) -> Path:
        return self.directory / f"{name}.key"


def _openssl(*args: str, cwd: Path) -> None:
    result = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {result.stderr.strip()}")


def _ca(directory: Path, name: str, subject: str) -> None:
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", f"{name}.key", "-out", f"{name}.crt", "-days", _DAYS, "-subj", subject,
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=directory,
    )  # fmt: skip


def _leaf(directory: Path, ca: str, name: str, *, subject: str, usage: str, sans: list[str] | None) -> None:
    _openssl(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject,
        cwd=directory,
    )  # fmt: skip
    ext = [
        "basicConstraints=critical,CA:FALSE",
        "keyUsage=critical,digitalSignature,keyEncipherment",
        f"extendedKeyUsage={usage}",
    ]
    if sans:
        ext.append("subjectAltName=" + ",".join(sans))
    (directory / f"{name}.ext").write_text("\n".join(ext) + "\n")
    _openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key", "-CAcreateserial",
        "-days", _DAYS, "-out", f"{name}.crt", "-extfile", f"{name}.ext",
        cwd=directory,
    )  # fmt: skip


def generate(directory: Path, server_ips: list[str]) -> Pki:
    """Creates a CA, the apiserver serving certificate (valid for `server_ips`), an admin client
    certificate (group system:masters), the front-proxy pair and the service-account signing key."""
    directory.mkdir(parents=True, exist_ok=True)
    _ca(directory, "ca", "/CN=streamraft-test-ca")
    sans = ["DNS:localhost", "DNS:kubernetes", "DNS:kubernetes.default", "DNS:kubernetes.default.svc"]
    sans += ["DNS:kubernetes.default.svc.cluster.local", "IP:10.96.0.1"] + [f"IP:{ip}" for ip in server_ips]
    _leaf(directory, "ca", "apiserver", subject="/CN=kube-apiserver", usage="serverAuth", sans=sans)
    _leaf(
        directory,
        "ca",
        "admin",
        subject="/O=system:masters/CN=streamraft-admin",
        usage="clientAuth",
        sans=None,
    )
    _ca(directory, "front-proxy-ca", "/CN=streamraft-front-proxy-ca")
    _leaf(
        directory,
        "front-proxy-ca",
        "front-proxy-client",
        subject="/CN=front-proxy-client",
        usage="clientAuth",
        sans=None,
    )
    _openssl("genrsa", "-out", "sa.key", "2048", cwd=directory)
    _openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=directory)
    return Pki(directory)


def self_signed(directory: Path, name: str, ips: list[str]) -> tuple[Path, Path]:
    """A self-signed serving certificate for `ips` (the node agent's kubelet endpoint: the apiserver
    does not verify kubelet certificates unless told to); returns (certificate, key)."""
    directory.mkdir(parents=True, exist_ok=True)
    sans = ",".join(f"IP:{ip}" for ip in ips)
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", f"{name}.key", "-out", f"{name}.crt", "-days", _DAYS, "-subj", f"/CN={name}",
        "-addext", f"subjectAltName={sans}",
        cwd=directory,
    )  # fmt: skip
    return directory / f"{name}.crt", directory / f"{name}.key"
