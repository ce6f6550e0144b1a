"""Consensus benchmarks: three real node processes on loopback over real gRPC, fsync on.

    .venv/bin/python -m tests.bench.consensus.run [--quick] [--only a,b,c,d]

(a) commits/s and p50/p99 commit latency, 100 B and 1 KiB entries, 1 sequential proposer and 64 in flight
(b) the same workload on PySyncObj, printed as a ratio
(c) leader failover: SIGKILL the leader N times while a client proposes; kill -> next commit, p50 and max
(d) 1,000 idle groups on 3 nodes: CPU% and RSS per process
Progress goes to stderr, the result table to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import psutil

from tests.bench.consensus.control import Client, percentile

ROOT = Path(__file__).resolve().parents[3]
SIZES = (100, 1024)
CONCURRENCY = (1, 64)


def progress(msg: str) -> None:
    sys.stderr.write(f"[bench {time.strftime('%H:%M:%S')}] {msg}\n")
    sys.stderr.flush()


def free_ports(n: int) -> list[int]:
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


class Proc:
    def __init__(self, name: str, argv: list[str], log_path: Path) -> None:
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.popen: subprocess.Popen[str] | None = None
        self.client: Client | None = None

    async def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("a") as log:
            # Popen returns at once (fork/exec); only the readline below waits, and it runs in a thread.
            self.popen = subprocess.Popen(  # noqa: ASYNC220
                self.argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True
            )
        assert self.popen.stdout is not None
        async with asyncio.timeout(60):
            line = await asyncio.to_thread(self.popen.stdout.readline)
        if not line:
            raise RuntimeError(f"{self.name} exited before it was ready; see {self.log_path}")
        self.client = Client(json.loads(line)["control_port"])

    async def call(self, req: dict[str, Any], timeout_s: float = 30.0) -> dict[str, Any]:
        assert self.client is not None
        return await self.client.call(req, timeout_s)

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def kill(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            os.kill(self.popen.pid, signal.SIGKILL)
            self.popen.wait()
        if self.client is not None:
            self.client.close()


async def wait_for(what: str, cond: Callable[[], Awaitable[bool]], limit_s: float) -> None:
    deadline = time.monotonic() + limit_s
    while not await cond():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {limit_s:.0f}s waiting for {what}")
        await asyncio.sleep(0.05)


class StreamraftCluster:
    def __init__(self, base: Path, n: int = 3) -> None:
        self.base = base
        self.ids = list(range(1, n + 1))
        self.ports = dict(zip(self.ids, free_ports(n), strict=True))
        self.procs: dict[int, Proc] = {}
        self.groups: list[int] = []

    def proc(self, node: int) -> Proc:
        peers = ",".join(f"{i}=127.0.0.1:{p}" for i, p in self.ports.items() if i != node)
        argv = [sys.executable, "-m", "tests.bench.consensus.streamraft_node", "--id", str(node)]
        argv += [
            "--dir",
            str(self.base / f"node-{node}"),
            "--raft-port",
            str(self.ports[node]),
            "--peers",
            peers,
        ]
        return Proc(f"streamraft-{node}", argv, self.base / f"node-{node}.log")

    async def start(self) -> None:
        for node in self.ids:
            self.procs[node] = self.proc(node)
        await asyncio.gather(*(p.start() for p in self.procs.values()))

    async def restart(self, node: int) -> None:
        self.procs[node] = self.proc(node)
        await self.procs[node].start()
        req = {"op": "create", "groups": self.groups, "voters": self.ids}
        await self.procs[node].call(req, timeout_s=600)

    async def create(self, groups: list[int]) -> None:
        self.groups += groups
        req = {"op": "create", "groups": groups, "voters": self.ids}
        await asyncio.gather(*(p.call(req, timeout_s=600) for p in self.procs.values()))

    async def leader(self, group: int) -> int:
        views = set()
        for p in self.procs.values():
            with contextlib.suppress(OSError, TimeoutError, ConnectionError):
                views.add((await p.call({"op": "leader", "group": group}, timeout_s=2))["leader"])
        return views.pop() if len(views) == 1 else 0

    def stop(self) -> None:
        for p in self.procs.values():
            p.kill()


async def bench_streamraft_throughput(base: Path, duration: float) -> dict[tuple[int, int], dict[str, Any]]:
    cluster = StreamraftCluster(base / "sr-throughput")
    results: dict[tuple[int, int], dict[str, Any]] = {}
    try:
        await cluster.start()
        await cluster.create([1])
        leader = 0

        async def has_leader() -> bool:
            nonlocal leader
            leader = await cluster.leader(1)
            return leader != 0

        await wait_for("a Streamraft leader", has_leader, 30)
        for size in SIZES:
            for conc in CONCURRENCY:
                progress(f"streamraft load: {size} B entries, {conc} in flight, {duration:.0f}s")
                req = {"op": "load", "group": 1, "size": size, "concurrency": conc, "duration": duration}
                results[(size, conc)] = await cluster.procs[leader].call(req, timeout_s=duration + 120)
    finally:
        cluster.stop()
    return results


async def bench_pysyncobj_throughput(base: Path, duration: float) -> dict[tuple[int, int], dict[str, Any]]:
    ports = free_ports(3)
    addrs = [f"127.0.0.1:{p}" for p in ports]
    procs = []
    for i, addr in enumerate(addrs):
        argv = [sys.executable, "-m", "tests.bench.consensus.pysyncobj_node", "--self", addr]
        argv += ["--partners", ",".join(a for a in addrs if a != addr), "--dir", str(base / f"pso-{i}")]
        procs.append(Proc(f"pysyncobj-{i}", argv, base / f"pso-{i}.log"))
    results: dict[tuple[int, int], dict[str, Any]] = {}
    try:
        await asyncio.gather(*(p.start() for p in procs))
        leader: Proc | None = None

        async def has_leader() -> bool:
            nonlocal leader
            for p in procs:
                st = await p.call({"op": "status"})
                if st["leader"] == st["self"] and st["ready"]:
                    leader = p
                    return True
            return False

        await wait_for("a PySyncObj leader", has_leader, 60)
        assert leader is not None
        for size in SIZES:
            for conc in CONCURRENCY:
                progress(f"pysyncobj load: {size} B entries, {conc} in flight, {duration:.0f}s")
                req = {"op": "load", "size": size, "concurrency": conc, "duration": duration}
                results[(size, conc)] = await leader.call(req, timeout_s=duration + 120)
    finally:
        for p in procs:
            p.kill()
    return results


async def bench_failover(base: Path, rounds: int) -> list[float]:
    cluster = StreamraftCluster(base / "sr-failover")
    failovers: list[float] = []
    commits: list[tuple[float, float]] = []  # (sent, acknowledged), monotonic
    stop = asyncio.Event()

    async def proposer() -> None:
        target = 1
        while not stop.is_set():
            sent = time.monotonic()
            try:
                reply = await cluster.procs[target].call({"op": "propose", "group": 1, "size": 100}, 2.0)
            except (OSError, TimeoutError, ConnectionError):
                reply = {"error": "unreachable"}
            if "index" in reply:
                commits.append((sent, time.monotonic()))
                continue
            hint = int(reply.get("hint", 0) or 0)
            target = hint if hint in cluster.procs and hint != target else target % len(cluster.ids) + 1
            await asyncio.sleep(0.005)

    try:
        await cluster.start()
        await cluster.create([1])
        task = asyncio.get_running_loop().create_task(proposer())
        for n in range(rounds):

            async def leader_known() -> bool:
                return await cluster.leader(1) != 0

            await wait_for("a leader", leader_known, 30)
            leader = await cluster.leader(1)
            before = len(commits)

            async def committing(before: int = before) -> bool:
                return len(commits) > before + 5

            await wait_for("steady commits", committing, 30)
            killed_at = time.monotonic()
            cluster.procs[leader].kill()

            async def committed_after_kill(killed_at: float = killed_at) -> bool:
                return any(sent > killed_at for sent, _ in commits[-50:])

            await wait_for("a commit after the kill", committed_after_kill, 30)
            ack = min(a for s, a in commits if s > killed_at)
            failovers.append(ack - killed_at)
            progress(
                f"failover {n + 1}/{rounds}: killed node {leader}, next commit after {failovers[-1]:.3f}s"
            )
            await cluster.restart(leader)
            target = 0
            for node, proc in cluster.procs.items():
                if node != leader:
                    with contextlib.suppress(OSError, TimeoutError, ConnectionError):
                        reply = await proc.call({"op": "leader", "group": 1}, 2)
                        target = max(target, int(reply.get("applied", 0)))

            async def rejoined(node: int = leader, target: int = target) -> bool:
                # Healthy again: the restarted node follows a leader, is connected to every peer and has
                # caught up with where the others were when it came back.
                with contextlib.suppress(OSError, TimeoutError, ConnectionError):
                    reply = await cluster.procs[node].call({"op": "leader", "group": 1}, 2)
                    return (
                        reply.get("leader", 0) != 0
                        and reply.get("connected") == len(cluster.ids) - 1
                        and int(reply.get("applied", 0)) >= target
                    )
                return False

            await wait_for("the restarted node to rejoin", rejoined, 60)
        stop.set()
        await task
    finally:
        stop.set()
        cluster.stop()
    return failovers


async def bench_idle(base: Path, groups: int, measure_s: float) -> list[dict[str, Any]]:
    cluster = StreamraftCluster(base / "sr-idle")
    rows: list[dict[str, Any]] = []
    try:
        await cluster.start()
        progress(f"idle: creating {groups} groups on 3 nodes")
        await cluster.create(list(range(1, groups + 1)))

        async def all_quiet() -> bool:
            sts = [await p.call({"op": "status"}) for p in cluster.procs.values()]
            progress(
                "idle: with leader "
                + "/".join(str(s["with_leader"]) for s in sts)
                + ", quiesced "
                + "/".join(str(s["quiesced"]) for s in sts)
            )
            return all(s["with_leader"] == groups and s["quiesced"] == groups for s in sts)

        await wait_for("every group to elect and quiesce", all_quiet, 600)
        ps = {n: psutil.Process(p.pid) for n, p in cluster.procs.items()}
        before = {n: p.cpu_times() for n, p in ps.items()}
        t0 = time.monotonic()
        progress(f"idle: measuring for {measure_s:.0f}s")
        await asyncio.sleep(measure_s)  # the measurement window itself
        wall = time.monotonic() - t0
        for n, p in ps.items():
            after = p.cpu_times()
            cpu = (after.user + after.system) - (before[n].user + before[n].system)
            st = await cluster.procs[n].call({"op": "status"})
            rows.append(
                {
                    "node": n,
                    "cpu_pct": 100 * cpu / wall,
                    "rss_mib": p.memory_info().rss / (1 << 20),
                    "leading": st["leading"],
                    "quiesced": st["quiesced"],
                }
            )
    finally:
        cluster.stop()
    return rows


def print_tables(
    sr: dict[tuple[int, int], dict[str, Any]] | None,
    pso: dict[tuple[int, int], dict[str, Any]] | None,
    failovers: list[float] | None,
    idle: list[dict[str, Any]] | None,
    idle_groups: int,
) -> None:
    out = sys.stdout
    if sr or pso:
        out.write("\n(a)+(b) commit throughput and latency, 3 nodes, loopback gRPC, fsync on\n")
        out.write(
            f"{'entry':>6} {'inflight':>8} | {'sr commits/s':>12} {'p50 ms':>8} {'p99 ms':>8} | "
            f"{'pso commits/s':>13} {'p50 ms':>8} {'p99 ms':>8} | {'ratio':>6}\n"
        )
        for key in sr or pso or {}:
            r = (sr or {}).get(key)
            p = (pso or {}).get(key)
            ratio = f"{r['rate'] / p['rate']:.2f}x" if r and p and p["rate"] else "n/a"
            rcols = f"{r['rate']:>12.0f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f}" if r else f"{'n/a':>30}"
            pcols = f"{p['rate']:>13.0f} {p['p50_ms']:>8.2f} {p['p99_ms']:>8.2f}" if p else f"{'n/a':>31}"
            out.write(f"{key[0]:>5}B {key[1]:>8} | {rcols} | {pcols} | {ratio:>6}\n")
    if failovers:
        f = sorted(failovers)
        out.write(f"\n(c) leader failover (SIGKILL leader, time to next commit), {len(f)} kills\n")
        out.write(f"p50 {percentile(f, 0.5):.3f}s   max {f[-1]:.3f}s   min {f[0]:.3f}s\n")
    if idle:
        out.write(f"\n(d) {idle_groups} idle groups on 3 nodes\n")
        out.write(f"{'node':>4} {'CPU % of one core':>18} {'RSS MiB':>8} {'leading':>8} {'quiesced':>8}\n")
        for row in idle:
            out.write(
                f"{row['node']:>4} {row['cpu_pct']:>18.2f} {row['rss_mib']:>8.1f} "
                f"{row['leading']:>8} {row['quiesced']:>8}\n"
            )
    out.flush()


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="shorter runs, fewer failovers")
    parser.add_argument("--only", default="a,b,c,d", help="comma-separated subset of a,b,c,d")
    parser.add_argument("--groups", type=int, default=1000, help="idle groups for (d)")
    parser.add_argument("--keep", action="store_true", help="keep the data directories")
    args = parser.parse_args()
    only = set(args.only.split(","))
    duration = 3.0 if args.quick else 8.0
    rounds = 5 if args.quick else 20
    measure = 5.0 if args.quick else 15.0
    # On disk, not tmpfs: fsync must mean something.
    base = Path(tempfile.mkdtemp(prefix="streamraft-bench-", dir="/var/tmp"))
    progress(f"data under {base}; the machine may be shared, so timings are noisy")
    sr = pso = idle = None
    failovers = None
    # Whatever finished is printed even if a later part fails.
    try:
        if "a" in only:
            sr = await bench_streamraft_throughput(base, duration)
        if "b" in only:
            pso = await bench_pysyncobj_throughput(base, duration)
        if "c" in only:
            failovers = await bench_failover(base, rounds)
        if "d" in only:
            idle = await bench_idle(base, args.groups, measure)
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
        print_tables(sr, pso, failovers, idle, args.groups)


if __name__ == "__main__":
    asyncio.run(main())
