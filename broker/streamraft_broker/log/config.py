"""Per-partition log configuration and its mapping from Kafka topic config names."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import ClassVar, Literal

GIB = 1024 * 1024 * 1024
MIB = 1024 * 1024
DAY_MS = 24 * 60 * 60 * 1000
# Index entries store positions and relative offsets as uint32, and Kafka caps segment.bytes at Int.MaxValue.
MAX_SEGMENT_BYTES = (1 << 31) - 1
# Kafka's minimum segment.bytes (a v0 message header); tests use tiny segments to exercise rolling.
MIN_SEGMENT_BYTES = 14
LONG_MAX = (1 << 63) - 1

INVALID_CONFIG = 40

TimestampTypeName = Literal["CreateTime", "LogAppendTime"]
CleanupPolicy = Literal["delete", "compact", "compact,delete"]


class InvalidConfigError(ValueError):
    """A topic config key or value the broker rejects; ``key`` names it (Kafka INVALID_CONFIG)."""

    error_code = INVALID_CONFIG

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key


class FlushMode(Enum):
    EVERY_BATCH = "every_batch"
    INTERVAL = "interval"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class FlushPolicy:
    """When appended data is fsynced: after every append, when ``interval_ms`` passed since the last fsync
    (checked on append and by flush()), or only on roll/close (NONE, Kafka's default: replication is the
    durability)."""

    mode: FlushMode
    interval_ms: int = 0

    EVERY_BATCH: ClassVar[FlushPolicy]
    NONE: ClassVar[FlushPolicy]

    def __post_init__(self) -> None:
        if self.mode is FlushMode.INTERVAL and self.interval_ms <= 0:
            raise ValueError(f"flush interval must be positive, got {self.interval_ms}")

    @classmethod
    def interval(cls, interval_ms: int) -> FlushPolicy:
        return cls(FlushMode.INTERVAL, interval_ms)

    # The contract spells the interval policy INTERVAL(ms).
    INTERVAL = interval


FlushPolicy.EVERY_BATCH = FlushPolicy(FlushMode.EVERY_BATCH)
FlushPolicy.NONE = FlushPolicy(FlushMode.NONE)

# Kafka topic configs that are valid but have no effect on this log (the broker may use some elsewhere).
_ACCEPTED_IGNORED = frozenset(
    {
        "compression.type",
        "file.delete.delay.ms",
        "follower.replication.throttled.replicas",
        "leader.replication.throttled.replicas",
        "local.retention.bytes",
        "local.retention.ms",
        "message.downconversion.enable",
        "message.format.version",
        "message.timestamp.after.max.ms",
        "message.timestamp.before.max.ms",
        "message.timestamp.difference.max.ms",
        "min.insync.replicas",
        "preallocate",
        "remote.storage.enable",
        "segment.index.bytes",
        "segment.jitter.ms",
        "unclean.leader.election.enable",
    }
)


def _parse_int(key: str, raw: str, *, minimum: int, maximum: int = (1 << 63) - 1) -> int:
    try:
        value = int(raw.strip())
    except (ValueError, AttributeError):
        raise InvalidConfigError(key, f"expected an integer, got {raw!r}") from None
    if not minimum <= value <= maximum:
        raise InvalidConfigError(key, f"{value} is outside [{minimum}, {maximum}]")
    return value


def _parse_ratio(key: str, raw: str) -> float:
    try:
        value = float(raw.strip())
    except (ValueError, AttributeError):
        raise InvalidConfigError(key, f"expected a number, got {raw!r}") from None
    if not 0.0 <= value <= 1.0:  # also rejects nan
        raise InvalidConfigError(key, f"{value} is outside [0, 1]")
    return value


@dataclass(frozen=True, slots=True)
class LogConfig:
    segment_bytes: int = GIB
    segment_ms: int = 7 * DAY_MS
    index_interval_bytes: int = 4096
    retention_ms: int | None = 7 * DAY_MS
    retention_bytes: int | None = None
    flush: FlushPolicy = field(default_factory=lambda: FlushPolicy.NONE)
    message_timestamp_type: TimestampTypeName = "CreateTime"
    cleanup_policy: CleanupPolicy = "delete"
    # Kafka's default: 1 MiB of records plus the 12-byte offset/length prefix.
    max_message_bytes: int = MIB + 12
    # How long compaction keeps tombstones (null values) so consumers can see the deletion.
    delete_retention_ms: int = DAY_MS
    # The log cleaner (cleanup.policy includes compact): a partition is cleaned once dirty bytes / cleanable
    # bytes exceed this ratio, or once a dirty record is max_compaction_lag_ms old; records younger than
    # min_compaction_lag_ms (by their segment's newest timestamp) are not cleaned yet.
    min_cleanable_dirty_ratio: float = 0.5
    min_compaction_lag_ms: int = 0
    max_compaction_lag_ms: int = LONG_MAX
    # Bounds crash recovery: once this much was appended since the last recovery-point checkpoint, the log is
    # fsynced and the checkpoint rewritten, so a restart scans at most this many bytes (plus the last append).
    recovery_checkpoint_bytes: int = 64 * MIB

    def __post_init__(self) -> None:
        if not MIN_SEGMENT_BYTES <= self.segment_bytes <= MAX_SEGMENT_BYTES:
            raise InvalidConfigError(
                "segment.bytes", f"{self.segment_bytes} outside [14, {MAX_SEGMENT_BYTES}]"
            )
        if self.segment_ms <= 0:
            raise InvalidConfigError("segment.ms", f"must be positive, got {self.segment_ms}")
        if self.index_interval_bytes < 0:
            raise InvalidConfigError("index.interval.bytes", f"must be >= 0, got {self.index_interval_bytes}")
        if self.retention_ms is not None and self.retention_ms < 0:
            raise InvalidConfigError("retention.ms", f"must be >= 0 or None, got {self.retention_ms}")
        if self.retention_bytes is not None and self.retention_bytes < 0:
            raise InvalidConfigError("retention.bytes", f"must be >= 0 or None, got {self.retention_bytes}")
        if self.message_timestamp_type not in ("CreateTime", "LogAppendTime"):
            raise InvalidConfigError(
                "message.timestamp.type", f"unknown type {self.message_timestamp_type!r}"
            )
        if self.cleanup_policy not in ("delete", "compact", "compact,delete"):
            raise InvalidConfigError("cleanup.policy", f"unknown policy {self.cleanup_policy!r}")
        if self.max_message_bytes < 0:
            raise InvalidConfigError("max.message.bytes", f"must be >= 0, got {self.max_message_bytes}")
        if self.delete_retention_ms < 0:
            raise InvalidConfigError("delete.retention.ms", f"must be >= 0, got {self.delete_retention_ms}")
        if not 0.0 <= self.min_cleanable_dirty_ratio <= 1.0:
            raise InvalidConfigError(
                "min.cleanable.dirty.ratio", f"must be in [0, 1], got {self.min_cleanable_dirty_ratio}"
            )
        if self.min_compaction_lag_ms < 0:
            raise InvalidConfigError(
                "min.compaction.lag.ms", f"must be >= 0, got {self.min_compaction_lag_ms}"
            )
        if self.max_compaction_lag_ms < 1:
            raise InvalidConfigError(
                "max.compaction.lag.ms", f"must be >= 1, got {self.max_compaction_lag_ms}"
            )
        if self.recovery_checkpoint_bytes <= 0:
            raise ValueError(
                f"recovery_checkpoint_bytes must be positive, got {self.recovery_checkpoint_bytes}"
            )

    @property
    def retention_enabled(self) -> bool:
        """Whether retention.ms/retention.bytes delete segments (cleanup.policy includes delete)."""
        return "delete" in self.cleanup_policy

    @property
    def compaction_enabled(self) -> bool:
        return "compact" in self.cleanup_policy

    @property
    def log_append_time(self) -> bool:
        return self.message_timestamp_type == "LogAppendTime"

    @classmethod
    def from_topic_configs(cls, configs: Mapping[str, str], base: LogConfig | None = None) -> LogConfig:
        """Build from Kafka topic config names/values on top of ``base`` (defaults if None). Unknown names
        and bad values raise InvalidConfigError naming the key."""
        start = base if base is not None else cls()
        values: dict[str, object] = {}
        flush_messages: int | None = None
        flush_ms: int | None = None
        for key, raw in configs.items():
            if key == "segment.bytes":
                values["segment_bytes"] = _parse_int(
                    key, raw, minimum=MIN_SEGMENT_BYTES, maximum=MAX_SEGMENT_BYTES
                )
            elif key == "segment.ms":
                values["segment_ms"] = _parse_int(key, raw, minimum=1)
            elif key == "index.interval.bytes":
                values["index_interval_bytes"] = _parse_int(key, raw, minimum=0, maximum=MAX_SEGMENT_BYTES)
            elif key == "retention.ms":
                ms = _parse_int(key, raw, minimum=-1)
                values["retention_ms"] = None if ms == -1 else ms
            elif key == "retention.bytes":
                size = _parse_int(key, raw, minimum=-1)
                values["retention_bytes"] = None if size == -1 else size
            elif key == "flush.messages":
                flush_messages = _parse_int(key, raw, minimum=1)
            elif key == "flush.ms":
                flush_ms = _parse_int(key, raw, minimum=0)
            elif key == "message.timestamp.type":
                if raw not in ("CreateTime", "LogAppendTime"):
                    raise InvalidConfigError(key, f"expected CreateTime or LogAppendTime, got {raw!r}")
                values["message_timestamp_type"] = raw
            elif key == "cleanup.policy":
                policies = {p.strip() for p in raw.split(",") if p.strip()}
                if policies == {"delete"}:
                    values["cleanup_policy"] = "delete"
                elif policies == {"compact"}:
                    values["cleanup_policy"] = "compact"
                elif policies == {"compact", "delete"}:
                    values["cleanup_policy"] = "compact,delete"
                else:
                    raise InvalidConfigError(key, f"expected delete, compact or both, got {raw!r}")
            elif key == "delete.retention.ms":
                values["delete_retention_ms"] = _parse_int(key, raw, minimum=0)
            elif key == "min.cleanable.dirty.ratio":
                values["min_cleanable_dirty_ratio"] = _parse_ratio(key, raw)
            elif key == "min.compaction.lag.ms":
                values["min_compaction_lag_ms"] = _parse_int(key, raw, minimum=0)
            elif key == "max.compaction.lag.ms":
                values["max_compaction_lag_ms"] = _parse_int(key, raw, minimum=1)
            elif key == "max.message.bytes":
                values["max_message_bytes"] = _parse_int(key, raw, minimum=0, maximum=(1 << 31) - 1)
            elif key in _ACCEPTED_IGNORED:
                continue
            else:
                raise InvalidConfigError(key, "unknown topic config")
        if flush_messages is not None or flush_ms is not None:
            values["flush"] = _flush_from(flush_messages, flush_ms, start.flush)
        fields = {name: getattr(start, name) for name in start.__dataclass_fields__}
        fields.update(values)
        return cls(**fields)

    def to_topic_configs(self) -> dict[str, str]:
        """The effective values under Kafka names (for DescribeConfigs)."""
        if self.flush.mode is FlushMode.EVERY_BATCH:
            flush_messages, flush_ms = "1", str((1 << 63) - 1)
        elif self.flush.mode is FlushMode.INTERVAL:
            flush_messages, flush_ms = str((1 << 63) - 1), str(self.flush.interval_ms)
        else:
            flush_messages, flush_ms = str((1 << 63) - 1), str((1 << 63) - 1)
        return {
            "segment.bytes": str(self.segment_bytes),
            "segment.ms": str(self.segment_ms),
            "index.interval.bytes": str(self.index_interval_bytes),
            "retention.ms": "-1" if self.retention_ms is None else str(self.retention_ms),
            "retention.bytes": "-1" if self.retention_bytes is None else str(self.retention_bytes),
            "flush.messages": flush_messages,
            "flush.ms": flush_ms,
            "message.timestamp.type": self.message_timestamp_type,
            "cleanup.policy": self.cleanup_policy,
            "max.message.bytes": str(self.max_message_bytes),
            "delete.retention.ms": str(self.delete_retention_ms),
            "min.cleanable.dirty.ratio": str(self.min_cleanable_dirty_ratio),
            "min.compaction.lag.ms": str(self.min_compaction_lag_ms),
            "max.compaction.lag.ms": str(self.max_compaction_lag_ms),
        }


def _flush_from(flush_messages: int | None, flush_ms: int | None, current: FlushPolicy) -> FlushPolicy:
    # Only "every message" and "every N ms" map onto the policies; larger flush.messages counts mean
    # "rarely", which is NONE here (roll/close/checkpoint still fsync).
    if flush_messages == 1 or flush_ms == 0:
        return FlushPolicy.EVERY_BATCH
    if flush_ms is not None and flush_ms < (1 << 63) - 1:
        return FlushPolicy.interval(flush_ms)
    if flush_messages is not None:
        return FlushPolicy.NONE
    return current
