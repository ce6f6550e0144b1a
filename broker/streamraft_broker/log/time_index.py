"""Sparse time index of one segment: fixed 12-byte entries (int64 max timestamp so far, uint32 offset
relative to the segment base), big-endian like Kafka's .timeindex. Timestamps strictly increase, so every
batch before an entry's offset has a max timestamp <= the entry's timestamp."""

from __future__ import annotations

import bisect
import os
import struct
from pathlib import Path

from .fileio import pread_exact, pwrite_all
from .index_file import IndexFile

ENTRY = struct.Struct(">qI")
ENTRY_SIZE = ENTRY.size


class TimeIndex(IndexFile):
    def __init__(self, path: Path, base_offset: int) -> None:
        super().__init__(path)
        self.base_offset = base_offset
        self._timestamps: list[int] | None = None
        self._relative: list[int] | None = None

    @property
    def entries(self) -> int:
        return self._file_size // ENTRY_SIZE

    def last_entry(self) -> tuple[int, int] | None:
        """(timestamp, absolute offset) of the last entry."""
        if self._timestamps is not None and self._relative is not None:
            if not self._timestamps:
                return None
            return self._timestamps[-1], self.base_offset + self._relative[-1]
        count = self.entries
        if count == 0:
            return None
        ts, rel = ENTRY.unpack(pread_exact(self._fd, ENTRY_SIZE, (count - 1) * ENTRY_SIZE))
        self._after_read()
        return ts, self.base_offset + rel

    def sanity_check(self, next_offset: int | None) -> str | None:
        if self._file_size % ENTRY_SIZE:
            return f"size {self._file_size} is not a multiple of {ENTRY_SIZE}"
        last = self.last_entry()
        if last is not None and next_offset is not None and last[1] >= next_offset:
            return f"last entry offset {last[1]} is not below the segment end {next_offset}"
        return None

    def load(self) -> None:
        if self._timestamps is not None:
            return
        raw = pread_exact(self._fd, self._file_size - self._file_size % ENTRY_SIZE, 0)
        self._after_read()
        timestamps: list[int] = []
        relative: list[int] = []
        for ts, rel in ENTRY.iter_unpack(raw):
            timestamps.append(ts)
            relative.append(rel)
        self._timestamps, self._relative = timestamps, relative

    def maybe_append(self, timestamp: int, offset: int) -> bool:
        """Append (timestamp, offset) if the timestamp exceeds the last entry's; returns whether it did."""
        self.load()
        assert self._timestamps is not None and self._relative is not None
        if self._timestamps and timestamp <= self._timestamps[-1]:
            return False
        rel = offset - self.base_offset
        assert rel >= 0 and (not self._relative or rel >= self._relative[-1]), (offset, self._relative[-1:])
        pwrite_all(self._fd, ENTRY.pack(timestamp, rel), self._file_size)
        self._file_size += ENTRY_SIZE
        self._timestamps.append(timestamp)
        self._relative.append(rel)
        return True

    def lookup(self, timestamp: int) -> int | None:
        """Offset to start scanning from for the first batch with max timestamp >= ``timestamp``: the offset
        of the last entry whose timestamp is below it (None: scan from the segment start)."""
        self.load()
        assert self._timestamps is not None and self._relative is not None
        i = bisect.bisect_left(self._timestamps, timestamp) - 1
        if i < 0:
            return None
        return self.base_offset + self._relative[i]

    def truncate_to_offset(self, offset: int) -> None:
        """Drop entries at or past ``offset``."""
        self.load()
        assert self._timestamps is not None and self._relative is not None
        keep = bisect.bisect_left(self._relative, offset - self.base_offset)
        del self._timestamps[keep:]
        del self._relative[keep:]
        self._file_size = keep * ENTRY_SIZE
        os.ftruncate(self._fd, self._file_size)

    def drop_partial_entry(self) -> None:
        """Cut a torn trailing entry (a crash mid-append); recovery re-derives what follows."""
        partial = self._file_size % ENTRY_SIZE
        if partial:
            self._file_size -= partial
            os.ftruncate(self._fd, self._file_size)

    def reset(self) -> None:
        self._timestamps, self._relative = [], []
        self._file_size = 0
        os.ftruncate(self._fd, 0)
