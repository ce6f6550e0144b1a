"""Topic registry: names, ids, partition counts and configs, persisted atomically as JSON."""

from __future__ import annotations

import json
import logging
import shutil
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from streamraft_broker.log import LogConfig, PartitionLog
from streamraft_broker.log.fileio import atomic_write
from streamraft_broker.topics import partition_metadata, paths
from streamraft_broker.topics.broker_configs import Layers, merged
from streamraft_broker.topics.configs import (
    DEFAULT_MAX_MESSAGE_BYTES,
    ConfigSource,
    log_configs,
    validate_topic_configs,
)
from streamraft_broker.topics.memlog import MemoryLog
from streamraft_broker.topics.names import (
    INVALID_TOPIC_EXCEPTION,
    MAX_TOPIC_NAME_LENGTH,
    topic_name_problem,
)
from streamraft_broker.topics.partition import Partition

log = logging.getLogger(__name__)

MAX_TOPIC_NAME = MAX_TOPIC_NAME_LENGTH
MAX_PARTITIONS = 10_000


class TopicError(Exception):
    """Carries the Kafka error code to answer with and a message naming what was wrong."""

    def __init__(self, error_code: int, message: str) -> None:
        super().__init__(message)
        self.error_code = error_code


# Kafka error codes used here.
UNKNOWN_TOPIC_OR_PARTITION = 3
TOPIC_ALREADY_EXISTS = 36
INVALID_PARTITIONS = 37
INVALID_REPLICATION_FACTOR = 38
INVALID_CONFIG = 40


def validate_topic_name(name: str) -> None:
    """Kafka's rule (topics/names.py) as a TopicError(INVALID_TOPIC_EXCEPTION) for request handlers."""
    problem = topic_name_problem(name)
    if problem is not None:
        raise TopicError(INVALID_TOPIC_EXCEPTION, problem)


@dataclass
class Topic:
    name: str
    topic_id: uuid.UUID
    configs: dict[str, str]
    partitions: list[Partition] = field(default_factory=list)
    internal: bool = False


def _open_log(directory: Path, configs: dict[str, str]) -> PartitionLog:
    return PartitionLog.open(directory, LogConfig.from_topic_configs(log_configs(configs)))


def _validated(configs: dict[str, str | None]) -> dict[str, str]:
    """Our config table first (names every known key), then the log's own parse of the values it uses."""
    try:
        clean = validate_topic_configs(configs)
        LogConfig.from_topic_configs(log_configs(clean))
    except ValueError as exc:
        raise TopicError(INVALID_CONFIG, str(exc)) from None
    return clean


class TopicRegistry:
    def __init__(self, data_dir: Path, *, in_memory: bool = False) -> None:
        self.data_dir = data_dir
        self._meta_path = data_dir / "topics.json"
        self._in_memory = in_memory
        if in_memory:
            log.warning("partition logs are in memory: nothing survives a restart")
        self.topics: dict[str, Topic] = {}
        self.broker_defaults: dict[str, str] = {}
        """Broker-level defaults of topic configs (message.max.bytes -> max.message.bytes) for topics that
        set none of their own; a topic's own value always wins. The merge of ``broker_layers``."""
        self.static_defaults: dict[str, str] = {}
        """The broker's static settings that are topic-config defaults, keyed by topic config."""
        self.broker_layers: Layers = []
        """Where each broker default comes from, most specific first (``topics.broker_configs``)."""
        self._listeners: list[Callable[[str, Topic | None], None]] = []

    def on_change(self, listener: Callable[[str, Topic | None], None]) -> None:
        self._listeners.append(listener)

    # -- persistence ------------------------------------------------------------------------------------
    def load(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if not self._meta_path.exists():
            return
        try:
            raw = json.loads(self._meta_path.read_text())
        except (OSError, ValueError) as exc:
            raise RuntimeError(f"cannot read topic metadata {self._meta_path}: {exc}") from exc
        for name, entry in raw["topics"].items():
            try:
                self.partition_dir(name, 0)
            except paths.UnsafePath as exc:
                log.error("event=topic_skipped reason=unsafe_path error=%r", str(exc))
                continue
            topic = Topic(
                name, uuid.UUID(entry["id"]), dict(entry["configs"]), internal=entry.get("internal", False)
            )
            for i in range(int(entry["partitions"])):
                topic.partitions.append(self._open_partition(topic, i))
            self.topics[name] = topic
        log.info("loaded topics", extra={"topics": len(self.topics)})

    def _save(self) -> None:
        data = {
            "topics": {
                t.name: {
                    "id": str(t.topic_id),
                    "partitions": len(t.partitions),
                    "configs": t.configs,
                    "internal": t.internal,
                }
                for t in self.topics.values()
            }
        }
        atomic_write(self._meta_path, json.dumps(data, indent=1, sort_keys=True).encode())

    def _partition_dir(self, topic: Topic, index: int) -> Path:
        return self.partition_dir(topic.name, index)

    def partition_dir(self, name: str, index: int) -> Path:
        """A partition's directory; raises UnsafePath (a ValueError) if it would leave the data dir."""
        return paths.partition_dir(self.data_dir, name, index)

    def _open_partition(self, topic: Topic, index: int) -> Partition:
        if self._in_memory:
            mem = MemoryLog(log_append_time=topic.configs.get("message.timestamp.type") == "LogAppendTime")
            return Partition(topic.name, index, mem)
        directory = self._partition_dir(topic, index)
        fresh = not directory.exists()
        directory.mkdir(parents=True, exist_ok=True)
        if fresh:
            partition_metadata.write_topic_id(directory, topic.topic_id)
        return Partition(topic.name, index, _open_log(directory, self.effective(topic)))

    def reopen_log(self, partition: Partition) -> None:
        """Open ``partition``'s directory again (recovering it) in place of its current log, which is
        dropped unwritten: after a storage error only what is on disk is trusted."""
        topic = self.topics[partition.topic]
        partition.log.abandon()
        partition.log = _open_log(self._partition_dir(topic, partition.index), self.effective(topic))

    def set_static_defaults(self, defaults: Mapping[str, str]) -> None:
        """The broker's static settings that set topic-config defaults (keyed by topic config)."""
        self.static_defaults = dict(defaults)
        self.set_broker_layers([(ConfigSource.STATIC_BROKER_CONFIG, self.static_defaults)])

    def set_broker_layers(self, layers: Layers) -> None:
        """New broker-level defaults (dynamic broker configs changed): every open partition log of a topic
        takes its new effective config in place, as after a topic-level AlterConfigs."""
        before = self.broker_defaults
        self.broker_layers = list(layers)
        self.broker_defaults = merged(self.broker_layers)
        if self.broker_defaults == before:
            return
        for topic in list(self.topics.values()):
            self.apply_log_config(topic)

    def log_config(self, topic: Topic) -> LogConfig:
        return LogConfig.from_topic_configs(log_configs(self.effective(topic)))

    def apply_log_config(self, topic: Topic) -> None:
        """The topic's open partition logs take its effective config (topic overrides + broker defaults)."""
        config = self.log_config(topic)
        for p in topic.partitions:
            if not p.is_memory and not p.log.closed:
                p.log.update_config(config)

    # -- operations ---------------------------------------------------------------------------------------
    def effective(self, topic: Topic) -> dict[str, str]:
        """The topic's own configs over the broker's defaults."""
        return {**self.broker_defaults, **topic.configs}

    def max_message_bytes(self, topic: Topic) -> int:
        return int(self.effective(topic).get("max.message.bytes", DEFAULT_MAX_MESSAGE_BYTES))

    def get(self, name: str) -> Topic | None:
        return self.topics.get(name)

    def partition(self, name: str, index: int) -> Partition | None:
        topic = self.topics.get(name)
        if topic is None or not 0 <= index < len(topic.partitions):
            return None
        return topic.partitions[index]

    def check_create(
        self, name: str, num_partitions: int, replication: int, configs: dict[str, str | None]
    ) -> dict[str, str]:
        validate_topic_name(name)
        if name in self.topics:
            raise TopicError(TOPIC_ALREADY_EXISTS, f"topic {name!r} already exists")
        if not 1 <= num_partitions <= MAX_PARTITIONS:
            raise TopicError(
                INVALID_PARTITIONS, f"partition count {num_partitions} not in 1..{MAX_PARTITIONS}"
            )
        if replication != 1:
            raise TopicError(
                INVALID_REPLICATION_FACTOR,
                f"replication factor {replication} is impossible on one broker",
            )
        return _validated(configs)

    def create(
        self,
        name: str,
        num_partitions: int,
        replication: int,
        configs: dict[str, str | None],
        *,
        internal: bool = False,
    ) -> Topic:
        clean = self.check_create(name, num_partitions, replication, configs)
        topic = Topic(name, uuid.uuid4(), clean, internal=internal)
        for i in range(num_partitions):
            topic.partitions.append(self._open_partition(topic, i))
        self.topics[name] = topic
        self._save()
        for listener in self._listeners:
            listener(name, topic)
        log.info("created topic", extra={"topic": name, "partitions": num_partitions})
        return topic

    def delete(self, name: str) -> None:
        topic = self.topics.pop(name, None)
        if topic is None:
            raise TopicError(UNKNOWN_TOPIC_OR_PARTITION, f"topic {name!r} does not exist")
        self._save()
        for p in topic.partitions:
            p.close()
            shutil.rmtree(self._partition_dir(topic, p.index), ignore_errors=True)
        for listener in self._listeners:
            listener(name, None)
        log.info("deleted topic", extra={"topic": name})

    def add_partitions(self, name: str, total: int) -> None:
        topic = self.topics.get(name)
        if topic is None:
            raise TopicError(UNKNOWN_TOPIC_OR_PARTITION, f"topic {name!r} does not exist")
        if total <= len(topic.partitions):
            raise TopicError(
                INVALID_PARTITIONS,
                f"topic {name!r} has {len(topic.partitions)} partitions; {total} is not more",
            )
        if total > MAX_PARTITIONS:
            raise TopicError(INVALID_PARTITIONS, f"partition count {total} exceeds {MAX_PARTITIONS}")
        for i in range(len(topic.partitions), total):
            topic.partitions.append(self._open_partition(topic, i))
        self._save()

    def check_configs(self, configs: dict[str, str]) -> None:
        _validated(dict(configs))

    def set_configs(self, name: str, configs: dict[str, str]) -> None:
        topic = self.topics.get(name)
        if topic is None:
            raise TopicError(UNKNOWN_TOPIC_OR_PARTITION, f"topic {name!r} does not exist")
        topic.configs = _validated(dict(configs))
        self._save()
        self.apply_log_config(topic)

    def apply_retention(self) -> int:
        """Delete segments past retention on every partition; returns how many went."""
        deleted = 0
        for topic in list(self.topics.values()):
            for p in topic.partitions:
                # A partition whose log is its Raft log is retained through Raft (a snapshot first).
                if not p.is_memory and p.raft_storage is None:
                    deleted += int(p.log.apply_retention())
        return deleted

    def flush_all(self) -> None:
        for topic in self.topics.values():
            for p in topic.partitions:
                p.flush()

    def close(self) -> None:
        for topic in self.topics.values():
            for p in topic.partitions:
                p.close()
