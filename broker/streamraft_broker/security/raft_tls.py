"""The Raft transport's mutual TLS, from the broker's settings: a peer is the node its certificate's
``spiffe://streamraft/node/<id>`` URI SAN names (security.pki), never what its frames say."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from streamraft_consensus.transport.grpc_transport import TransportTls

from streamraft_broker.config import BrokerConfig
from streamraft_broker.security.pki import CertFiles, certificate_node_id, create_ca, issue_broker


def raft_tls(cfg: BrokerConfig) -> TransportTls | None:
    """None when the three raft_tls_* settings are unset (plaintext, as before)."""
    if cfg.raft_tls_cert is None or cfg.raft_tls_key is None or cfg.raft_tls_ca is None:
        return None
    return TransportTls(cfg.raft_tls_cert, cfg.raft_tls_key, cfg.raft_tls_ca, certificate_node_id)


def local_certificates(directory: Path, node_ids: Sequence[int]) -> dict[int, CertFiles]:
    """For ``streamraft local up --raft-tls``: a CA and one broker certificate per node under
    ``directory``, made once and reused on later runs (so a restarted local cluster keeps trusting itself)."""
    ca = CertFiles(
        cert=directory / "ca" / "ca.crt", key=directory / "ca" / "ca.key", ca=directory / "ca" / "ca.crt"
    )
    if not (ca.cert.exists() and ca.key.exists()):
        ca = create_ca(directory / "ca", common_name="streamraft-local-ca")
    out: dict[int, CertFiles] = {}
    for node in node_ids:
        files = CertFiles(
            cert=directory / "brokers" / f"broker-{node}.crt",
            key=directory / "brokers" / f"broker-{node}.key",
            ca=ca.cert,
        )
        if not (files.cert.exists() and files.key.exists()):
            files = issue_broker(ca, directory / "brokers", node)
        out[node] = files
    return out
