"""Seeded fault schedules: schedule ``index`` of seed ``seed`` depends on nothing else (not on earlier
schedules, not on timing), so one failing schedule can be rerun alone from its two numbers."""

from __future__ import annotations

import random

from tests.cluster.faults.kinds import REGISTRY, Step

MAX_STEPS = 3


def default_kinds() -> list[str]:
    return [name for name, kind in REGISTRY.items() if kind.enabled]


def generate(
    seed: int, index: int, kinds: list[str], brokers: list[int], max_steps: int = MAX_STEPS
) -> list[Step]:
    unknown = [k for k in kinds if k not in REGISTRY]
    if unknown:
        raise ValueError(f"unknown fault kinds {unknown}; known: {sorted(REGISTRY)}")
    if not 1 <= max_steps <= 20:
        raise ValueError(f"max steps {max_steps} is outside 1..20")
    rng = random.Random(f"streamraft-faults/{seed}/{index}")
    weights = [REGISTRY[k].weight for k in kinds]
    steps = []
    for _ in range(rng.randint(1, max_steps)):
        kind = rng.choices(kinds, weights)[0]
        target, hold, arg = REGISTRY[kind].draw(rng, sorted(brokers))
        steps.append(Step(kind, target, hold, arg))
    return steps
