"""Core throughput benchmark: ``python -m streamraft_consensus.sim.bench``.

Drives a 3-node in-memory cluster (real RawNodes over MemoryStorage, messages delivered in-process) and
prints a table of committed entries per second for several proposal batch sizes, i.e. the cost of the
pure core on the produce path without any I/O.
"""

from __future__ import annotations

import argparse
import time

from streamraft_consensus.sim.cluster import Cluster


def run(batch: int, total: int, payload: int) -> tuple[float, int]:
    c = Cluster([1, 2, 3])
    c.elect(1)
    leader = c.nodes[1]
    data = b"x" * payload
    t0 = time.perf_counter()
    sent = 0
    while sent < total:
        for _ in range(batch):
            leader.propose(data)
        sent += batch
        c.stabilize()
    elapsed = time.perf_counter() - t0
    applied = len(c.data(3))
    assert applied == sent, f"follower applied {applied} of {sent}"
    return elapsed, sent


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m streamraft_consensus.sim.bench")
    ap.add_argument("--entries", type=int, default=20000, help="entries per row (bounded run)")
    ap.add_argument("--payload", type=int, default=100, help="bytes per entry")
    ns = ap.parse_args(argv)
    if not 0 < ns.entries <= 1_000_000:
        ap.error("--entries must be in 1..1000000")
    print(f"{'batch':>6} {'entries':>8} {'seconds':>8} {'entries/s':>10} {'us/entry':>9}")
    for batch in (1, 16, 256):
        elapsed, n = run(batch, ns.entries, ns.payload)
        print(f"{batch:>6} {n:>8} {elapsed:>8.2f} {n / elapsed:>10.0f} {elapsed / n * 1e6:>9.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
