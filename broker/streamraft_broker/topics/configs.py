"""Topic configuration names, defaults and validation (Kafka names, clear errors naming the key)."""

from __future__ import annotations

from collections.abc import Callable, Mapping


class InvalidTopicConfigError(ValueError):
    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"invalid topic config {key!r}: {message}")
        self.key = key


INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
DEFAULT_MAX_MESSAGE_BYTES = 1_048_588
"""Kafka's default: 1 MiB of records plus the 12-byte offset/length prefix (broker message.max.bytes)."""
MAX_MESSAGE_BYTES_LIMIT = INT32_MAX
"""Kafka types max.message.bytes (and message.max.bytes) as an INT: nothing above 2147483647."""


def _int_in(low: int, high: int = INT64_MAX) -> Callable[[str], None]:
    """An integer in low..high; ``high`` is Kafka's type bound (INT or LONG) unless the config has its own."""

    def check(value: str) -> None:
        try:
            n = int(value)
        except ValueError:
            raise ValueError(f"{value!r} is not an integer") from None
        if n < low:
            raise ValueError(f"{n} is below the minimum {low}")
        if n > high:
            raise ValueError(f"{n} is above the maximum {high}")

    return check


def _one_of(*allowed: str) -> Callable[[str], None]:
    def check(value: str) -> None:
        if value not in allowed:
            raise ValueError(f"{value!r} is not one of {', '.join(allowed)}")

    return check


def _cleanup(value: str) -> None:
    parts = [p.strip() for p in value.split(",") if p.strip()]
    if not parts or any(p not in ("delete", "compact") for p in parts):
        raise ValueError(f"{value!r} must be 'delete', 'compact' or both")


# name -> (default, validator)
TOPIC_CONFIGS: dict[str, tuple[str, Callable[[str], None]]] = {
    "cleanup.policy": ("delete", _cleanup),
    "retention.ms": ("604800000", _int_in(-1)),
    "retention.bytes": ("-1", _int_in(-1)),
    "segment.bytes": ("1073741824", _int_in(14, INT32_MAX)),
    "segment.ms": ("604800000", _int_in(1)),
    "segment.index.bytes": ("10485760", _int_in(4, INT32_MAX)),
    "index.interval.bytes": ("4096", _int_in(0, INT32_MAX)),
    "max.message.bytes": (str(DEFAULT_MAX_MESSAGE_BYTES), _int_in(0, MAX_MESSAGE_BYTES_LIMIT)),
    "message.timestamp.type": ("CreateTime", _one_of("CreateTime", "LogAppendTime")),
    "flush.messages": ("9223372036854775807", _int_in(1)),
    "flush.ms": ("9223372036854775807", _int_in(0)),
    "min.insync.replicas": ("1", _int_in(1, INT32_MAX)),
    "compression.type": ("producer", _one_of("producer", "uncompressed", "gzip", "snappy", "lz4", "zstd")),
    "delete.retention.ms": ("86400000", _int_in(0)),
    "min.compaction.lag.ms": ("0", _int_in(0)),
    "max.compaction.lag.ms": ("9223372036854775807", _int_in(1)),
    "message.timestamp.difference.max.ms": ("9223372036854775807", _int_in(0)),
    "unclean.leader.election.enable": ("false", _one_of("true", "false")),
}


def validate_topic_configs(configs: Mapping[str, str | None]) -> dict[str, str]:
    """Check every key is known and every value valid; returns the non-null entries."""
    out: dict[str, str] = {}
    for key, value in configs.items():
        if key not in TOPIC_CONFIGS:
            raise InvalidTopicConfigError(key, "unknown topic config name")
        if value is None:
            raise InvalidTopicConfigError(key, "value must not be null")
        try:
            TOPIC_CONFIGS[key][1](value)
        except ValueError as exc:
            raise InvalidTopicConfigError(key, str(exc)) from None
        out[key] = value
    return out


def effective_configs(
    configs: Mapping[str, str], broker_defaults: Mapping[str, str] | None = None
) -> dict[str, tuple[str, bool]]:
    """Every known config -> (value, is_default); ``broker_defaults`` (e.g. message.max.bytes as
    max.message.bytes) replace the built-in defaults."""
    defaults = {k: d for k, (d, _) in TOPIC_CONFIGS.items()} | dict(broker_defaults or {})
    return {k: (configs[k], False) if k in configs else (defaults[k], True) for k in TOPIC_CONFIGS}
