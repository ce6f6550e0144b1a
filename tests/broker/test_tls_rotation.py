"""A certificate renewed on disk is served by the running broker's SSL listener without a restart, while a
producer writes over TLS with acks=all: nothing is lost and no connection is refused. Files are swapped
the way a Kubernetes Secret volume swaps them (written aside, renamed into place). A half-written pair (a
new certificate with the old key) is refused: the broker keeps serving the certificate it has and says why
in its log."""

from __future__ import annotations

import os
import shutil
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from streamraft_broker.security import pki

from tests.support.background_writer import AckedWriter, read_values
from tests.support.broker_process import BrokerProcess
from tests.support.poll import poll

DEADLINE_S = 30.0
TOPIC = "rotated"


def _swap_in(source: pki.CertFiles, live: pki.CertFiles) -> None:
    """Certificate and key replaced by rename, as a Secret volume's atomic update does."""
    for src, dst in ((source.cert, live.cert), (source.key, live.key)):
        aside = dst.with_suffix(".new")
        shutil.copyfile(src, aside)
        os.replace(aside, dst)


def _served_serial(port: int, ca: Path) -> int:
    ctx = ssl.create_default_context(cafile=str(ca))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname="localhost") as conn,
    ):
        der = conn.getpeercert(binary_form=True)
    assert der is not None
    return int(x509.load_der_x509_certificate(der).serial_number)


def _serial(cert: Path) -> int:
    return int(x509.load_pem_x509_certificate(cert.read_bytes()).serial_number)


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pki")


@pytest.fixture(scope="module")
def ca(pki_dir: Path) -> pki.CertFiles:
    return pki.create_ca(pki_dir / "ca")


@pytest.fixture(scope="module")
def live(pki_dir: Path, ca: pki.CertFiles) -> pki.CertFiles:
    first = pki.issue_broker(ca, pki_dir / "first", 1, ["localhost"])
    live_dir = pki_dir / "live"
    live_dir.mkdir()
    files = pki.CertFiles(cert=live_dir / "tls.crt", key=live_dir / "tls.key", ca=ca.cert)
    shutil.copyfile(first.cert, files.cert)
    shutil.copyfile(first.key, files.key)
    return files


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory, live: pki.CertFiles) -> Iterator[BrokerProcess]:
    args = {
        "listeners": "PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0",
        "ssl-keystore-certificate-chain": str(live.cert),
        "ssl-keystore-key": str(live.key),
        "auto-create-topics": "true",
    }
    extra = [part for key, value in args.items() for part in (f"--{key}", value)]
    with BrokerProcess(tmp_path_factory.mktemp("broker") / "data", extra_args=extra) as proc:
        yield proc


def test_a_renewed_certificate_is_served_under_acks_all_load_and_nothing_is_lost(
    broker: BrokerProcess, pki_dir: Path, ca: pki.CertFiles, live: pki.CertFiles
) -> None:
    port = broker.listener_ports["SSL"]
    old_serial = _served_serial(port, ca.cert)
    assert old_serial == _serial(live.cert)
    renewed = pki.issue_broker(ca, pki_dir / "renewed", 1, ["localhost"])

    conf = {
        "bootstrap.servers": f"localhost:{port}",
        "security.protocol": "SSL",
        "ssl.ca.location": str(ca.cert),
    }
    with AckedWriter(conf, TOPIC) as writer:
        writer.wait_for_more(200, DEADLINE_S, "over TLS")
        _swap_in(renewed, live)
        poll(
            "the broker serving its renewed certificate",
            lambda: _served_serial(port, ca.cert) == _serial(renewed.cert),
            DEADLINE_S,
        )
        writer.wait_for_more(200, DEADLINE_S, "after the renewal")
    assert writer.failed == []
    assert len(writer.acked) == writer.sent
    assert read_values(conf, TOPIC, writer.acked, DEADLINE_S) == writer.acked


def test_a_certificate_that_does_not_match_its_key_is_refused_and_the_old_one_kept(
    broker: BrokerProcess, pki_dir: Path, ca: pki.CertFiles, live: pki.CertFiles
) -> None:
    port = broker.listener_ports["SSL"]
    serving = _served_serial(port, ca.cert)
    stray = pki.issue_broker(ca, pki_dir / "stray", 1, ["localhost"])
    aside = live.cert.with_suffix(".new")
    shutil.copyfile(stray.cert, aside)
    os.replace(aside, live.cert)  # the certificate only: its key is still the previous one

    poll(
        "the broker logging the refused reload",
        lambda: "tls_keystore_reload_failed" in broker.log_tail(200),
        DEADLINE_S,
    )
    assert _served_serial(port, ca.cert) == serving
    assert broker.running
