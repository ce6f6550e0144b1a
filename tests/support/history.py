"""History checker for a replicated partition log, from what producers were told and consumers read.

Checks:
- no acknowledged write lost: every consumer that read up to an acknowledged offset read that ack's value
  there, and some consumer read it at all;
- each (partition, offset) holds one value across all acks and all reads;
- no value appears twice in a partition (idempotent producers) and offsets strictly increase per consumer;
- every consumer reads the same per-partition sequence (one is a prefix of the other: readers stop at
  different points);
- sampled high watermarks and sampled committed group offsets never decrease (committed offsets per
  ``series``: a run whose offsets are not replicated starts a new series when the coordinator may change);
- every topic a CreateTopics reported created is seen by each observing broker with one and the same id;
- anything the driver saw go wrong while running (``violations``: liveness, bad exit codes) is reported.

Linear in the size of the history, so it can run after every schedule of a long fault run.
"""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from dataclasses import dataclass, field

MAX_PER_KIND = 5
"""Problems reported per kind; the rest are counted in one summary line."""


@dataclass
class History:
    acked: list[tuple[int, int, bytes]] = field(default_factory=list)
    """(partition, offset, value) of each acknowledged produce."""
    acked_unplaced: list[tuple[int, bytes]] = field(default_factory=list)
    """(partition, value) of records the client acknowledged without an offset (an idempotent producer's
    implicit acknowledgement): they must be read back, at whatever offset."""
    reads: dict[str, dict[int, list[tuple[int, bytes]]]] = field(default_factory=dict)
    """consumer name -> partition -> [(offset, value)] in read order."""
    watermarks: dict[int, list[int]] = field(default_factory=lambda: defaultdict(list))
    """partition -> high watermarks in sampling order."""
    committed: dict[tuple[int, int], list[int]] = field(default_factory=lambda: defaultdict(list))
    """(series, partition) -> committed group offsets in sampling order."""
    created: set[str] = field(default_factory=set)
    """Topics some CreateTopics reported created (or already existing after our own earlier attempt)."""
    topic_ids: dict[str, dict[str, str]] = field(default_factory=dict)
    """topic -> observer (e.g. broker) -> topic id it reported ("" when it did not list the topic)."""
    violations: list[str] = field(default_factory=list)
    """Problems the driver observed directly (liveness, exit codes)."""

    def check(self) -> list[str]:
        if not self.reads:
            return ["no consumer read anything", *self.violations]
        found: dict[str, list[str]] = defaultdict(list)
        self._check_reads(found)
        self._check_acks(found)
        for part, marks in sorted(self.watermarks.items()):
            for a, b in itertools.pairwise(marks):
                if b < a:
                    found["watermark"].append(f"partition {part}: high watermark went back from {a} to {b}")
                    break
        for (series, part), offsets in sorted(self.committed.items()):
            for a, b in itertools.pairwise(offsets):
                if b < a:
                    found["committed"].append(
                        f"partition {part}: committed group offset went back from {a} to {b} "
                        f"(series {series})"
                    )
                    break
        for topic in sorted(self.created):
            seen = self.topic_ids.get(topic, {})
            missing = sorted(o for o, tid in seen.items() if not tid)
            ids = {tid for tid in seen.values() if tid}
            if not seen or missing:
                found["topic"].append(f"created topic {topic!r} missing on {missing or 'every observer'}")
            if len(ids) > 1:
                found["topic"].append(f"created topic {topic!r} has several ids {sorted(ids)}")
        problems: list[str] = []
        for kind in sorted(found):
            items = found[kind]
            problems += items[:MAX_PER_KIND]
            if len(items) > MAX_PER_KIND:
                problems.append(f"... and {len(items) - MAX_PER_KIND} more {kind} problems")
        return problems + self.violations

    def _check_reads(self, found: dict[str, list[str]]) -> None:
        parts = sorted({p for view in self.reads.values() for p in view})
        for name, view in self.reads.items():
            for part, records in view.items():
                offsets = [o for o, _ in records]
                if any(b <= a for a, b in itertools.pairwise(offsets)):
                    found["order"].append(f"{name} partition {part}: offsets not strictly increasing")
                dups = sorted(v for v, n in Counter(v for _, v in records).items() if n > 1)
                if dups:
                    found["duplicate"].append(f"{name} partition {part}: duplicated values {dups[:5]}")
        names = sorted(self.reads)
        for part in parts:
            for a, b in itertools.combinations(names, 2):
                ra, rb = self.reads[a].get(part, []), self.reads[b].get(part, [])
                common = min(len(ra), len(rb))
                if ra[:common] != rb[:common]:
                    at = next(i for i in range(common) if ra[i] != rb[i])
                    found["diverge"].append(
                        f"partition {part}: {a} and {b} read different logs from their record #{at}: "
                        f"{ra[at]!r} vs {rb[at]!r}"
                    )

    def _check_acks(self, found: dict[str, list[str]]) -> None:
        at: dict[tuple[int, int], bytes] = {}
        for name in sorted(self.reads):
            for part, records in self.reads[name].items():
                for offset, value in records:
                    if at.setdefault((part, offset), value) != value:
                        found["offset"].append(
                            f"{part}@{offset} holds {at[(part, offset)]!r} and {value!r} ({name})"
                        )
        ends = {
            name: {p: (recs[-1][0] if recs else -1) for p, recs in view.items()}
            for name, view in self.reads.items()
        }
        held = {name: {p: set(recs) for p, recs in view.items()} for name, view in self.reads.items()}
        read_values: dict[int, set[bytes]] = defaultdict(set)
        for view in self.reads.values():
            for part, records in view.items():
                read_values[part].update(value for _, value in records)
        for part, value in self.acked_unplaced:
            if value not in read_values[part]:
                found["lost"].append(
                    f"acknowledged {value!r} (no offset given) in partition {part} never read"
                )
        acked_at: dict[tuple[int, int], bytes] = {}
        for part, offset, value in self.acked:
            if acked_at.setdefault((part, offset), value) != value:
                found["offset"].append(
                    f"two acks at {part}@{offset}: {acked_at[(part, offset)]!r} and {value!r}"
                )
            got = at.get((part, offset))
            if got is None and not any(e.get(part, -1) >= offset for e in ends.values()):
                furthest = max(e.get(part, -1) for e in ends.values())
                found["lost"].append(
                    f"acknowledged {value!r} at {part}@{offset} lost: no reader got past offset {furthest}"
                )
                continue
            if got != value:
                found["lost"].append(f"acknowledged {value!r} at {part}@{offset} lost (found {got!r})")
                continue
            for name in self.reads:
                if ends[name].get(part, -1) >= offset and (offset, value) not in held[name].get(part, ()):
                    found["lost"].append(f"acknowledged {value!r} at {part}@{offset} missing from {name}")
