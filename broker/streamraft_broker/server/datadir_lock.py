"""An exclusive lock on the broker's data directory, held for the life of the process.

Two brokers on one data directory corrupt it: in Raft mode the newcomer rebuilds its state from Raft log
files the other is still appending to, then writes entries at indexes the other already used. This happens
for real when a StatefulSet pod is force-deleted: the replacement pod can start before the old processes
are gone, on the same volume. ``flock`` is released by the kernel when the holder dies (SIGKILL included),
so the replacement waits for that rather than failing for good.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

LOCK_FILE = ".lock"


class DataDirLocked(OSError):
    """Another live process holds the data directory (an OSError: start-up failures print one line)."""


async def acquire(data_dir: Path, wait_s: float) -> int:
    """Locks ``data_dir`` (which must exist); returns the descriptor to keep open while running.

    Waits up to ``wait_s`` for a holder that is going away, logging once who holds it."""
    path = data_dir / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    warned = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            holder = _holder(path)
            if loop.time() >= deadline:
                os.close(fd)
                raise DataDirLocked(
                    f"data directory {data_dir} is locked by another broker process ({holder}); "
                    f"gave up after {wait_s:g} s"
                ) from None
            if not warned:
                log.warning(
                    "data directory locked by another process, waiting for it to exit",
                    extra={"data_dir": str(data_dir), "holder": holder, "wait_s": wait_s},
                )
                warned = True
            await asyncio.sleep(0.1)  # flock has no async wait; the holder's exit is what we wait for
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()}\n".encode(), 0)
    return fd


def release(fd: int) -> None:
    with contextlib.suppress(OSError):
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _holder(path: Path) -> str:
    try:
        return path.read_text().strip() or "pid unknown"
    except OSError:
        return "pid unknown"
