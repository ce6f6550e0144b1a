"""In-memory partition log used until (or where) the segmented file log is unavailable.

It follows the PartitionLog contract closely enough for the handlers: validate RecordBatch v2 framing and
CRC, assign offsets by rewriting the header's base offset (outside the CRC), serve whole batches.
"""

from __future__ import annotations

import bisect
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass

import crc32c

BATCH_HEADER_SIZE = 61
_BASE = struct.Struct(">q")
_HEAD = struct.Struct(">qiibIhiqqqhii")


class MemLogRecordError(ValueError):
    def __init__(self, error_code: int, message: str) -> None:
        super().__init__(message)
        self.error_code = error_code


@dataclass(frozen=True, slots=True)
class MemAppendInfo:
    base_offset: int
    last_offset: int
    max_timestamp: int
    log_append_time: int
    log_start_offset: int
    batch_count: int
    records_count: int
    bytes: int


class MemoryLog:
    def __init__(self, *, log_append_time: bool = False, now_ms: Callable[[], int] | None = None) -> None:
        self._bases: list[int] = []
        self._batches: list[bytes] = []
        self._max_ts: list[int] = []
        self._log_append_time = log_append_time
        self._now_ms = now_ms or (lambda: int(time.time() * 1000))
        self.log_start_offset = 0
        self.log_end_offset = 0
        self.size_bytes = 0

    def append(self, records: bytes | memoryview) -> MemAppendInfo:
        buf = bytes(records)
        pos = 0
        parsed: list[tuple[int, int, int, int]] = []  # (pos, size, last_delta, max_ts)
        count = 0
        while pos < len(buf):
            if len(buf) - pos < BATCH_HEADER_SIZE:
                raise MemLogRecordError(2, f"truncated record batch header at byte {pos}")
            (_, length, _, magic, crc, _, last_delta, _, max_ts, _, _, _, n) = _HEAD.unpack_from(buf, pos)
            size = length + 12
            if magic != 2:
                raise MemLogRecordError(43, f"record batch magic {magic} is not supported (only v2)")
            if length < BATCH_HEADER_SIZE - 12 or pos + size > len(buf):
                raise MemLogRecordError(2, f"record batch length {length} at byte {pos} is out of bounds")
            if crc32c.crc32c(buf[pos + 21 : pos + size]) != crc:
                raise MemLogRecordError(2, f"record batch CRC mismatch at byte {pos}")
            parsed.append((pos, size, last_delta, max_ts))
            count += n
            pos += size
        if not parsed:
            raise MemLogRecordError(87, "produce request carried no record batches")
        base = self.log_end_offset
        now = self._now_ms()
        max_overall = -1
        for p, size, last_delta, max_ts in parsed:
            batch = bytearray(buf[p : p + size])
            _BASE.pack_into(batch, 0, self.log_end_offset)
            self._bases.append(self.log_end_offset)
            self._batches.append(bytes(batch))
            ts = now if self._log_append_time else max_ts
            self._max_ts.append(ts)
            max_overall = max(max_overall, ts)
            self.log_end_offset += last_delta + 1
            self.size_bytes += size
        return MemAppendInfo(
            base_offset=base,
            last_offset=self.log_end_offset - 1,
            max_timestamp=max_overall,
            log_append_time=now if self._log_append_time else -1,
            log_start_offset=self.log_start_offset,
            batch_count=len(parsed),
            records_count=count,
            bytes=len(buf),
        )

    def read_bytes(
        self, offset: int, max_bytes: int, *, max_offset: int | None = None, min_one_message: bool = True
    ) -> bytes:
        # The batch holding `offset` starts at or before it.
        i = max(bisect.bisect_right(self._bases, offset) - 1, 0)
        out = bytearray()
        limit = self.log_end_offset if max_offset is None else max_offset
        while i < len(self._batches) and self._bases[i] < limit:
            batch = self._batches[i]
            if out and len(out) + len(batch) > max_bytes:
                break
            if not out and len(batch) > max_bytes and not min_one_message:
                break
            out += batch
            i += 1
        return bytes(out)

    def delete_records_before(self, offset: int) -> None:
        """DeleteRecords: the log start moves to ``offset``; batches wholly before it go."""
        if not 0 <= offset <= self.log_end_offset:
            raise MemLogRecordError(
                1, f"cannot delete records before {offset}: log end is {self.log_end_offset}"
            )
        if offset <= self.log_start_offset:
            return
        self.log_start_offset = offset
        keep = max(bisect.bisect_right(self._bases, offset) - 1, 0)
        for batch in self._batches[:keep]:
            self.size_bytes -= len(batch)
        del self._bases[:keep], self._batches[:keep], self._max_ts[:keep]

    def offset_for_timestamp(self, ts: int) -> tuple[int, int] | None:
        for base, max_ts in zip(self._bases, self._max_ts, strict=True):
            if max_ts >= ts:
                return base, max_ts
        return None

    def max_timestamp(self) -> tuple[int, int] | None:
        if not self._batches:
            return None
        best = max(range(len(self._max_ts)), key=lambda i: self._max_ts[i])
        return self._bases[best], self._max_ts[best]

    def flush(self) -> None:
        """Nothing to flush: this log is volatile by design."""

    def close(self) -> None:
        self._batches.clear()
