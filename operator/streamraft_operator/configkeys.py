"""Allow-lists of broker and topic configuration keys with their types.

The same table produces the CRD schema (so the API server rejects unknown keys and wrong types) and validates
at runtime (so a resource that slipped past the schema, e.g. from an older CRD, gets a clear condition).
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["integer", "boolean", "string"]


@dataclass(frozen=True)
class ConfigKey:
    name: str
    kind: Kind
    description: str
    minimum: int | None = None
    maximum: int | None = None
    choices: tuple[str, ...] = ()
    setting: str = ""  # the broker config-file setting this key maps to (static broker keys only)
    dynamic: bool = False
    """A dynamic broker config: applied live by IncrementalAlterConfigs (cluster-wide), never a restart."""

    def schema(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.kind, "description": self.description}
        if self.minimum is not None:
            out["minimum"] = self.minimum
        if self.maximum is not None:
            out["maximum"] = self.maximum
        if self.choices:
            out["enum"] = list(self.choices)
        return out

    def check(self, value: object) -> str | None:
        """Returns why `value` is not acceptable for this key, or None."""
        if self.kind == "boolean":
            return None if isinstance(value, bool) else f"{self.name} must be a boolean, got {value!r}"
        if self.kind == "integer":
            if isinstance(value, bool) or not isinstance(value, int):
                return f"{self.name} must be an integer, got {value!r}"
            if self.minimum is not None and value < self.minimum:
                return f"{self.name} must be >= {self.minimum}, got {value}"
            if self.maximum is not None and value > self.maximum:
                return f"{self.name} must be <= {self.maximum}, got {value}"
            return None
        if not isinstance(value, str):
            return f"{self.name} must be a string, got {value!r}"
        if self.choices and value not in self.choices:
            return f"{self.name} must be one of {', '.join(self.choices)}, got {value!r}"
        return None


_COMPRESSION = ("producer", "uncompressed", "gzip", "snappy", "lz4", "zstd")
_CLEANUP = ("delete", "compact")
_INT32_MAX = 2**31 - 1

# Only keys the broker honours today; a key that would be silently ignored is refused instead. Static keys map
# to a setting of the broker's config file (a change rolls the brokers); dynamic ones are the broker's dynamic
# configs (`kafka-configs --entity-type brokers --entity-default`), set over the Admin API without a restart.
BROKER_KEYS: tuple[ConfigKey, ...] = (
    ConfigKey(
        "message.max.bytes", "integer", "Default max.message.bytes of topics.", 0, _INT32_MAX, dynamic=True
    ),
    ConfigKey(
        "log.retention.ms", "integer", "Default retention.ms of topics; -1 keeps forever.", -1, dynamic=True
    ),
    ConfigKey(
        "log.retention.bytes", "integer", "Default retention.bytes of topics; -1: no limit.", -1, dynamic=True
    ),
    ConfigKey(
        "log.segment.bytes",
        "integer",
        "Default segment.bytes of topics.",
        1_048_576,
        _INT32_MAX,
        dynamic=True,
    ),
    ConfigKey(
        "log.cleanup.policy", "string", "Default cleanup.policy of topics.", choices=_CLEANUP, dynamic=True
    ),
    ConfigKey(
        "auto.create.topics.enable",
        "boolean",
        "Create topics on first metadata request.",
        setting="auto_create_topics",
    ),
    ConfigKey(
        "num.partitions",
        "integer",
        "Partitions of auto-created topics.",
        1,
        10_000,
        setting="default_partitions",
    ),
    ConfigKey(
        "socket.request.max.bytes",
        "integer",
        "Largest request a client may send.",
        1024,
        _INT32_MAX,
        setting="socket_request_max_bytes",
    ),
    ConfigKey("zero.copy.enable", "boolean", "Serve fetches with sendfile.", setting="zero_copy"),
    ConfigKey(
        "log.level",
        "string",
        "Broker log level.",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        setting="log_level",
    ),
    ConfigKey("log.format", "string", "Broker log format.", choices=("text", "json"), setting="log_format"),
    # ACL authorization, for StreamUsers' ACLs. The operator's Admin API calls are unauthenticated
    # (User:ANONYMOUS), so super.users must name it where ACLs are enforced.
    ConfigKey(
        "authorizer.class.name",
        "string",
        "Any non-empty value (streamraft.acl) turns on ACL authorization.",
        setting="authorizer_class_name",
    ),
    ConfigKey(
        "super.users",
        "string",
        "Principals allowed everything, e.g. User:ANONYMOUS;User:admin.",
        setting="super_users",
    ),
    ConfigKey(
        "allow.everyone.if.no.acl.found",
        "boolean",
        "A resource without any ACL is open to everyone.",
        setting="allow_everyone_if_no_acl_found",
    ),
)

TOPIC_KEYS: tuple[ConfigKey, ...] = (
    ConfigKey("retention.ms", "integer", "Time to keep log segments; -1 keeps forever.", -1),
    ConfigKey("retention.bytes", "integer", "Bytes to keep per partition; -1 for no limit.", -1),
    ConfigKey("segment.bytes", "integer", "Size of one log segment file.", 1_048_576, _INT32_MAX),
    ConfigKey("cleanup.policy", "string", "What retention does to old segments.", choices=_CLEANUP),
    ConfigKey("max.message.bytes", "integer", "Largest record batch accepted.", 1024, _INT32_MAX),
    ConfigKey("compression.type", "string", "Compression of stored batches.", choices=_COMPRESSION),
    ConfigKey("min.insync.replicas", "integer", "Replicas that must acknowledge acks=all writes.", 1, 7),
)


def config_schema(keys: tuple[ConfigKey, ...], description: str) -> dict[str, Any]:
    return {
        "type": "object",
        "description": description,
        "properties": {k.name: k.schema() for k in keys},
    }


def validate_config(config: Mapping[str, object], keys: tuple[ConfigKey, ...]) -> list[str]:
    """Every problem with `config`, each naming the key; empty when valid."""
    table = {k.name: k for k in keys}
    problems: list[str] = []
    for name in sorted(config):
        key = table.get(name)
        if key is None:
            problems.append(f"unknown config key {name!r} (allowed: {', '.join(sorted(table))})")
            continue
        why = key.check(config[name])
        if why is not None:
            problems.append(why)
    return problems


def as_kafka_strings(config: Mapping[str, object]) -> dict[str, str]:
    """Kafka's Admin API carries config values as strings; booleans are lower-case there."""
    out: dict[str, str] = {}
    for name, value in config.items():
        out[name] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return out


DYNAMIC_BROKER_KEYS = frozenset(k.name for k in BROKER_KEYS if k.dynamic)


def broker_settings(config: Mapping[str, object]) -> dict[str, object]:
    """Validated Kafka-style keys -> the broker's own config-file settings (the static keys only: the
    dynamic ones are not read at start, so they neither enter the file nor restart a broker)."""
    table = {k.name: k for k in BROKER_KEYS}
    out: dict[str, object] = {}
    for name, value in config.items():
        key = table[name]
        if key.dynamic:
            continue
        assert key.setting, name
        out[key.setting] = value
    return dict(sorted(out.items()))


def dynamic_broker_configs(config: Mapping[str, object]) -> dict[str, str]:
    """The dynamic keys of a validated spec.config, as the Admin API's strings."""
    return as_kafka_strings({k: v for k, v in config.items() if k in DYNAMIC_BROKER_KEYS})


def plan_dynamic_configs(desired: Mapping[str, str], current: Mapping[str, str]) -> dict[str, str | None]:
    """IncrementalAlterConfigs operations (value: SET, None: DELETE) that make the cluster-wide dynamic
    broker configs the operator manages (DYNAMIC_BROKER_KEYS) equal ``desired``: a value changed behind the
    operator's back is set back, one dropped from the spec is deleted; keys it does not manage are left."""
    ops: dict[str, str | None] = {k: v for k, v in desired.items() if current.get(k) != v}
    ops.update({k: None for k in current if k in DYNAMIC_BROKER_KEYS and k not in desired})
    return dict(sorted(ops.items()))
