"""Three real consensus runtimes in one event loop over loopback gRPC with durable storage."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
from streamraft_consensus.core.types import Entry, Snapshot
from streamraft_consensus.runtime import (
    LeaderChange,
    Runtime,
    RuntimeConfig,
)
from streamraft_consensus.transport import FaultInjector

from tests.support.poll import wait_until


class Recorder:
    def __init__(self) -> None:
        self.applied: dict[int, list[tuple[int, bytes]]] = {}
        self.restored: list[tuple[int, Snapshot]] = []

    def apply(self, group: int, entries: Sequence[Entry]) -> None:
        self.applied.setdefault(group, []).extend((e.index, e.data) for e in entries)

    def restore(self, group: int, snapshot: Snapshot) -> None:
        self.restored.append((group, snapshot))

    def data(self, group: int) -> list[bytes]:
        return [d for _, d in self.applied.get(group, [])]


class Cluster:
    def __init__(self, base: Path, faults: FaultInjector | None = None, successor_tie_s: float = 1.0) -> None:
        self.base = base
        self.faults = faults
        self.successor_tie_s = successor_tie_s
        self.nodes: dict[int, Runtime] = {}
        self.sms: dict[int, Recorder] = {}
        self.addresses: dict[int, str] = {}
        self.changes: list[LeaderChange] = []

    async def start_node(self, node_id: int) -> Runtime:
        sm = Recorder()
        # A restarted node reuses its address, as a pod behind a stable DNS name would.
        listen = self.addresses.get(node_id, "127.0.0.1:0")
        rt = Runtime(
            RuntimeConfig(
                node_id,
                data_dir=self.base / f"n{node_id}",
                tick_interval_s=0.02,
                successor_tie_s=self.successor_tie_s,
            ),
            sm,
            listen=listen,
            faults=self.faults,
            on_leader_change=self.changes.append,
        )
        self.addresses[node_id] = await rt.start()
        self.nodes[node_id] = rt
        self.sms[node_id] = sm
        for other, address in self.addresses.items():
            if other != node_id:
                rt.add_node(other, address)
                if other in self.nodes:
                    self.nodes[other].add_node(node_id, self.addresses[node_id])
        return rt

    async def create(self, group: int, voters: Sequence[int] = (1, 2, 3)) -> None:
        for n in voters:
            await self.nodes[n].create_group(group, voters)

    def leader(self, group: int) -> int:
        leaders = {n for n, rt in self.nodes.items() if group in rt.groups() and rt.is_leader(group)}
        return next(iter(leaders)) if len(leaders) == 1 else 0

    async def wait_leader(self, group: int) -> int:
        await wait_until(lambda: self.leader(group) != 0)
        return self.leader(group)

    async def stop(self) -> None:
        for rt in self.nodes.values():
            await rt.stop()


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    c = Cluster(tmp_path)
    for n in (1, 2, 3):
        await c.start_node(n)
    yield c
    await c.stop()
