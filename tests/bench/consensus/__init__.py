"""Consensus benchmarks: 3 real processes over loopback gRPC with fsync, compared with PySyncObj."""
