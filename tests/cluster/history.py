"""History checker for a replicated partition log, from what producers were told and consumers read.

Checks: no acknowledged write lost (each ack's value sits at its acknowledged offset), each offset holds one
value (consumers agree), no value appears twice (idempotent producers), every consumer reads the same
per-partition sequence, and the sampled high watermarks never decrease.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import dataclass, field


@dataclass
class History:
    acked: list[tuple[int, int, bytes]] = field(default_factory=list)
    """(partition, offset, value) of each acknowledged produce."""
    reads: dict[str, dict[int, list[tuple[int, bytes]]]] = field(default_factory=dict)
    """consumer name -> partition -> [(offset, value)] in read order."""
    watermarks: dict[int, list[int]] = field(default_factory=lambda: defaultdict(list))
    """partition -> high watermarks in sampling order."""

    def check(self) -> list[str]:
        problems: list[str] = []
        if not self.reads:
            return ["no consumer read anything"]
        views = list(self.reads.items())
        first_name, first = views[0]
        for name, view in views[1:]:
            for part in set(first) | set(view):
                if first.get(part, []) != view.get(part, []):
                    problems.append(f"partition {part}: {first_name} and {name} read different logs")
        for name, view in views:
            for part, records in view.items():
                offsets = [o for o, _ in records]
                if offsets != sorted(set(offsets)):
                    problems.append(f"{name} partition {part}: offsets not strictly increasing")
                values = [v for _, v in records]
                dups = {v for v in values if values.count(v) > 1}
                if dups:
                    problems.append(f"{name} partition {part}: duplicated values {sorted(dups)[:5]}")
        at = {(part, o): v for part, recs in first.items() for o, v in recs}
        for part, offset, value in self.acked:
            got = at.get((part, offset))
            if got != value:
                problems.append(f"acknowledged {value!r} at {part}@{offset} lost (found {got!r})")
        for part, marks in self.watermarks.items():
            for a, b in itertools.pairwise(marks):
                if b < a:
                    problems.append(f"partition {part}: high watermark went back from {a} to {b}")
                    break
        return problems
