"""The simulator with wiped disks (opt-in ``wipes``): voters lose their disks and restart recovering, a
driver demotes and later promotes them, and every safety invariant is checked after every step."""

from __future__ import annotations

import dataclasses
import random

import pytest
from streamraft_consensus.core.config import Config
from streamraft_consensus.core.node import RawNode
from streamraft_consensus.core.storage import LogStorage
from streamraft_consensus.sim.world import Violation, run_seed

SEEDS = range(400)


def test_wiped_disks_rejoin_safely_across_seeds() -> None:
    failed: dict[int, str] = {}
    wipes = 0
    for seed in SEEDS:
        try:
            wipes += run_seed(seed, wipes=True).wipes
        except Violation as exc:
            failed[seed] = str(exc)
    assert not failed, dict(list(failed.items())[:5])
    assert wipes > len(SEEDS) // 2, f"only {wipes} wipes: the runs barely exercise the rejoin"


def _blank_voter(cfg: Config, storage: LogStorage, rand: random.Random) -> RawNode:
    """A wiped node that does not know it: votes and counts with its blank state at once."""
    return RawNode(dataclasses.replace(cfg, recovering=False), storage, rand)


@pytest.mark.parametrize("seed", [67])
def test_without_the_recovering_state_a_wiped_voter_breaks_leader_completeness(seed: int) -> None:
    with pytest.raises(Violation, match="leader completeness"):
        run_seed(seed, wipes=True, node_factory=_blank_voter)
