"""A small real filesystem (tmpfs) that tests fill up to make writes fail with ENOSPC, then free again.

Mounting needs root (CAP_SYS_ADMIN); tests using it skip with the reason otherwise.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

_FILLER = "filler"


@contextlib.contextmanager
def small_tmpfs(directory: Path, size_mb: int = 16) -> Iterator[Path]:
    """Mount a ``size_mb`` tmpfs at ``directory`` for the duration of the block (unmounted after)."""
    directory.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(directory)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs (needs root): {done.stderr.strip()}")
    try:
        yield directory
    finally:
        subprocess.run(["umount", "-l", str(directory)], capture_output=True, check=False)


def fill(directory: Path, leave_bytes: int = 0) -> int:
    """Write a filler file in ``directory`` until the filesystem is full (then give back
    ``leave_bytes``); returns the filler's size."""
    path = directory / _FILLER
    chunk = b"\0" * (1 << 16)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        while True:
            try:
                os.write(fd, chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                break
        # Single bytes too, so not even a small record fits.
        while True:
            try:
                os.write(fd, b"\0")
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                break
        size = os.fstat(fd).st_size
        if leave_bytes:
            os.ftruncate(fd, max(0, size - leave_bytes))
            size = os.fstat(fd).st_size
    finally:
        os.close(fd)
    return size


def free(directory: Path) -> None:
    """Remove the filler: the space is back."""
    (directory / _FILLER).unlink(missing_ok=True)
