"""One PySyncObj node running the same workload as the Streamraft benchmark (a real process).

PySyncObj is given its journal file, its most durable setting (an mmap'd journal; it does not fsync each
commit, so the comparison is generous to it).

    python -m tests.bench.consensus.pysyncobj_node --self 127.0.0.1:P --partners 127.0.0.1:Q,... --dir D
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

from pysyncobj import SyncObj, SyncObjConf, replicated

from tests.bench.consensus.control import serve, summarize


class AppendLog(SyncObj):  # type: ignore[misc]  # pysyncobj is untyped
    def __init__(self, self_addr: str, partners: list[str], conf: SyncObjConf) -> None:
        super().__init__(self_addr, partners, conf=conf)
        self.count = 0
        self.bytes = 0

    @replicated  # type: ignore[untyped-decorator]
    def add(self, data: bytes) -> int:
        self.count += 1
        self.bytes += len(data)
        return self.count


def run_load(obj: AppendLog, size: int, concurrency: int, duration: float, max_ops: int) -> dict[str, Any]:
    payload = os.urandom(size)
    latencies: list[float] = []
    errors = 0
    deadline = time.monotonic() + duration
    start = time.perf_counter()
    if concurrency == 1:
        while time.monotonic() < deadline and len(latencies) < max_ops:
            t0 = time.perf_counter()
            try:
                obj.add(payload, sync=True, timeout=5)
            except Exception:
                errors += 1
                continue
            latencies.append(time.perf_counter() - t0)
    else:
        slots = threading.Semaphore(concurrency)
        lock = threading.Lock()

        def done(t0: float, _result: object, error: object) -> None:
            nonlocal errors
            with lock:
                if error:
                    errors += 1
                else:
                    latencies.append(time.perf_counter() - t0)
            slots.release()

        while time.monotonic() < deadline and len(latencies) < max_ops:
            if not slots.acquire(timeout=5):
                break
            t0 = time.perf_counter()
            obj.add(payload, callback=lambda r, e, t0=t0: done(t0, r, e))
        for _ in range(concurrency):  # wait for what is still in flight
            slots.acquire(timeout=5)
    return summarize(latencies, time.perf_counter() - start, errors)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--self", dest="self_addr", required=True)
    parser.add_argument("--partners", required=True)
    parser.add_argument("--dir", type=Path, required=True)
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    conf = SyncObjConf(journalFile=str(args.dir / "journal"), dynamicMembershipChange=False)
    obj = AppendLog(args.self_addr, args.partners.split(","), conf)

    async def handle(req: dict[str, Any]) -> dict[str, Any]:
        op = req["op"]
        if op == "status":
            leader = obj._getLeader()
            return {"leader": str(leader) if leader else "", "self": args.self_addr, "ready": obj.isReady()}
        if op == "load":
            return await asyncio.to_thread(
                run_load,
                obj,
                int(req["size"]),
                int(req["concurrency"]),
                float(req["duration"]),
                int(req.get("max_ops", 1_000_000)),
            )
        raise ValueError(f"unknown op {op!r}")

    server = await serve(handle)
    sys.stdout.write(json.dumps({"control_port": server.sockets[0].getsockname()[1]}) + "\n")
    sys.stdout.flush()
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
