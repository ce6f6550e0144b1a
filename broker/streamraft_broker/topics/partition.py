"""One partition on this node: the small interface handlers use, so Raft can later sit behind it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol

from streamraft_broker.topics.memlog import MemoryLog


class AppendResult(Protocol):
    @property
    def base_offset(self) -> int: ...
    @property
    def log_append_time(self) -> int: ...
    @property
    def log_start_offset(self) -> int: ...


class Partition:
    """Single-node partition: the high watermark is the log end offset (everything appended is committed)."""

    def __init__(self, topic: str, index: int, log: Any) -> None:
        self.topic = topic
        self.index = index
        self.log = log
        self.leader_epoch = 0
        self._data_arrived = asyncio.Event()
        self.raft_storage: Any = None
        """Set when this partition's log is also its Raft log (replication.partition_storage)."""
        self.raft_hw: int | None = None
        """The high watermark when replicated: the end of the last committed entry applied here."""
        self.records_floor = 0
        """Replicated: the log start DeleteRecords set through the controller. The log itself only drops
        whole Raft entries (batches), so records before this offset in its first batch are hidden here."""

    @property
    def is_memory(self) -> bool:
        return isinstance(self.log, MemoryLog)

    @property
    def log_start_offset(self) -> int:
        return max(int(self.log.log_start_offset), self.records_floor)

    def delete_records_before(self, offset: int) -> None:
        """Single node: DeleteRecords moves the log start to ``offset`` (at most the log end)."""
        self.log.delete_records_before(offset)

    @property
    def log_end_offset(self) -> int:
        return int(self.log.log_end_offset)

    @property
    def high_watermark(self) -> int:
        if self.raft_hw is not None:
            return self.raft_hw
        return self.log_end_offset

    def advance_hw(self, offset: int) -> None:
        """A replicated partition's commit reached ``offset``: wake long-polling fetches."""
        self.raft_hw = offset
        self._data_arrived.set()
        self._data_arrived = asyncio.Event()

    @property
    def size_bytes(self) -> int:
        return int(self.log.size_bytes)

    def append(
        self, records: bytes | memoryview, *, before_write: Callable[[list[Any]], None] | None = None
    ) -> AppendResult:
        if self.is_memory:
            info: AppendResult = self.log.append(records)
        else:
            info = self.log.append(records, leader_epoch=self.leader_epoch, before_write=before_write)
        # Wake every long-polling fetch; each re-checks its own offset.
        self._data_arrived.set()
        self._data_arrived = asyncio.Event()
        return info

    def read(
        self, offset: int, max_bytes: int, *, min_one_message: bool, max_offset: int | None = None
    ) -> list[Any]:
        """Whole batches from offset up to the high watermark (or the lower ``max_offset``, e.g. the last
        stable offset for read_committed): bytes or file slices."""
        limit = self.high_watermark if max_offset is None else min(max_offset, self.high_watermark)
        if self.is_memory:
            data = self.log.read_bytes(offset, max_bytes, max_offset=limit, min_one_message=min_one_message)
            return [data] if data else []
        slices: list[Any] = self.log.read(
            offset, max_bytes, max_offset=limit, min_one_message=min_one_message
        )
        return slices

    def read_bytes(self, offset: int, max_bytes: int, *, min_one_message: bool = True) -> bytes:
        data: bytes = self.log.read_bytes(
            offset, max_bytes, max_offset=self.high_watermark, min_one_message=min_one_message
        )
        return data

    def offset_for_timestamp(self, ts: int) -> tuple[int, int] | None:
        found: tuple[int, int] | None = self.log.offset_for_timestamp(ts)
        if found is not None and found[0] < self.records_floor:
            # The first batch may begin before a DeleteRecords floor: the first offset left is the floor.
            return self.records_floor, found[1]
        return found

    def max_timestamp(self) -> tuple[int, int] | None:
        """(offset, timestamp) of the batch with the largest max timestamp."""
        found: tuple[int, int] | None = self.log.max_timestamp()
        return found

    def data_event(self) -> asyncio.Event:
        return self._data_arrived

    def flush(self) -> None:
        self.log.flush()

    def close(self) -> None:
        self.log.close()
