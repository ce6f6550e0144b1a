"""Where a partition's directory is, refusing any that would not be strictly inside the data directory.

Topic names are validated when created (Kafka's rule leaves no separators or ".."), but a name can reach
here from older logs, snapshots or ``topics.json``: a directory is derived from a name only through this
function, which resolves the path and refuses anything outside ``<data>/logs``, so a hostile name can never
make the broker write or delete files elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path

LOGS = "logs"


class UnsafePath(ValueError):
    """A partition directory derived from a topic name would leave the data directory."""


def partition_dir(data_dir: Path, topic: str, index: int) -> Path:
    """``<data_dir>/logs/<topic>-<index>``; raises UnsafePath unless that is one entry directly inside
    ``<data_dir>/logs`` once resolved (no separators, no "..", no NUL, no symlink out)."""
    name = f"{topic}-{index}"
    if (
        index < 0
        or "/" in name
        or "\\" in name
        or "\x00" in name
        or (os.altsep is not None and os.altsep in name)
        or name in (".", "..")
    ):
        raise UnsafePath(
            f"topic {topic[:300]!r}: partition directory name {name[:300]!r} is not a plain name"
        )
    base = (data_dir / LOGS).resolve()
    candidate = (base / name).resolve()
    if candidate.parent != base:
        raise UnsafePath(f"topic {topic[:300]!r}: partition directory {candidate} is outside {base}")
    return base / name
