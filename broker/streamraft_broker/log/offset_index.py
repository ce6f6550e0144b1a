"""Sparse offset index of one segment: fixed 8-byte entries (uint32 offset relative to the segment base,
uint32 byte position in the .log file), big-endian like Kafka's .index files, appended in offset order.

The file is append-only (no preallocation); the entries are held in memory as two arrays once loaded.
"""

from __future__ import annotations

import bisect
import os
import struct
import sys
from array import array
from pathlib import Path

from .fileio import pread_exact, pwrite_all
from .index_file import IndexFile

ENTRY = struct.Struct(">II")
ENTRY_SIZE = ENTRY.size


class CorruptIndexError(Exception):
    pass


def _decode(raw: bytes, fields: int) -> list[array[int]]:
    values = array("I")
    values.frombytes(raw)
    if sys.byteorder == "little":
        values.byteswap()
    return [values[i::fields] for i in range(fields)]


class OffsetIndex(IndexFile):
    def __init__(self, path: Path, base_offset: int) -> None:
        super().__init__(path)
        self.base_offset = base_offset
        self._relative: array[int] | None = None
        self._positions: array[int] | None = None

    @property
    def entries(self) -> int:
        return self._file_size // ENTRY_SIZE

    @property
    def loaded(self) -> bool:
        return self._relative is not None

    def last_entry(self) -> tuple[int, int] | None:
        """(absolute offset, position) of the last entry, read from the file without loading the rest."""
        count = self.entries
        if count == 0:
            return None
        if self._relative is not None and self._positions is not None:
            return self.base_offset + self._relative[-1], self._positions[-1]
        rel, pos = ENTRY.unpack(pread_exact(self._fd, ENTRY_SIZE, (count - 1) * ENTRY_SIZE))
        self._after_read()
        return self.base_offset + rel, pos

    def sanity_check(self, log_size: int) -> str | None:
        """Cheap check of a trusted index: whole entries, and the last entry inside the log and increasing."""
        if self._file_size % ENTRY_SIZE:
            return f"size {self._file_size} is not a multiple of {ENTRY_SIZE}"
        count = self.entries
        if count == 0:
            return None
        start = max(count - 2, 0) * ENTRY_SIZE
        raw = pread_exact(self._fd, self._file_size - start, start)
        self._after_read()
        entries = list(ENTRY.iter_unpack(raw))
        if entries[-1][1] >= log_size:
            return f"last entry position {entries[-1][1]} is beyond the log size {log_size}"
        if len(entries) == 2 and (entries[1][0] <= entries[0][0] or entries[1][1] <= entries[0][1]):
            return f"last entries {entries} are not increasing"
        return None

    def load(self) -> None:
        if self._relative is not None:
            return
        raw = pread_exact(self._fd, self._file_size, 0)
        self._after_read()
        if len(raw) % ENTRY_SIZE:
            raise CorruptIndexError(f"{self.path}: size {len(raw)} is not a multiple of {ENTRY_SIZE}")
        self._relative, self._positions = _decode(raw, 2)

    def append(self, entries: list[tuple[int, int]]) -> None:
        """Append (absolute offset, position) entries, which must continue the existing order."""
        if not entries:
            return
        self.load()
        assert self._relative is not None and self._positions is not None
        buf = bytearray(ENTRY_SIZE * len(entries))
        last_rel = self._relative[-1] if self._relative else -1
        last_pos = self._positions[-1] if self._positions else -1
        for i, (offset, position) in enumerate(entries):
            rel = offset - self.base_offset
            assert rel > last_rel and position > last_pos, (offset, position, last_rel, last_pos)
            ENTRY.pack_into(buf, i * ENTRY_SIZE, rel, position)
            last_rel, last_pos = rel, position
        pwrite_all(self._fd, buf, self._file_size)
        self._file_size += len(buf)
        for offset, position in entries:
            self._relative.append(offset - self.base_offset)
            self._positions.append(position)

    def lookup(self, offset: int) -> tuple[int, int]:
        """(offset, position) of the last entry at or before ``offset``; the segment start if none."""
        self.load()
        assert self._relative is not None and self._positions is not None
        i = bisect.bisect_right(self._relative, offset - self.base_offset) - 1
        if i < 0:
            return self.base_offset, 0
        return self.base_offset + self._relative[i], self._positions[i]

    def lookup_position(self, position: int) -> tuple[int, int] | None:
        """(offset, position) of the last entry whose position is <= ``position``."""
        self.load()
        assert self._relative is not None and self._positions is not None
        i = bisect.bisect_right(self._positions, position) - 1
        if i < 0:
            return None
        return self.base_offset + self._relative[i], self._positions[i]

    def truncate_to_position(self, position: int) -> None:
        """Drop entries pointing at or past ``position`` (the log is being cut there)."""
        self.load()
        assert self._relative is not None and self._positions is not None
        keep = bisect.bisect_left(self._positions, position)
        self._truncate_entries(keep)

    def _truncate_entries(self, keep: int) -> None:
        assert self._relative is not None and self._positions is not None
        del self._relative[keep:]
        del self._positions[keep:]
        self._file_size = keep * ENTRY_SIZE
        os.ftruncate(self._fd, self._file_size)

    def drop_partial_entry(self) -> None:
        """Cut a torn trailing entry (a crash mid-append); recovery re-derives what follows."""
        partial = self._file_size % ENTRY_SIZE
        if partial:
            self._file_size -= partial
            os.ftruncate(self._fd, self._file_size)

    def reset(self) -> None:
        self._relative = array("I")
        self._positions = array("I")
        self._file_size = 0
        os.ftruncate(self._fd, 0)
