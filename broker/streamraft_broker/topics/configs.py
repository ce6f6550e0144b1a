"""Topic configuration: one table of every topic config Kafka 4 defines (its LogConfig), with the type,
default, valid range, broker-level synonym and whether Streamraft applies it.

Values are validated by type and range as Kafka validates them (INVALID_CONFIG with a message naming the
key and the rule). Configs whose behaviour Streamraft has are applied by the partition log
(``APPLIED_BY_LOG``: parsed by ``log.config.LogConfig``); the rest are accepted, stored and reported by
DescribeConfigs, as a client setting them on Kafka expects, but change nothing here (``applies`` says why).

One deliberate difference from Kafka: segment.bytes may go down to 14 bytes (Kafka: 1 MiB), so tests can
exercise segment rolling with tiny segments.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum

from streamraft_broker.log.config import MIN_SEGMENT_BYTES

INT_MAX = (1 << 31) - 1
DEFAULT_MAX_MESSAGE_BYTES = 1_048_588
"""Kafka's default: 1 MiB of records plus the 12-byte offset/length prefix (broker message.max.bytes)."""
LONG_MAX = (1 << 63) - 1
LONG_MIN = -(1 << 63)


class ConfigType(IntEnum):
    """DescribeConfigs' config_type (Kafka's DescribeConfigsResponse.ConfigType)."""

    UNKNOWN = 0
    BOOLEAN = 1
    STRING = 2
    INT = 3
    SHORT = 4
    LONG = 5
    DOUBLE = 6
    LIST = 7
    CLASS = 8
    PASSWORD = 9


class ConfigSource(IntEnum):
    """DescribeConfigs' config_source (Kafka's DescribeConfigsResponse.ConfigSource)."""

    UNKNOWN = 0
    DYNAMIC_TOPIC_CONFIG = 1
    DYNAMIC_BROKER_CONFIG = 2
    DYNAMIC_DEFAULT_BROKER_CONFIG = 3
    STATIC_BROKER_CONFIG = 4
    DEFAULT_CONFIG = 5
    DYNAMIC_BROKER_LOGGER_CONFIG = 6
    CLIENT_METRICS_CONFIG = 7
    GROUP_CONFIG = 8


class InvalidTopicConfigError(ValueError):
    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"invalid topic config {key!r}: {message}")
        self.key = key


Check = Callable[[str], None]
"""Raises ValueError with Kafka's wording of what is wrong with a value."""


def _number(kind: ConfigType, low: float | None = None, high: float | None = None) -> Check:
    """INT (32-bit), LONG (64-bit) or DOUBLE, within [low, high] when given."""

    def check(raw: str) -> None:
        text = raw.strip()
        try:
            value: float = float(text) if kind is ConfigType.DOUBLE else int(text)
        except ValueError:
            raise ValueError(f"Not a number of type {kind.name}") from None
        if kind is ConfigType.INT and not -INT_MAX - 1 <= value <= INT_MAX:
            raise ValueError("Not a number of type INT")
        if kind is ConfigType.LONG and not LONG_MIN <= value <= LONG_MAX:
            raise ValueError("Not a number of type LONG")
        if low is not None and value < low:
            raise ValueError(f"Value must be at least {_show(low)}")
        if high is not None and value > high:
            raise ValueError(f"Value must be no more than {_show(high)}")

    return check


def _show(n: float) -> str:
    return str(int(n)) if float(n).is_integer() else str(n)


def _int_or_minus_one(low: int, high: int) -> Check:
    """compression.gzip.level: -1 (the codec's default) or a level in [low, high]."""

    def check(raw: str) -> None:
        _number(ConfigType.INT)(raw)
        value = int(raw.strip())
        if value != -1 and not low <= value <= high:
            raise ValueError(f"Value must be between {low} and {high} or equal to -1")

    return check


def _boolean(raw: str) -> None:
    # Kafka parses booleans case-insensitively.
    if raw.strip().lower() not in ("true", "false"):
        raise ValueError("Expected value to be either true or false")


def _one_of(*allowed: str) -> Check:
    def check(raw: str) -> None:
        if raw.strip() not in allowed:
            raise ValueError(f"String must be one of: {', '.join(allowed)}")

    return check


def _remote_storage(raw: str) -> None:
    _boolean(raw)
    if raw.strip().lower() == "true":
        # Kafka refuses it too unless the broker enables tiered storage (off by default).
        raise ValueError("Tiered Storage functionality is disabled in the broker")


def _cleanup_policy(raw: str) -> None:
    items = [p.strip() for p in raw.split(",") if p.strip()]
    if not items:
        # Kafka 4 accepts an empty policy (no deletion, no compaction); the log here needs one of them.
        raise ValueError("an empty policy is not supported here: use delete, compact or both")
    bad = [p for p in items if p not in ("delete", "compact")]
    if bad:
        raise ValueError(f"Invalid value {','.join(bad)}: list items must be among [compact, delete]")


_REPLICA = re.compile(r"^\s*\d+\s*:\s*\d+\s*$")


def _throttled_replicas(raw: str) -> None:
    text = raw.strip()
    if text in ("", "*"):
        return
    if not all(_REPLICA.match(item) for item in text.split(",")):
        raise ValueError(
            "must be the literal '*' or a list of replicas in the following format: "
            "[partitionId]:[brokerId],[partitionId]:[brokerId],..."
        )


@dataclass(frozen=True, slots=True)
class TopicConfigDef:
    name: str
    type: ConfigType
    default: str
    check: Check
    applies: str
    """How Streamraft honours it: "log" (the partition log applies it) or why it changes nothing here."""
    synonym: str | None = None
    """Kafka's broker-level config that sets its default (reported as a synonym)."""


_NOT_TIERED = "accepted: Streamraft has no tiered storage"
_RAFT = "accepted: replication is Raft (a majority of replicas holds every acknowledged batch)"
_NO_RECOMPRESSION = "accepted: batches are stored as produced (never recompressed)"

_LONG, _INT, _DOUBLE = ConfigType.LONG, ConfigType.INT, ConfigType.DOUBLE

_DEFINITIONS = (
    TopicConfigDef("cleanup.policy", ConfigType.LIST, "delete", _cleanup_policy, "log", "log.cleanup.policy"),
    TopicConfigDef(
        "compression.gzip.level",
        _INT,
        "-1",
        _int_or_minus_one(1, 9),
        _NO_RECOMPRESSION,
        "compression.gzip.level",
    ),
    TopicConfigDef(
        "compression.lz4.level", _INT, "9", _number(_INT, 1, 17), _NO_RECOMPRESSION, "compression.lz4.level"
    ),
    TopicConfigDef(
        "compression.type",
        ConfigType.STRING,
        "producer",
        _one_of("uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"),
        _NO_RECOMPRESSION,
        "compression.type",
    ),
    TopicConfigDef(
        "compression.zstd.level",
        _INT,
        "3",
        _number(_INT, -131072, 22),
        _NO_RECOMPRESSION,
        "compression.zstd.level",
    ),
    TopicConfigDef(
        "delete.retention.ms", _LONG, "86400000", _number(_LONG, 0), "log", "log.cleaner.delete.retention.ms"
    ),
    TopicConfigDef(
        "file.delete.delay.ms",
        _LONG,
        "60000",
        _number(_LONG, 0),
        "accepted: segments past retention are deleted at once",
        "log.segment.delete.delay.ms",
    ),
    TopicConfigDef(
        "flush.messages", _LONG, str(LONG_MAX), _number(_LONG, 1), "log", "log.flush.interval.messages"
    ),
    TopicConfigDef("flush.ms", _LONG, str(LONG_MAX), _number(_LONG, 0), "log", "log.flush.interval.ms"),
    TopicConfigDef(
        "follower.replication.throttled.replicas",
        ConfigType.LIST,
        "",
        _throttled_replicas,
        "accepted: replication is not throttled",
    ),
    TopicConfigDef("index.interval.bytes", _INT, "4096", _number(_INT, 0), "log", "log.index.interval.bytes"),
    TopicConfigDef(
        "leader.replication.throttled.replicas",
        ConfigType.LIST,
        "",
        _throttled_replicas,
        "accepted: replication is not throttled",
    ),
    TopicConfigDef(
        "local.retention.bytes", _LONG, "-2", _number(_LONG, -2), _NOT_TIERED, "log.local.retention.bytes"
    ),
    TopicConfigDef(
        "local.retention.ms", _LONG, "-2", _number(_LONG, -2), _NOT_TIERED, "log.local.retention.ms"
    ),
    TopicConfigDef(
        "max.compaction.lag.ms",
        _LONG,
        str(LONG_MAX),
        _number(_LONG, 1),
        "log",
        "log.cleaner.max.compaction.lag.ms",
    ),
    TopicConfigDef(
        "max.message.bytes",
        _INT,
        str(DEFAULT_MAX_MESSAGE_BYTES),
        _number(_INT, 0),
        "log",
        "message.max.bytes",
    ),
    TopicConfigDef(
        "message.timestamp.after.max.ms",
        _LONG,
        "3600000",
        _number(_LONG, 0),
        "accepted: record timestamps are not checked against the broker's clock",
        "log.message.timestamp.after.max.ms",
    ),
    TopicConfigDef(
        "message.timestamp.before.max.ms",
        _LONG,
        str(LONG_MAX),
        _number(_LONG, 0),
        "accepted: record timestamps are not checked against the broker's clock",
        "log.message.timestamp.before.max.ms",
    ),
    TopicConfigDef(
        "message.timestamp.type",
        ConfigType.STRING,
        "CreateTime",
        _one_of("CreateTime", "LogAppendTime"),
        "log",
        "log.message.timestamp.type",
    ),
    TopicConfigDef(
        "min.cleanable.dirty.ratio",
        _DOUBLE,
        "0.5",
        _number(_DOUBLE, 0, 1),
        "log",
        "log.cleaner.min.cleanable.ratio",
    ),
    TopicConfigDef(
        "min.compaction.lag.ms",
        _LONG,
        "0",
        _number(_LONG, 0),
        "log",
        "log.cleaner.min.compaction.lag.ms",
    ),
    TopicConfigDef("min.insync.replicas", _INT, "1", _number(_INT, 1), _RAFT, "min.insync.replicas"),
    TopicConfigDef(
        "preallocate",
        ConfigType.BOOLEAN,
        "false",
        _boolean,
        "accepted: segments grow as written",
        "log.preallocate",
    ),
    TopicConfigDef("remote.log.copy.disable", ConfigType.BOOLEAN, "false", _boolean, _NOT_TIERED),
    TopicConfigDef("remote.log.delete.on.disable", ConfigType.BOOLEAN, "false", _boolean, _NOT_TIERED),
    TopicConfigDef("remote.storage.enable", ConfigType.BOOLEAN, "false", _remote_storage, _NOT_TIERED),
    # Kafka puts no bound on retention.bytes: any negative value means "no size limit".
    TopicConfigDef("retention.bytes", _LONG, "-1", _number(_LONG), "log", "log.retention.bytes"),
    TopicConfigDef("retention.ms", _LONG, "604800000", _number(_LONG, -1), "log", "log.retention.ms"),
    TopicConfigDef(
        "segment.bytes", _INT, "1073741824", _number(_INT, MIN_SEGMENT_BYTES), "log", "log.segment.bytes"
    ),
    TopicConfigDef(
        "segment.index.bytes",
        _INT,
        "10485760",
        _number(_INT, 4),
        "accepted: offset and time indexes grow with their segment",
        "log.index.size.max.bytes",
    ),
    TopicConfigDef(
        "segment.jitter.ms",
        _LONG,
        "0",
        _number(_LONG, 0),
        "accepted: segments roll exactly at segment.ms",
        "log.roll.jitter.ms",
    ),
    TopicConfigDef("segment.ms", _LONG, "604800000", _number(_LONG, 1), "log", "log.roll.ms"),
    TopicConfigDef(
        "unclean.leader.election.enable",
        ConfigType.BOOLEAN,
        "false",
        _boolean,
        _RAFT + "; a leader is always elected from the committed log",
        "unclean.leader.election.enable",
    ),
)

TOPIC_CONFIGS: dict[str, TopicConfigDef] = {d.name: d for d in _DEFINITIONS}
"""Every topic config Kafka 4 accepts, by name."""

APPLIED_BY_LOG = frozenset(d.name for d in _DEFINITIONS if d.applies == "log")


def validate_topic_configs(configs: Mapping[str, str | None]) -> dict[str, str]:
    """Check every key is a topic config and every value valid for it; returns the non-null entries."""
    out: dict[str, str] = {}
    for key, value in configs.items():
        definition = TOPIC_CONFIGS.get(key)
        if definition is None:
            raise InvalidTopicConfigError(key, "Unknown topic config name")
        if value is None:
            raise InvalidTopicConfigError(key, "value must not be null")
        try:
            definition.check(value)
        except ValueError as exc:
            raise InvalidTopicConfigError(key, f"Invalid value {value!r}: {exc}") from None
        out[key] = value
    return out


def log_configs(configs: Mapping[str, str]) -> dict[str, str]:
    """The entries the partition log applies (LogConfig.from_topic_configs), in the form it parses."""
    out = {k: v.strip() for k, v in configs.items() if k in APPLIED_BY_LOG}
    if "retention.bytes" in out and int(out["retention.bytes"]) < 0:
        out["retention.bytes"] = "-1"  # every negative value means "no limit"
    return out


@dataclass(frozen=True, slots=True)
class EffectiveConfig:
    name: str
    value: str
    source: ConfigSource
    type: ConfigType
    synonyms: tuple[tuple[str, str, ConfigSource], ...]
    """(name, value, source), most specific first, as Kafka lists them when asked to."""
    documentation: str | None = None
    """What this config does on Streamraft (DescribeConfigs with include_documentation)."""

    @property
    def is_default(self) -> bool:
        return self.source is ConfigSource.DEFAULT_CONFIG


def effective_configs(
    configs: Mapping[str, str],
    broker_defaults: Mapping[str, str] | Sequence[tuple[ConfigSource, Mapping[str, str]]] | None = None,
) -> dict[str, EffectiveConfig]:
    """Every topic config with the value in force and where it comes from: a topic override, else a
    broker setting (``broker_defaults``, keyed by the topic config it sets, e.g. message.max.bytes as
    max.message.bytes: static settings, or layers of dynamic and static ones, most specific first), else
    the built-in default."""
    if broker_defaults is None:
        layers: Sequence[tuple[ConfigSource, Mapping[str, str]]] = ()
    elif isinstance(broker_defaults, Mapping):
        layers = ((ConfigSource.STATIC_BROKER_CONFIG, broker_defaults),)
    else:
        layers = broker_defaults
    out: dict[str, EffectiveConfig] = {}
    for name, d in TOPIC_CONFIGS.items():
        synonyms: list[tuple[str, str, ConfigSource]] = []
        if name in configs:
            synonyms.append((name, configs[name], ConfigSource.DYNAMIC_TOPIC_CONFIG))
        set_by = [(src, values[name]) for src, values in layers if name in values]
        if d.synonym is not None:
            synonyms.extend((d.synonym, v, src) for src, v in set_by)
            synonyms.append((d.synonym, d.default, ConfigSource.DEFAULT_CONFIG))
        if name in configs:
            value, source = configs[name], ConfigSource.DYNAMIC_TOPIC_CONFIG
        elif set_by:
            source, value = set_by[0]
        else:
            value, source = d.default, ConfigSource.DEFAULT_CONFIG
        doc = "Applied by the partition log." if d.applies == "log" else f"Streamraft: {d.applies}."
        out[name] = EffectiveConfig(name, value, source, d.type, tuple(synonyms), doc)
    return out
