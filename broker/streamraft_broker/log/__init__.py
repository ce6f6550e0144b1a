"""The segmented partition log: append/read of whole record batches, indexes, retention and recovery."""

from .compaction import CompactionStats
from .config import FlushMode, FlushPolicy, InvalidConfigError, LogConfig
from .partition import (
    AppendInfo,
    LogClosedError,
    LogStorageError,
    OffsetOutOfRangeError,
    PartitionLog,
    wall_clock_ms,
)
from .segment import FileSlice

__all__ = [
    "AppendInfo",
    "CompactionStats",
    "FileSlice",
    "FlushMode",
    "FlushPolicy",
    "InvalidConfigError",
    "LogClosedError",
    "LogConfig",
    "LogStorageError",
    "OffsetOutOfRangeError",
    "PartitionLog",
    "wall_clock_ms",
]
