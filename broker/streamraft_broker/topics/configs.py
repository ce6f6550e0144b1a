"""Topic configuration names, defaults and validation (Kafka names, clear errors naming the key)."""

from __future__ import annotations

from collections.abc import Callable, Mapping


class InvalidTopicConfigError(ValueError):
    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"invalid topic config {key!r}: {message}")
        self.key = key


def _int_at_least(low: int) -> Callable[[str], None]:
    def check(value: str) -> None:
        try:
            n = int(value)
        except ValueError:
            raise ValueError(f"{value!r} is not an integer") from None
        if n < low:
            raise ValueError(f"{n} is below the minimum {low}")

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
    "retention.ms": ("604800000", _int_at_least(-1)),
    "retention.bytes": ("-1", _int_at_least(-1)),
    "segment.bytes": ("1073741824", _int_at_least(14)),
    "segment.ms": ("604800000", _int_at_least(1)),
    "segment.index.bytes": ("10485760", _int_at_least(4)),
    "index.interval.bytes": ("4096", _int_at_least(0)),
    "max.message.bytes": ("1048588", _int_at_least(0)),
    "message.timestamp.type": ("CreateTime", _one_of("CreateTime", "LogAppendTime")),
    "flush.messages": ("9223372036854775807", _int_at_least(1)),
    "flush.ms": ("9223372036854775807", _int_at_least(0)),
    "min.insync.replicas": ("1", _int_at_least(1)),
    "compression.type": ("producer", _one_of("producer", "uncompressed", "gzip", "snappy", "lz4", "zstd")),
    "delete.retention.ms": ("86400000", _int_at_least(0)),
    "min.compaction.lag.ms": ("0", _int_at_least(0)),
    "max.compaction.lag.ms": ("9223372036854775807", _int_at_least(1)),
    "message.timestamp.difference.max.ms": ("9223372036854775807", _int_at_least(0)),
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


def effective_configs(configs: Mapping[str, str]) -> dict[str, tuple[str, bool]]:
    """Every known config -> (value, is_default)."""
    return {k: (configs[k], False) if k in configs else (d, True) for k, (d, _) in TOPIC_CONFIGS.items()}
