"""One Streamraft consensus node for the benchmarks (a real process).

    python -m tests.bench.consensus.streamraft_node --id 1 --dir D --raft-port P --peers 2=127.0.0.1:Q,...

Prints one JSON line {"control_port": N} on stdout once ready, then serves control requests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from streamraft_consensus.runtime import NotLeaderError, Runtime, RuntimeConfig, TermChangedError

from tests.bench.consensus.control import serve, summarize


async def load(rt: Runtime, req: dict[str, Any]) -> dict[str, Any]:
    group, size, concurrency = int(req["group"]), int(req["size"]), int(req["concurrency"])
    duration, max_ops = float(req["duration"]), int(req.get("max_ops", 1_000_000))
    payload = os.urandom(size)
    latencies: list[float] = []
    errors = 0
    deadline = time.monotonic() + duration

    async def worker() -> None:
        nonlocal errors
        while time.monotonic() < deadline and len(latencies) < max_ops and errors < 1000:
            t0 = time.perf_counter()
            try:
                await rt.propose(group, payload)
            except (NotLeaderError, TermChangedError):
                errors += 1
                continue
            latencies.append(time.perf_counter() - t0)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return summarize(latencies, time.perf_counter() - start, errors)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--id", type=int, required=True)
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--raft-port", type=int, required=True)
    parser.add_argument("--peers", default="")
    args = parser.parse_args()
    level = os.environ.get("STREAMRAFT_BENCH_LOG", "WARNING")
    logging.basicConfig(level=level, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    rt = Runtime(RuntimeConfig(args.id, data_dir=args.dir), listen=f"127.0.0.1:{args.raft_port}")
    await rt.start()
    for spec in filter(None, args.peers.split(",")):
        node, address = spec.split("=", 1)
        rt.add_node(int(node), address)

    async def handle(req: dict[str, Any]) -> dict[str, Any]:
        op = req["op"]
        if op == "create":
            voters = [int(v) for v in req["voters"]]
            for g in req["groups"]:
                if int(g) not in rt.groups():
                    await rt.create_group(int(g), voters)
            return {"ok": True}
        if op == "status":
            groups = rt.groups()
            return {
                "groups": len(groups),
                "leading": sum(rt.is_leader(g) for g in groups),
                "with_leader": sum(rt.leader(g) != 0 for g in groups),
                "quiesced": sum(rt.is_quiesced(g) for g in groups),
                "pid": os.getpid(),
            }
        if op == "leader":
            connected = sum(rt.transport.is_connected(p) for p in rt.transport.peers())
            group = int(req["group"])
            return {"leader": rt.leader(group), "connected": connected, "applied": rt.applied(group)}
        if op == "propose":
            try:
                index = await rt.propose(int(req["group"]), os.urandom(int(req["size"])))
            except NotLeaderError as err:
                return {"error": "not_leader", "hint": err.leader_hint}
            except TermChangedError:
                return {"error": "term_changed"}
            return {"index": index}
        if op == "load":
            return await load(rt, req)
        raise ValueError(f"unknown op {op!r}")

    server = await serve(handle)
    port = server.sockets[0].getsockname()[1]
    sys.stdout.write(json.dumps({"control_port": port}) + "\n")
    sys.stdout.flush()
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
