"""Producer-state snapshot files: `<offset:020d>.producer-snapshot`, the state as of that log offset
(exclusive), so recovery only replays batch headers from there on.

Format (version 1): JSON body `{"version": 1, "offset": N, "complete": bool, "producers": [[pid, epoch,
last_ts, [[first_seq, last_seq, base_offset, last_offset, max_ts], ...]], ...]}` (`complete` is the state's
flag of that name; a file without it reads as not complete) followed by a newline and the
CRC-32C of the body as 8 hex digits. Written to a temporary file, fsynced, renamed into place and the
directory fsynced, so a crash leaves either the old set of snapshots or the new one; a file failing its CRC
is ignored (recovery then falls back to an older snapshot or the start of the log)."""

from __future__ import annotations

import json
import logging
from collections import deque
from pathlib import Path
from typing import NamedTuple

import crc32c

from streamraft_broker.log.fileio import atomic_write
from streamraft_broker.producer.state import BatchMetadata, ProducerEntry, ProducerStateManager
from streamraft_broker.producer.types import BATCHES_KEPT_PER_PRODUCER

log = logging.getLogger(__name__)

SUFFIX = ".producer-snapshot"
VERSION = 1
SNAPSHOTS_KEPT = 2


class SnapshotError(ValueError):
    pass


class Loaded(NamedTuple):
    offset: int
    entries: list[ProducerEntry]
    complete: bool


def snapshot_path(directory: Path, offset: int) -> Path:
    assert offset >= 0
    return directory / f"{offset:020d}{SUFFIX}"


def list_snapshots(directory: Path) -> list[tuple[int, Path]]:
    """(offset, path) of every snapshot file in `directory`, oldest first."""
    found: list[tuple[int, Path]] = []
    if not directory.is_dir():
        return found
    for path in directory.iterdir():
        stem = path.name.removesuffix(SUFFIX)
        if path.name.endswith(SUFFIX) and stem.isdigit():
            found.append((int(stem), path))
    return sorted(found)


def encode(state: ProducerStateManager) -> bytes:
    producers = [
        [
            e.producer_id,
            e.epoch,
            e.last_timestamp,
            [
                [b.first_sequence, b.last_sequence, b.base_offset, b.last_offset, b.max_timestamp]
                for b in e.batches
            ],
        ]
        for e in sorted(state.entries(), key=lambda e: e.producer_id)
    ]
    body = json.dumps(
        {
            "version": VERSION,
            "offset": state.map_end_offset,
            "complete": state.complete,
            "producers": producers,
        },
        separators=(",", ":"),
    ).encode()
    return body + b"\n" + f"{crc32c.crc32c(body):08x}".encode()


def decode(data: bytes) -> Loaded:
    body, sep, crc_text = data.rpartition(b"\n")
    if not sep or len(crc_text) != 8:
        raise SnapshotError("producer snapshot: missing checksum trailer")
    if f"{crc32c.crc32c(body):08x}".encode() != crc_text:
        raise SnapshotError("producer snapshot: checksum mismatch")
    doc = json.loads(body)
    if doc.get("version") != VERSION:
        raise SnapshotError(f"producer snapshot: unsupported version {doc.get('version')!r}")
    entries: list[ProducerEntry] = []
    for pid, epoch, last_ts, batches in doc["producers"]:
        metas = [BatchMetadata(int(a), int(b), int(c), int(d), int(e)) for a, b, c, d, e in batches]
        entries.append(
            ProducerEntry(int(pid), int(epoch), deque(metas, maxlen=BATCHES_KEPT_PER_PRODUCER), int(last_ts))
        )
    return Loaded(int(doc["offset"]), entries, doc.get("complete") is True)


def take_snapshot(directory: Path, state: ProducerStateManager) -> Path:
    """Persist `state` at its map_end_offset and prune all but the newest SNAPSHOTS_KEPT snapshots."""
    directory.mkdir(parents=True, exist_ok=True)
    path = snapshot_path(directory, state.map_end_offset)
    atomic_write(path, encode(state))
    for _, old in list_snapshots(directory)[:-SNAPSHOTS_KEPT]:
        old.unlink(missing_ok=True)
    return path


def load_latest(directory: Path, max_offset: int) -> Loaded | None:
    """The newest readable snapshot at or below `max_offset` (the log end: a snapshot beyond it describes
    batches the log no longer has, e.g. after truncation, and is deleted)."""
    for offset, path in reversed(list_snapshots(directory)):
        if offset > max_offset:
            log.info("deleting producer snapshot %s: beyond log end offset %d", path, max_offset)
            path.unlink(missing_ok=True)
            continue
        try:
            return decode(path.read_bytes())
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring unreadable producer snapshot %s: %s", path, exc)
    return None
