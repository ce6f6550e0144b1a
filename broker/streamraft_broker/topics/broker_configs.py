"""Dynamic broker configs (`kafka-configs --entity-type brokers --alter`): broker-level defaults of the
topic configs the partition log applies, changed without a restart.

Kafka keeps such values per broker (entity = the broker id) and cluster-wide (the default entity, named
""). A broker's value of a setting is, most specific first: its own dynamic value
(DYNAMIC_BROKER_CONFIG), the cluster-wide dynamic value (DYNAMIC_DEFAULT_BROKER_CONFIG), its static setting
(STATIC_BROKER_CONFIG: flag, environment, config file) and the built-in default (DEFAULT_CONFIG); a topic's
own override beats them all. With Raft replication the values live in the controller log (the
``AlterBrokerConfigs`` command), so every broker applies the same ones and keeps them across restarts; a
broker without replication keeps them in a file of its data directory (``LocalBrokerConfigs``).

Only the settings in ``DYNAMIC_BROKER_CONFIGS`` can change live: each is the broker-level synonym of a topic
config the partition log applies (``TopicConfigDef.applies == "log"``), and logs take a new config in
place (``PartitionLog.update_config``), as a topic-level AlterConfigs does. Every other broker setting is
read once at start (sockets, thread pools, listeners, auto-creation defaults, which Kafka also keeps
static) and is refused with Kafka's "Cannot update these configs dynamically".
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final

from streamraft_broker.log.config import LogConfig
from streamraft_broker.log.fileio import atomic_write
from streamraft_broker.topics.configs import TOPIC_CONFIGS, ConfigSource, TopicConfigDef, log_configs

DEFAULT_ENTITY: Final = ""
"""The cluster-wide entity (`kafka-configs --entity-default`)."""
MAX_NODE_ID: Final = (1 << 31) - 1

DYNAMIC_BROKER_CONFIGS: Final[dict[str, TopicConfigDef]] = {
    d.synonym: d for d in TOPIC_CONFIGS.values() if d.applies == "log" and d.synonym is not None
}
"""Broker setting name (message.max.bytes) -> the topic config whose default it sets (max.message.bytes)."""

Layers = Sequence[tuple[ConfigSource, Mapping[str, str]]]
"""Broker-level defaults of topic configs, keyed by the topic config name, most specific layer first."""


class NotDynamicError(ValueError):
    """A broker setting that cannot change without a restart (Kafka: INVALID_REQUEST)."""


class InvalidBrokerConfigError(ValueError):
    """A dynamic setting given a value it cannot take (Kafka: INVALID_CONFIG)."""


def check_entity(name: str) -> None:
    """ "" (cluster-wide) or a broker id; ValueError otherwise."""
    if name == DEFAULT_ENTITY:
        return
    if not (name.isascii() and name.isdigit() and len(name) <= 10 and int(name) <= MAX_NODE_ID):
        raise ValueError(f"broker config entity {name[:100]!r} is neither a broker id nor '' (the default)")


def validate_broker_configs(configs: Mapping[str, str]) -> dict[str, str]:
    """Every key a dynamic broker setting, every value valid for it; returns them (values as given)."""
    static = sorted(k for k in configs if k not in DYNAMIC_BROKER_CONFIGS)
    if static:
        shown = ", ".join(k[:100] for k in static[:10])
        raise NotDynamicError(
            f"Cannot update these configs dynamically: {shown} (the broker configs that can be: "
            f"{', '.join(sorted(DYNAMIC_BROKER_CONFIGS))})"
        )
    out: dict[str, str] = {}
    for key, value in configs.items():
        try:
            DYNAMIC_BROKER_CONFIGS[key].check(value)
        except ValueError as exc:
            raise InvalidBrokerConfigError(f"Invalid value {value[:100]!r} for config {key}: {exc}") from None
        out[key] = value
    try:  # the log's own parse, as for topic configs (e.g. segment.bytes below its minimum)
        LogConfig.from_topic_configs(log_configs(as_topic_configs(out)))
    except ValueError as exc:
        raise InvalidBrokerConfigError(str(exc)) from None
    return out


def as_topic_configs(configs: Mapping[str, str]) -> dict[str, str]:
    """message.max.bytes=... -> max.message.bytes=... (dynamic broker settings only)."""
    return {DYNAMIC_BROKER_CONFIGS[k].name: v for k, v in configs.items() if k in DYNAMIC_BROKER_CONFIGS}


def layers(
    entities: Mapping[str, Mapping[str, str]], node_id: int, static: Mapping[str, str]
) -> list[tuple[ConfigSource, Mapping[str, str]]]:
    """The layers in force on broker ``node_id``: its own dynamic values, the cluster-wide ones, then its
    static settings (``static`` is keyed by topic config already)."""
    return [
        (ConfigSource.DYNAMIC_BROKER_CONFIG, as_topic_configs(entities.get(str(node_id), {}))),
        (ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG, as_topic_configs(entities.get(DEFAULT_ENTITY, {}))),
        (ConfigSource.STATIC_BROKER_CONFIG, dict(static)),
    ]


def merged(stack: Layers) -> dict[str, str]:
    """The value in force of each topic config the layers set (the most specific layer wins)."""
    out: dict[str, str] = {}
    for _, values in reversed(stack):
        out.update(values)
    return out


def entities_to_json(entities: Mapping[str, Mapping[str, str]]) -> dict[str, dict[str, str]]:
    return {e: dict(sorted(c.items())) for e, c in sorted(entities.items()) if c}


def entities_from_json(doc: object) -> dict[str, dict[str, str]]:
    """What ``entities_to_json`` wrote; ValueError naming what is wrong otherwise."""
    if not isinstance(doc, dict):
        raise ValueError("broker configs must be an object of entity -> {config: value}")
    out: dict[str, dict[str, str]] = {}
    for entity, configs in doc.items():
        check_entity(str(entity))
        if not isinstance(configs, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in configs.items()
        ):
            raise ValueError(f"broker configs of entity {str(entity)[:100]!r} must map names to strings")
        out[str(entity)] = validate_broker_configs(configs)
    return out


class LocalBrokerConfigs:
    """A broker's dynamic broker configs without replication (no controller log to keep them in): one
    atomically replaced JSON file in its data directory, read at start, so they survive a restart as in a
    cluster. Every entity is kept as given; this broker applies the cluster-wide one and its own."""

    FILE_NAME = "broker_configs.json"

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / self.FILE_NAME
        self.entities: dict[str, dict[str, str]] = {}
        if self.path.exists():
            try:
                self.entities = entities_from_json(json.loads(self.path.read_text()))
            except (OSError, ValueError) as exc:
                raise ValueError(f"{self.path} is not a valid dynamic broker config file: {exc}") from None

    def set(self, entity: str, configs: Mapping[str, str]) -> None:
        """The entity's complete set after a change (validated by the caller); empty removes it."""
        updated = {**self.entities, entity: dict(configs)}
        atomic_write(self.path, json.dumps(entities_to_json(updated), sort_keys=True).encode())
        self.entities = {e: c for e, c in updated.items() if c}
