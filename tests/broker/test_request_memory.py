"""The broker-wide request budget (queued.max.request.bytes): first come first served, whole frames taken
without waiting, and a waiter that gives up (timeout, closed connection) neither leaks nor blocks others."""

from __future__ import annotations

import asyncio

import pytest
from streamraft_broker.server.limits import RequestMemory


async def test_waiters_are_granted_in_arrival_order() -> None:
    memory = RequestMemory(100)
    assert memory.try_reserve(80)
    order: list[str] = []

    async def want(name: str, size: int) -> None:
        await memory.reserve(size)
        order.append(name)

    big = asyncio.create_task(want("big", 90))
    await asyncio.sleep(0)
    small = asyncio.create_task(want("small", 10))
    await asyncio.sleep(0)
    assert not memory.try_reserve(10), "a newcomer must queue behind the waiters, not overtake them"
    assert order == [] and memory.waiting == 2
    memory.release(80)
    await asyncio.gather(big, small)
    assert order == ["big", "small"]
    assert memory.used == 100


async def test_a_frame_already_read_whole_is_taken_without_waiting() -> None:
    memory = RequestMemory(10)
    assert memory.try_reserve(10)
    memory.take(5)
    assert memory.used == 15
    memory.release(5)
    memory.release(10)
    assert memory.used == 0


async def test_a_waiter_that_gives_up_leaks_nothing_and_lets_the_next_in() -> None:
    memory = RequestMemory(100)
    assert memory.try_reserve(100)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await memory.reserve(60)
    follower = asyncio.create_task(memory.reserve(30))
    await asyncio.sleep(0)
    memory.release(60)  # 40 in use: the follower fits, the timed-out waiter takes nothing
    await asyncio.wait_for(follower, 1)
    assert memory.used == 70 and memory.waiting == 0


async def test_unbounded_budget_never_waits() -> None:
    memory = RequestMemory(-1)
    for _ in range(10):
        await memory.reserve(1 << 30)
    assert memory.used == 10 << 30
