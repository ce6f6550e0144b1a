"""Log compaction (cleanup.policy=compact): keep only the latest record of each key in closed segments.

Offsets never change: a batch that loses some records is re-encoded with its original base offset,
lastOffsetDelta, timestamps and producer fields, its surviving records keeping their offset deltas; a batch
that loses all of them disappears, except for an idempotent producer's batch, which stays as an empty batch
so producer state can still be rebuilt from the headers. Reads already tolerate the resulting offset gaps.

Swap protocol per segment: write "<base>.log.cleaned" and fsync it, rename it to ".swap", delete the old index
files, rename ".swap" over ".log", fsync the directory, rebuild the indexes. Recovery deletes any .cleaned or
.swap it finds (the original .log is intact until the final atomic rename) and rebuilds missing indexes.

Tombstones are removed once older than delete.retention.ms (by their batch's max timestamp). Not yet done:
aborted-transaction cleanup, merging small segments, and keys whose newest record is still in the active
segment (they are compacted after it rolls).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from streamraft_broker.records.batch import BatchHeader
from streamraft_broker.records.builder import build_batch, build_empty_batch, decode_records

from .fileio import fsync_dir, pwrite_all
from .segment import Segment

logger = logging.getLogger(__name__)

CLEANED_SUFFIX = ".cleaned"
SWAP_SUFFIX = ".swap"


@dataclass(frozen=True, slots=True)
class CompactionStats:
    segments_rewritten: int = 0
    bytes_before: int = 0
    bytes_after: int = 0
    records_removed: int = 0


def latest_offsets(segments: list[Segment]) -> dict[bytes, int]:
    """Key -> offset of its newest record across ``segments``."""
    latest: dict[bytes, int] = {}
    for segment in segments:
        for pos, header in segment.scan(0, verify=False):
            if header.is_control or header.records_count == 0:
                continue
            for record in decode_records(segment.slice(pos, header.size).read()):
                if record.key is not None:
                    latest[record.key] = header.base_offset + record.offset_delta
    return latest


def compact_batch(
    data: bytes,
    header: BatchHeader,
    latest: dict[bytes, int],
    *,
    tombstone_horizon_ms: int | None = None,
    keep_empty: bool = False,
) -> tuple[bytes | None, int]:
    """The batch with superseded records removed (None: drop it) and how many records went. Tombstones
    (null values) also go once the batch's max timestamp is below ``tombstone_horizon_ms``: every older
    record of their key is gone by then, since a tombstone that is the latest for its key supersedes them.
    With ``keep_empty`` a batch that loses every record stays as an empty batch (a Raft log keeps one batch
    per entry)."""
    if header.is_control or header.records_count == 0:
        return data, 0
    records = decode_records(data)
    expired = tombstone_horizon_ms is not None and header.max_timestamp < tombstone_horizon_ms
    kept = [
        r
        for r in records
        if r.key is None
        or (
            latest.get(r.key, -1) <= header.base_offset + r.offset_delta and not (expired and r.value is None)
        )
    ]
    removed = len(records) - len(kept)
    if removed == 0:
        return data, 0
    if not kept:
        return (build_empty_batch(header) if keep_empty or header.producer_id >= 0 else None), removed
    rebuilt = build_batch(
        kept,
        base_offset=header.base_offset,
        producer_id=header.producer_id,
        producer_epoch=header.producer_epoch,
        base_sequence=header.base_sequence,
        is_transactional=header.is_transactional,
        timestamp_ms=header.base_timestamp,
        compression=header.compression,
        partition_leader_epoch=header.partition_leader_epoch,
        timestamp_type=header.timestamp_type,
        last_offset_delta=header.last_offset_delta,
        max_timestamp=header.max_timestamp,
    )
    return rebuilt, removed


def write_cleaned(
    segment: Segment, latest: dict[bytes, int], *, tombstone_horizon_ms: int | None = None
) -> tuple[Path, int, int] | None:
    """Write the compacted copy of ``segment`` to its .cleaned file (fsynced); returns (path, records
    removed, new size), or None when nothing would change."""
    cleaned = segment.path.with_name(segment.path.name + CLEANED_SUFFIX)
    fd = os.open(cleaned, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    out_pos = 0
    removed = 0
    try:
        for pos, header in segment.scan(0, verify=False):
            data = segment.slice(pos, header.size).read()
            new, count = compact_batch(data, header, latest, tombstone_horizon_ms=tombstone_horizon_ms)
            removed += count
            if new is not None:
                pwrite_all(fd, new, out_pos)
                out_pos += len(new)
        if removed:
            os.fsync(fd)
    finally:
        os.close(fd)
    if not removed:
        cleaned.unlink()
        return None
    return cleaned, removed, out_pos


def swap_in(segment: Segment, cleaned: Path, *, index_interval_bytes: int) -> Segment:
    """Replace ``segment``'s files by the cleaned copy; returns the reopened segment. The old Segment's
    reader stays open for FileSlices already handed out (the caller retires it)."""
    directory = segment.directory
    swap = segment.path.with_name(segment.path.name + SWAP_SUFFIX)
    os.rename(cleaned, swap)
    segment.close()
    segment.offset_index.path.unlink(missing_ok=True)
    segment.time_index.path.unlink(missing_ok=True)
    fsync_dir(directory)
    os.rename(swap, segment.path)
    fsync_dir(directory)
    fresh = Segment(
        directory,
        segment.base_offset,
        created_ms=segment.created_ms,
        index_interval_bytes=index_interval_bytes,
    )
    fresh.rebuild_indexes(expected=True)
    fresh.roll_close()
    logger.info(
        "event=segment_compacted file=%s size_before=%d size_after=%d", fresh.path, segment.size, fresh.size
    )
    return fresh
