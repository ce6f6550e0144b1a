"""Opening a partition directory after a clean shutdown or a crash.

Segments entirely before the recovery checkpoint were fsynced with their indexes: they are trusted, with only
a cheap sanity check of each index (a failing index is rebuilt from the batch headers). The checkpoint's own
segment is trusted up to the checkpointed byte position; from there on, and in every later segment, each
batch is CRC-checked. The first torn or corrupt batch is truncated away (with a structured log line naming
file and byte position), later segments are deleted, and the affected segment's indexes are rebuilt from the
trusted position.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from .checkpoint import RecoveryPoint, read_log_start, read_recovery_point
from .segment import INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX, Segment, TornBatchError

logger = logging.getLogger(__name__)

# Leftovers of interrupted operations that are always safe to drop on open. A future compactor writes
# "<base>.log.cleaned" and renames it to "<base>.log.swap" before replacing the segment; until it exists,
# both are simply discarded (the original segment is only deleted after the swap completes).
_STRAY_SUFFIXES = (".tmp", ".cleaned", ".swap", ".deleted")


@dataclass(slots=True)
class RecoveredLog:
    segments: list[Segment]
    log_start_offset: int
    scanned_bytes: int
    truncations: int
    # What the checkpoint files said (None: missing), so open() rewrites them only when they changed.
    checkpointed_log_start: int | None = None
    checkpointed_point: RecoveryPoint | None = None
    # Offset from which batches were scanned rather than trusted (epochs there must be re-read).
    tail_offset: int = 0


def _parse_base(name: str, suffix: str) -> int | None:
    stem = name[: -len(suffix)]
    if len(stem) != 20 or not stem.isdigit():
        return None
    return int(stem)


def list_segment_bases(directory: Path) -> list[int]:
    """Base offsets of the .log files, after deleting stray temporaries and orphaned index files."""
    bases: list[int] = []
    index_bases: set[int] = set()
    for entry in os.scandir(directory):
        name = entry.name
        if name.endswith(_STRAY_SUFFIXES):
            logger.warning("event=stray_file_deleted file=%s", entry.path)
            os.unlink(entry.path)
        elif name.endswith(LOG_SUFFIX):
            base = _parse_base(name, LOG_SUFFIX)
            if base is not None:
                bases.append(base)
        else:
            for suffix in (INDEX_SUFFIX, TIME_INDEX_SUFFIX):
                if name.endswith(suffix):
                    base = _parse_base(name, suffix)
                    if base is not None:
                        index_bases.add(base)
    for orphan in index_bases.difference(bases):
        for suffix in (INDEX_SUFFIX, TIME_INDEX_SUFFIX):
            (directory / f"{orphan:020d}{suffix}").unlink(missing_ok=True)
    return sorted(bases)


def _trust_whole(segment: Segment) -> None:
    """A fully checkpointed segment: sanity-check its indexes (rebuild on failure) and load its tail state."""
    problem = segment.offset_index.sanity_check(segment.size)
    if problem is None:
        last = segment.offset_index.last_entry()
        try:
            segment.load_tail_state(last[1] if last else 0)
            problem = segment.time_index.sanity_check(segment.next_offset)
        except TornBatchError as exc:
            problem = f"index entry does not lead to whole batches: {exc}"
        # With no entries, every batch but the last must have started within index.interval.bytes of the
        # segment start; otherwise entries were written and the index file was lost or cut.
        walked_before_last = segment.bytes_since_index - segment.last_batch_size
        if (
            problem is None
            and last is None
            and segment.size
            and walked_before_last >= segment.index_interval_bytes
        ):
            problem = "no entries although batches span more than index.interval.bytes (index file lost?)"
    if problem is not None:
        logger.warning("event=index_corrupt file=%s problem=%s", segment.offset_index.path, problem)
        segment.rebuild_indexes()
        segment.flush()


def recover(directory: Path, *, now_ms: int, index_interval_bytes: int) -> RecoveredLog:
    directory.mkdir(parents=True, exist_ok=True)
    bases = list_segment_bases(directory)
    log_start = read_log_start(directory)
    point = read_recovery_point(directory)
    found_point = point
    if point is None:
        point = RecoveryPoint(bases[0] if bases else 0, bases[0] if bases else 0, 0)
    if not bases:
        start = log_start or 0
        segment = Segment(directory, start, created_ms=now_ms, index_interval_bytes=index_interval_bytes)
        return RecoveredLog([segment], start, 0, 0, log_start, found_point, start)
    # Segments wholly below the log start were being deleted when the process stopped.
    if log_start is not None:
        while len(bases) > 1 and bases[1] <= log_start:
            for suffix in (LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX):
                (directory / f"{bases[0]:020d}{suffix}").unlink(missing_ok=True)
            bases.pop(0)
    segments: list[Segment] = []
    scanned = 0
    truncations = 0
    expected_next: int | None = None
    for i, base in enumerate(bases):
        segment = Segment(directory, base, created_ms=now_ms, index_interval_bytes=index_interval_bytes)
        segments.append(segment)
        error: TornBatchError | None = None
        if expected_next is not None and base < expected_next:
            error = TornBatchError(
                0, f"segment base {base} overlaps the previous segment ending at {expected_next}"
            )
        elif base < point.segment_base and i < len(bases) - 1:
            _trust_whole(segment)
        else:
            trusted = min(point.position, segment.size) if base == point.segment_base else 0
            expect = point.offset if base == point.segment_base and trusted > 0 else base
            n, error = segment.recover(trusted, expect)
            scanned += n
            if i < len(bases) - 1 and error is None:
                # The checkpoint written after open declares every segment before the active one durable.
                segment.flush()
        if error is not None:
            truncations += 1
            logger.warning(
                "event=recovery_truncate file=%s position=%d reason=%s later_segments_deleted=%d",
                segment.path,
                error.position,
                error.reason,
                len(bases) - i - 1,
            )
            if error.position == 0 and i > 0:
                # Nothing valid left in it, and its base may not continue the previous segment.
                segment.delete_files()
                segment.close_reader()
                segments.pop()
            for later in bases[i + 1 :]:
                for suffix in (LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX):
                    (directory / f"{later:020d}{suffix}").unlink(missing_ok=True)
            break
        expected_next = segment.next_offset
    for segment in segments[:-1]:
        segment.release_indexes()
    first_base = segments[0].base_offset
    start = max(log_start if log_start is not None else first_base, first_base)
    tail = point.offset if found_point is not None else first_base
    return RecoveredLog(segments, start, scanned, truncations, log_start, found_point, tail)
