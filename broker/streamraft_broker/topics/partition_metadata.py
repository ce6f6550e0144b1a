"""``partition.metadata``: which topic incarnation a partition directory belongs to (Kafka keeps the same
file). Directories are named ``<topic>-<partition>``, so a topic deleted and created again under the same
name reuses the path; the id tells a broker replaying that history whose data a directory holds, so the
replayed deletion of the first life never removes the second life's log."""

from __future__ import annotations

import uuid
from pathlib import Path

from streamraft_broker.log.fileio import atomic_write

FILE = "partition.metadata"


def write_topic_id(directory: Path, topic_id: uuid.UUID) -> None:
    atomic_write(directory / FILE, f"version: 0\ntopic_id: {topic_id}\n".encode())


def read_topic_id(directory: Path) -> uuid.UUID | None:
    """The id stamped in ``directory``; None when it has none (absent, or written before stamps existed)
    or it cannot be read (then nothing may be concluded from it either)."""
    try:
        text = (directory / FILE).read_text()
    except (FileNotFoundError, NotADirectoryError):
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "topic_id":
            try:
                return uuid.UUID(value.strip())
            except ValueError:
                return None
    return None


def holds_other_topic(directory: Path, topic_id: uuid.UUID) -> bool:
    """True when ``directory`` is stamped with a different topic incarnation than ``topic_id``."""
    stamped = read_topic_id(directory)
    return stamped is not None and stamped != topic_id
