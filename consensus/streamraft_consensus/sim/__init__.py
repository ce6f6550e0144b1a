"""Deterministic simulator that checks Raft safety invariants under faults.

``python -m streamraft_consensus.sim --seeds 0-1999 --jobs 2`` runs the CI gate; ``--seed N --verbose``
replays one seed bit for bit. ``world`` is the fault-injecting simulation and its checker (election
safety, log matching, leader completeness, state machine safety, snapshot safety, durability of
acknowledged writes, monotonic term/commit, linearizable read-index, liveness within ``LIVENESS_TICKS``
after healing); ``disk`` models fsync and torn writes; ``cluster`` is the scripted harness for
interaction tests; ``bench`` measures the core's throughput.
"""
