"""Randomized fault schedules against one real 3-broker replicated cluster, with seed replay.

- ``net``: a TCP proxy per directed Raft link (i→j) in the test process; cut (symmetric, one-way,
  isolation), bounded delay, heal. Plain proxies, not ``ip netns``: no privileges needed.
- ``cluster``: ``ProxiedCluster``, the launcher's cluster with each broker's peers behind the proxies.
- ``kinds``: the registry of fault kinds (kill, term, pause, isolate, split_pair, one_way, deaf_or_mute,
  delay, leader_cutoff, create_topics, overlap, empty_disk; crash_all is registered but off until the
  broker bug it hits is fixed, see ``REGISTRY``); each draws its step from a seeded RNG and runs it.
- ``schedule``: schedule ``K`` of seed ``S`` is a pure function of (S, K).
- ``load``: idempotent acks=all producer, two readers (one committing as a group), watermark sampler.
- ``driver``: runs schedules back to back, liveness and the history checker after each one.

Run: ``python -m tests.cluster.faults --schedules 50 --seed 0``; a failure prints the seed, the steps and
``python -m tests.cluster.faults --seed S --only K`` (exactly that schedule on a fresh cluster) plus
``--schedules K+1`` (the run up to it, for failures that need earlier schedules' leftovers). Schedules
depend on the registry (kinds, weights), so a replay command holds for the code version that printed it.
"""
