"""The simulator's disk model behaves like a disk: unsynced writes may vanish, a torn tail is truncated."""

from __future__ import annotations

import random

from streamraft_consensus.core.memory_storage import MemoryStorage
from streamraft_consensus.core.types import ConfState, Entry, HardState
from streamraft_consensus.sim.disk import Disk


def _disk() -> Disk:
    return Disk(MemoryStorage.bootstrap(ConfState(voters=(1, 2, 3))))


def test_unsynced_writes_are_visible_live_but_lost_on_crash() -> None:
    lost_any = False
    for seed in range(20):
        d = _disk()
        d.write_entries((Entry(2, 2), Entry(2, 3)))
        d.write_hard_state(HardState(2, 1, 3))
        d.fsync()
        d.write_entries((Entry(2, 4),))
        d.write_hard_state(HardState(2, 1, 4))
        assert d.live.last_index() == 4
        d.crash(random.Random(seed))
        # Synced state always survives; the unsynced suffix survives only as a prefix of the writes.
        assert d.live.last_index() in (3, 4)
        hs = d.live.initial_state()[0]
        assert hs.commit in (3, 4)
        assert not (hs.commit == 4 and d.live.last_index() == 3), "hard state outlived the entries before it"
        lost_any |= d.live.last_index() == 3
    assert lost_any


def test_corrupted_unsynced_tail_is_detected_and_truncated() -> None:
    d = _disk()
    d.write_entries((Entry(2, 2),))
    d.fsync()
    d.write_entries((Entry(2, 3),))
    assert d.corrupt_unsynced_tail_and_crash(random.Random(0))
    assert d.torn_detected == 1
    assert d.live.last_index() == 2 and d.durable.last_index() == 2
    assert not d.corrupt_unsynced_tail_and_crash(random.Random(0))  # nothing unsynced left to corrupt


def test_local_snapshot_compacts_both_images() -> None:
    d = _disk()
    d.write_entries(tuple(Entry(2, i) for i in range(2, 12)))
    d.fsync()
    snap = d.live.create_snapshot(8, None, b"8:0")
    d2 = _disk()
    d2.write_entries(tuple(Entry(2, i) for i in range(2, 12)))
    d2.create_snapshot(snap, compact_to=6)
    assert d2.live.first_index() == d2.durable.first_index() == 7
    assert d2.durable.snapshot().meta.index == 8
