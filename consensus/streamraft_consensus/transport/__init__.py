"""gRPC transport: one stream per peer pair carrying the messages of all Raft groups."""

from streamraft_consensus.transport.faults import FaultInjector
from streamraft_consensus.transport.grpc_transport import (
    GrpcTransport,
    Inbound,
    PeerIdentityError,
    TransportConfig,
    TransportTls,
)

__all__ = [
    "FaultInjector",
    "GrpcTransport",
    "Inbound",
    "PeerIdentityError",
    "TransportConfig",
    "TransportTls",
]
