"""Descriptor handling shared by the two index files.

The active segment keeps its index descriptors open; closed segments release them (their entries stay in
memory once loaded), so an idle partition holds one descriptor per segment (the .log) instead of three.
"""

from __future__ import annotations

import os
from pathlib import Path


class IndexFile:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd_value = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        self._file_size = os.fstat(self._fd_value).st_size
        self._passive = False
        self._closed = False

    @property
    def _fd(self) -> int:
        if self._fd_value < 0:
            if self._closed:
                raise ValueError(f"{self.path} is closed")
            self._fd_value = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        return self._fd_value

    def _close_fd(self) -> None:
        if self._fd_value >= 0:
            os.close(self._fd_value)
            self._fd_value = -1

    def release(self) -> None:
        """Close the descriptor until the next operation that needs it (and again after loads)."""
        self._passive = True
        self._close_fd()

    def activate(self) -> None:
        """Keep the descriptor open again (the segment became the active one)."""
        self._passive = False

    def _after_read(self) -> None:
        if self._passive:
            self._close_fd()

    def flush(self) -> None:
        if self._fd_value >= 0:
            os.fsync(self._fd_value)

    def close(self) -> None:
        self._closed = True
        self._close_fd()
