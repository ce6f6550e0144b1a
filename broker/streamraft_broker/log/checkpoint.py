"""Per-partition checkpoint files: the log start offset and the recovery point.

Both are small text files replaced atomically. The recovery point records an offset together with the
segment and byte position where it lies; everything before it was fsynced (log and index files), so recovery
only rescans from there.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from .fileio import atomic_write

LOG_START_FILE = "log-start-offset.checkpoint"
RECOVERY_POINT_FILE = "recovery-point.checkpoint"
_VERSION = "0"

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RecoveryPoint:
    offset: int
    segment_base: int
    position: int


def _read_lines(path: Path) -> list[str] | None:
    try:
        text = path.read_text(encoding="ascii")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        logger.warning("event=checkpoint_unreadable file=%s error=%s", path, exc)
        return None
    lines = text.split("\n")
    if len(lines) < 2 or lines[0] != _VERSION:
        logger.warning("event=checkpoint_invalid file=%s content=%r", path, text[:80])
        return None
    return lines


def read_log_start(directory: Path) -> int | None:
    lines = _read_lines(directory / LOG_START_FILE)
    if lines is None:
        return None
    try:
        value = int(lines[1])
    except ValueError:
        logger.warning("event=checkpoint_invalid file=%s", directory / LOG_START_FILE)
        return None
    return value if value >= 0 else None


def write_log_start(directory: Path, offset: int) -> None:
    assert offset >= 0, offset
    atomic_write(directory / LOG_START_FILE, f"{_VERSION}\n{offset}\n".encode("ascii"))


def read_recovery_point(directory: Path) -> RecoveryPoint | None:
    lines = _read_lines(directory / RECOVERY_POINT_FILE)
    if lines is None:
        return None
    try:
        offset, base, position = (int(x) for x in lines[1].split())
    except ValueError:
        logger.warning("event=checkpoint_invalid file=%s", directory / RECOVERY_POINT_FILE)
        return None
    if min(offset, base, position) < 0 or offset < base:
        logger.warning("event=checkpoint_invalid file=%s", directory / RECOVERY_POINT_FILE)
        return None
    return RecoveryPoint(offset, base, position)


def write_recovery_point(directory: Path, point: RecoveryPoint) -> None:
    data = f"{_VERSION}\n{point.offset} {point.segment_base} {point.position}\n"
    atomic_write(directory / RECOVERY_POINT_FILE, data.encode("ascii"))
