"""The log cleaner's decisions and its per-partition work, for topics whose cleanup.policy includes compact.

Semantics (as Kafka's LogCleaner, re-derived, not copied):

- Only closed segments are cleaned, and only a prefix of them: the cleanable range ends at the active
  segment or at the first segment holding a record younger than ``min.compaction.lag.ms`` (by the segment's
  newest timestamp), whichever comes first.
- The cleaner remembers, per partition, the offset up to which the log was cleaned (``clean_offset``). Bytes
  of cleanable segments past it are dirty; a pass runs once dirty / cleanable bytes exceed
  ``min.cleanable.dirty.ratio``, or once the first dirty segment's oldest record is ``max.compaction.lag.ms``
  old, or once tombstones in a cleaned segment are due for removal.
- A pass keeps, for each key, only its newest record in the cleanable range (records without a key stay),
  rewriting each segment in place with offsets preserved (compaction.py: batches keep their base offset,
  lastOffsetDelta, timestamps and producer fields; CRC recomputed; an idempotent producer's batch that loses
  every record stays as an empty batch). The active segment is never touched, so the log end never moves.
- Transactional batches are left whole and supersede nothing: without knowing which transactions were
  aborted (Kafka's cleaner reads the aborted-transaction index), removing a committed value because a
  later, aborted one exists would lose it.
- Tombstones (null values) stay for ``delete.retention.ms`` after the pass that first cleaned their segment
  (recorded in the checkpoint), then a later pass removes them; every older record of their key was already
  removed by that first pass, since segments are rewritten oldest first.

State lives in ``cleaner-offset.checkpoint`` in the partition directory (JSON, replaced atomically): the clean
offset and, per cleaned segment, when it was first cleaned and whether it still holds tombstones. Losing it
only makes the next pass clean again and keep tombstones longer.

The work is a generator (``clean_steps``) that yields after every ``STEP_BYTES`` of input so the caller (the
broker's event loop) stays responsive; after each yield it checks the segment is still part of the log
(retention or DeleteRecords may have removed it meanwhile) and abandons the pass otherwise.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from streamraft_broker.records.builder import decode_records

from .compaction import CLEANED_SUFFIX, compact_batch
from .config import LONG_MAX, LogConfig
from .fileio import atomic_write, pwrite_all
from .partition import PartitionLog
from .segment import Segment

logger = logging.getLogger(__name__)

CHECKPOINT_FILE = "cleaner-offset.checkpoint"
STEP_BYTES = 1 << 20
"""Input bytes processed between two yields to the caller."""
MAP_ENTRY_OVERHEAD = 120
"""Estimated bytes of one key -> offset entry besides the key (dict slot, bytes and int objects)."""
DEFAULT_MAP_BYTES = 128 << 20


@dataclass(frozen=True, slots=True)
class SegmentInfo:
    """What the planner needs of one segment (the last one given is the active segment)."""

    base_offset: int
    next_offset: int
    size: int
    first_timestamp: int
    """Base timestamp of its first batch; -1 when empty."""
    max_timestamp: int


@dataclass(frozen=True, slots=True)
class CleanedMark:
    first_cleaned_ms: int
    tombstones: bool
    """Whether tombstones survived its last cleaning (they go delete.retention.ms after first_cleaned_ms)."""


@dataclass(slots=True)
class CleanerState:
    clean_offset: int = 0
    marks: dict[int, CleanedMark] = field(default_factory=dict)

    @classmethod
    def load(cls, directory: Path) -> CleanerState:
        path = directory / CHECKPOINT_FILE
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            marks = {
                int(base): CleanedMark(int(at), bool(tomb)) for base, (at, tomb) in raw["segments"].items()
            }
            return cls(int(raw["clean_offset"]), marks)
        except FileNotFoundError:
            return cls()
        except (OSError, ValueError, KeyError, TypeError) as exc:
            # Cleaning again from the start is always safe; only tombstones then live longer.
            logger.warning("event=cleaner_checkpoint_invalid file=%s error=%s", path, exc)
            return cls()

    def save(self, directory: Path) -> None:
        body = {
            "clean_offset": self.clean_offset,
            "segments": {str(b): [m.first_cleaned_ms, m.tombstones] for b, m in sorted(self.marks.items())},
        }
        atomic_write(directory / CHECKPOINT_FILE, json.dumps(body).encode())


@dataclass(frozen=True, slots=True)
class CleanPlan:
    bases: tuple[int, ...]
    """Base offsets of the segments to clean (the whole cleanable range, oldest first)."""
    end_offset: int
    """First offset not cleanable; the clean offset after the pass."""
    dirty_ratio: float
    reason: str
    dirty_from: int = 0
    """Index in ``bases`` of the first dirty segment (len(bases): none is dirty)."""


def cleanable_count(
    infos: Sequence[SegmentInfo], now_ms: int, config: LogConfig, limit: int | None = None
) -> int:
    """How many of the oldest segments may be cleaned: closed ones wholly below ``limit`` (a replicated
    partition's committed and applied end), up to the first holding a record younger than
    min.compaction.lag.ms."""
    count = 0
    for info in infos[:-1]:
        if config.min_compaction_lag_ms > 0 and info.max_timestamp > now_ms - config.min_compaction_lag_ms:
            break
        if limit is not None and info.next_offset > limit:
            break
        count += 1
    return count


def dirty_ratio(cleanable: Sequence[SegmentInfo], clean_offset: int) -> tuple[int, int]:
    """(dirty bytes, total bytes) of the cleanable range: a segment is dirty unless wholly below the
    clean offset."""
    total = sum(s.size for s in cleanable)
    dirty = sum(s.size for s in cleanable if s.next_offset > clean_offset)
    return dirty, total


def tombstones_due(mark: CleanedMark | None, now_ms: int, delete_retention_ms: int) -> bool:
    return mark is not None and mark.tombstones and now_ms - mark.first_cleaned_ms >= delete_retention_ms


def plan_pass(
    infos: Sequence[SegmentInfo],
    state: CleanerState,
    now_ms: int,
    config: LogConfig,
    limit: int | None = None,
) -> tuple[float, CleanPlan | None]:
    """The partition's dirty ratio and what to clean now (None: nothing is due)."""
    cleanable = list(infos[: cleanable_count(infos, now_ms, config, limit)])
    dirty, total = dirty_ratio(cleanable, state.clean_offset)
    ratio = dirty / total if total else 0.0
    if not cleanable:
        return ratio, None
    first_dirty_at = next(
        (i for i, s in enumerate(cleanable) if s.next_offset > state.clean_offset), len(cleanable)
    )
    bases = tuple(s.base_offset for s in cleanable)
    if dirty and ratio > config.min_cleanable_dirty_ratio:  # strictly above, as Kafka
        return ratio, CleanPlan(bases, cleanable[-1].next_offset, ratio, "dirty_ratio", first_dirty_at)
    first_dirty = next((s for s in cleanable if s.next_offset > state.clean_offset and s.size), None)
    if first_dirty is not None:
        oldest = (
            first_dirty.first_timestamp if first_dirty.first_timestamp >= 0 else first_dirty.max_timestamp
        )
        if oldest >= 0 and now_ms - oldest >= config.max_compaction_lag_ms:
            return ratio, CleanPlan(
                bases, cleanable[-1].next_offset, ratio, "max_compaction_lag", first_dirty_at
            )
    if any(
        tombstones_due(state.marks.get(s.base_offset), now_ms, config.delete_retention_ms) for s in cleanable
    ):
        return ratio, CleanPlan(bases, cleanable[-1].next_offset, ratio, "tombstones_due", first_dirty_at)
    return ratio, None


def segment_infos(log: PartitionLog) -> list[SegmentInfo]:
    """SegmentInfo of every segment of ``log`` (the active one last). A closed segment's range ends at the
    next segment's base, whatever compaction removed from its tail."""
    segments = log.all_segments()
    out: list[SegmentInfo] = []
    for i, segment in enumerate(segments):
        first = segment.read_header(0) if segment.size else None
        if i + 1 < len(segments):
            next_offset = segments[i + 1].base_offset
        else:
            next_offset = segment.next_offset if segment.next_offset is not None else segment.base_offset
        out.append(
            SegmentInfo(
                segment.base_offset,
                next_offset,
                segment.size,
                first.base_timestamp if first is not None else -1,
                segment.max_timestamp,
            )
        )
    return out


@dataclass(slots=True)
class PassStats:
    segments_rewritten: int = 0
    bytes_read: int = 0
    bytes_removed: int = 0
    records_removed: int = 0
    tombstones_removed: int = 0
    completed: bool = False


@dataclass(slots=True)
class _KeyScan:
    latest: dict[bytes, int] = field(default_factory=dict)
    tombstones: dict[int, list[tuple[bytes, int]]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SwapRequest:
    """Yielded by clean_steps: the caller swaps ``cleaned`` in for ``segment`` (PartitionLog.replace_cleaned,
    under the Raft group's storage lock when replicated) and sends back the new Segment, or None."""

    segment: Segment
    cleaned: Path


Step = SwapRequest | None


def clean_steps(
    log: PartitionLog,
    plan: CleanPlan,
    state: CleanerState,
    now_ms: int,
    stats: PassStats,
    *,
    keep_every_batch: bool = False,
    max_map_bytes: int = DEFAULT_MAP_BYTES,
) -> Generator[Step, Segment | None, None]:
    """Clean ``plan``'s segments of ``log``, yielding None every STEP_BYTES (the caller lets others run) and a
    SwapRequest per rewritten segment; updates ``state`` and saves it when the pass completes
    (``stats.completed``). Stops early (nothing half-done) if a segment leaves the log. With
    ``keep_every_batch`` (a Raft log: one batch per entry) an emptied batch stays as an empty batch.

    As in Kafka, the key -> latest offset map is built from the dirty segments only, and only until it holds
    about ``max_map_bytes`` (checked between segments; at least one segment is mapped): the pass then cleans
    up to the last mapped segment and the next pass continues from there. Records of the clean segments
    before the dirty ones are removed only when the map holds a newer record of their key (the clean part
    already holds at most one record per key)."""
    config = log.config
    by_base = {s.base_offset: s for s in log.closed_segments()}
    segments = [by_base[b] for b in plan.bases if b in by_base]
    if len(segments) != len(plan.bases):
        return
    scan = _KeyScan()
    budget = STEP_BYTES
    map_bytes = 0
    mapped_end = len(segments)
    for j in range(plan.dirty_from, len(segments)):
        segment = segments[j]
        if j > plan.dirty_from and map_bytes >= max_map_bytes:
            mapped_end = j
            break
        if not log.holds(segment):  # removed while we yielded: its descriptor may be closed by now
            return
        for pos, header in segment.scan(0, verify=False):
            budget -= header.size
            if not (header.is_control or header.is_transactional or header.records_count == 0):
                for record in decode_records(segment.slice(pos, header.size).read()):
                    if record.key is None:
                        continue
                    offset = header.base_offset + record.offset_delta
                    if record.key not in scan.latest:
                        map_bytes += len(record.key) + MAP_ENTRY_OVERHEAD
                    scan.latest[record.key] = offset
                    if record.value is None:
                        scan.tombstones.setdefault(segment.base_offset, []).append((record.key, offset))
            if budget <= 0:
                budget = STEP_BYTES
                yield None
                if not log.holds(segment):
                    return
    end_offset = plan.end_offset if mapped_end == len(segments) else segments[mapped_end].base_offset
    for j, segment in enumerate(segments[:mapped_end]):
        if not log.holds(segment):
            return
        mark = state.marks.get(segment.base_offset)
        drop = tombstones_due(mark, now_ms, config.delete_retention_ms)
        cleaned = segment.path.with_name(segment.path.name + CLEANED_SUFFIX)
        fd = os.open(cleaned, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        out_pos = removed = 0
        try:
            for pos, header in segment.scan(0, verify=False):
                data = segment.slice(pos, header.size).read()
                if drop and not (header.is_transactional or header.is_control or header.records_count == 0):
                    stats.tombstones_removed += _live_tombstones(data, header.base_offset, scan.latest)
                # A horizon above every timestamp removes every tombstone of the batch.
                new, count = (
                    (data, 0)
                    if header.is_transactional
                    else compact_batch(
                        data,
                        header,
                        scan.latest,
                        tombstone_horizon_ms=LONG_MAX if drop else None,
                        keep_empty=keep_every_batch,
                    )
                )
                removed += count
                if new is not None:
                    pwrite_all(fd, new, out_pos)
                    out_pos += len(new)
                budget -= header.size
                if budget <= 0:
                    budget = STEP_BYTES
                    yield None
                    if not log.holds(segment):
                        cleaned.unlink(missing_ok=True)
                        return
            if removed:
                os.fsync(fd)
        finally:
            os.close(fd)
        stats.bytes_read += segment.size
        tombstones = scan.tombstones.get(segment.base_offset, [])
        if j >= plan.dirty_from:
            kept = not drop and any(scan.latest.get(key) == offset for key, offset in tombstones)
        else:  # a clean segment, not scanned: its tombstones stay until due (at worst one extra pass)
            kept = not drop and mark is not None and mark.tombstones
        if removed:
            before = segment.size
            fresh = yield SwapRequest(segment, cleaned)
            if fresh is None:
                cleaned.unlink(missing_ok=True)
                return
            stats.segments_rewritten += 1
            stats.records_removed += removed
            stats.bytes_removed += before - fresh.size
        else:
            cleaned.unlink(missing_ok=True)
        first = mark.first_cleaned_ms if mark is not None else now_ms
        state.marks[segment.base_offset] = CleanedMark(first, kept)
    live = {s.base_offset for s in log.closed_segments()}
    state.marks = {b: m for b, m in state.marks.items() if b in live}
    state.clean_offset = max(state.clean_offset, end_offset)
    state.save(log.directory)
    stats.completed = True


def _live_tombstones(data: bytes, base_offset: int, latest: dict[bytes, int]) -> int:
    """Tombstones of the batch that no newer record supersedes (only expiry removes them)."""
    return sum(
        1
        for r in decode_records(data)
        if r.key is not None and r.value is None and latest.get(r.key, -1) <= base_offset + r.offset_delta
    )


def clean_now(
    log: PartitionLog,
    plan: CleanPlan,
    state: CleanerState,
    now_ms: int,
    *,
    keep_every_batch: bool = False,
    max_map_bytes: int = DEFAULT_MAP_BYTES,
) -> PassStats:
    """Run clean_steps to the end at once, swapping segments directly (an unreplicated log nobody else
    touches meanwhile: tests, tools)."""
    stats = PassStats()
    steps = clean_steps(
        log, plan, state, now_ms, stats, keep_every_batch=keep_every_batch, max_map_bytes=max_map_bytes
    )
    answer: Segment | None = None
    while True:
        try:
            step = steps.send(answer)
        except StopIteration:
            return stats
        answer = log.replace_cleaned(step.segment, step.cleaned) if step is not None else None
