"""Streamraft's Raft library.

``core`` is a pure, deterministic state machine (etcd-io/raft's Ready/Advance shape); ``storage``,
``transport`` and ``runtime`` put it on disk, on the network and on an asyncio loop; ``sim`` checks its
safety invariants under simulated faults.
"""
