"""A full disk under one node of a group (a real tmpfs, filled up): the group fails stop on that node, the
others elect a leader and keep committing, and once space is back the node re-opens the group from disk and
catches up, with nothing applied twice and nothing committed lost."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from streamraft_consensus.core.types import Entry, Snapshot
from streamraft_consensus.runtime import ConsensusError, Runtime, RuntimeConfig, StorageFailedError

from tests.support.small_disk import fill, free, small_tmpfs


async def wait_until(cond: Callable[[], bool], limit_s: float = 15.0) -> None:
    deadline = time.monotonic() + limit_s
    while not cond():
        assert time.monotonic() < deadline, "condition not reached before the deadline"
        await asyncio.sleep(0.01)


async def make_leader(nodes: dict[int, Runtime], target: int) -> None:
    """Get ``target`` to lead group 1: by a transfer from the current leader, asked again if one aborts
    (a transfer gives up after an election timeout), within a bound."""
    deadline = time.monotonic() + 30
    while not nodes[target].is_leader(1):
        assert time.monotonic() < deadline, f"node {target} never took over leadership"
        leader = next((n for n, rt in nodes.items() if n != target and rt.is_leader(1)), 0)
        if leader:
            with contextlib.suppress(ConsensusError):
                await nodes[leader].transfer_leadership(1, target)
        with contextlib.suppress(AssertionError):
            await wait_until(lambda: nodes[target].is_leader(1), limit_s=2)


class Recorder:
    def __init__(self) -> None:
        self.applied: list[tuple[int, bytes]] = []

    def apply(self, group: int, entries: Sequence[Entry]) -> None:
        self.applied.extend((e.index, e.data) for e in entries)

    def restore(self, group: int, snapshot: Snapshot) -> None:
        raise AssertionError("no snapshot is taken in this test")


async def test_a_full_disk_stops_the_group_on_that_node_only_and_it_recovers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="streamraft.consensus.runtime")
    with small_tmpfs(tmp_path / "n1", size_mb=2) as small:
        nodes: dict[int, Runtime] = {}
        sms: dict[int, Recorder] = {}
        try:
            for n in (1, 2, 3):
                sms[n] = Recorder()
                nodes[n] = Runtime(
                    RuntimeConfig(
                        n,
                        data_dir=small if n == 1 else tmp_path / f"n{n}",
                        tick_interval_s=0.02,
                        storage_retry_s=0.2,
                        storage_retry_max_s=0.5,
                    ),
                    sms[n],
                )
            addresses = {n: await rt.start() for n, rt in nodes.items()}
            for n, rt in nodes.items():
                for other, address in addresses.items():
                    if other != n:
                        rt.add_node(other, address)
            for rt in nodes.values():
                await rt.create_group(1, (1, 2, 3))
            await make_leader(nodes, 1)
            for i in range(5):
                await nodes[1].propose(1, b"before-%d" % i)

            fill(small)
            with pytest.raises(StorageFailedError) as failed:
                await asyncio.wait_for(nodes[1].propose(1, b"x" * 4096), 10)
            assert failed.value.error.errno == errno.ENOSPC
            assert nodes[1].storage_failures >= 1
            assert not nodes[1].is_leader(1)
            logged = [r.getMessage() for r in caplog.records]
            assert any("event=storage_failed" in m and "group=1" in m and "errno=28" in m for m in logged)

            # Leadership moves to a healthy node, which keeps committing.
            await wait_until(lambda: any(nodes[n].is_leader(1) for n in (2, 3)))
            leader = next(n for n in (2, 3) if nodes[n].is_leader(1))
            for i in range(20):
                await asyncio.wait_for(nodes[leader].propose(1, b"during-%d" % i), 10)

            free(small)
            want = [d for _, d in sms[leader].applied]
            await wait_until(lambda: [d for _, d in sms[1].applied] == want, limit_s=30)
            assert nodes[1].storage_error(1) is None
            assert nodes[1].storage_recoveries >= 1
            indexes = [i for i, _ in sms[1].applied]
            assert indexes == sorted(set(indexes)), "an entry was applied twice after re-opening"
            # The healed node can lead again.
            await make_leader(nodes, 1)
            await asyncio.wait_for(nodes[1].propose(1, b"after"), 10)
        finally:
            for rt in nodes.values():
                await rt.stop()
