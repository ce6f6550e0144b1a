"""The Raft transport's mutual TLS, from the broker's settings: a peer is the node its certificate's
``spiffe://streamraft/node/<id>`` URI SAN names (security.pki), never what its frames say."""

from __future__ import annotations

from streamraft_consensus.transport.grpc_transport import TransportTls

from streamraft_broker.config import BrokerConfig
from streamraft_broker.security.pki import certificate_node_id


def raft_tls(cfg: BrokerConfig) -> TransportTls | None:
    """None when the three raft_tls_* settings are unset (plaintext, as before)."""
    if cfg.raft_tls_cert is None or cfg.raft_tls_key is None or cfg.raft_tls_ca is None:
        return None
    return TransportTls(cfg.raft_tls_cert, cfg.raft_tls_key, cfg.raft_tls_ca, certificate_node_id)
