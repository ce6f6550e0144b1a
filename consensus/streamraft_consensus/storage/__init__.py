"""Durable Raft storage: append-only CRC-32C segment files, atomic hard state and snapshot files."""
