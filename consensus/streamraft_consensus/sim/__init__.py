"""Deterministic simulator that checks Raft safety invariants under faults."""
