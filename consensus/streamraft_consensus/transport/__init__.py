"""gRPC transport: one stream per peer pair carrying the messages of all Raft groups."""

from streamraft_consensus.transport.faults import FaultInjector
from streamraft_consensus.transport.grpc_transport import GrpcTransport, Inbound, TransportConfig

__all__ = ["FaultInjector", "GrpcTransport", "Inbound", "TransportConfig"]
