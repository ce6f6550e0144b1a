"""gRPC transport: one stream per peer pair carrying the messages of all Raft groups."""
