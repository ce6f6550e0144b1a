"""Validation of controller commands at apply time.

Every broker applies every committed controller entry, whoever proposed it: a command is checked here when
it is applied, not only when a handler builds it, so a forged or corrupt entry that reached the log (a peer
speaking Raft without authentication, a bug in an older broker) is rejected the same way on every replica
and changes nothing. The checks depend only on the command and the state it is applied to, so every
replica reaches the same verdict. Types and shapes are checked earlier, by ``controller.commands.decode``;
these are the checks of the typed values.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from streamraft_broker.controller.commands import (
    AddPartitions,
    AllocateProducerIds,
    AlterBrokerConfigs,
    Command,
    CreateTopic,
    DecommissionBroker,
    DeleteTopic,
    InvalidCommand,
    Reassign,
    Reassigned,
    RegisterBroker,
    UnregisterBroker,
)
from streamraft_broker.controller.producer_ids import MAX_BLOCK_SIZE
from streamraft_broker.topics.broker_configs import validate_broker_configs

__all__ = ["InvalidCommand", "validate_command", "validate_replicas", "validate_topic_name"]

MAX_TOPIC_NAME = 249
"""Kafka's limit (a partition directory name adds "-<partition>" and must fit a file name)."""
_LEGAL_TOPIC = re.compile(r"[a-zA-Z0-9._-]+")
MAX_PARTITIONS = 10_000
"""Partitions of one topic (each is a Raft group on each of its replicas)."""
MAX_REPLICAS = 256
MAX_NODE_ID = (1 << 31) - 1
"""Kafka broker ids are int32; Raft node ids start at 1."""
MAX_CONFIGS = 1_000
MAX_CONFIG_KEY = 255
MAX_CONFIG_VALUE = 1 << 16
MAX_HOST = 255
MAX_LABEL = 255
"""Racks and incarnation ids."""


def validate_topic_name(name: str) -> None:
    """Kafka's rule: 1..249 of ASCII letters, digits, '.', '_', '-', and neither "." nor "..". Raises
    ValueError naming what is wrong."""
    if not isinstance(name, str):
        raise ValueError(f"topic name must be a string, got {type(name).__name__}")
    if not name or name in (".", ".."):
        raise ValueError(f"topic name {name!r} is not allowed")
    if len(name) > MAX_TOPIC_NAME:
        raise ValueError(f"topic name is longer than {MAX_TOPIC_NAME} characters")
    if not _LEGAL_TOPIC.fullmatch(name):
        raise ValueError(f"topic name {name[:MAX_TOPIC_NAME]!r} may only hold ASCII letters, digits, . _ -")


def _int(value: int, key: str, lo: int, hi: int) -> int:
    if not lo <= value <= hi:
        raise InvalidCommand(f"{key} must be an integer in {lo}..{hi}, got {value!r}"[:300])
    return value


def _str(value: str | None, key: str, max_len: int, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if value is None or not 0 < len(value) <= max_len or not value.isprintable():
        raise InvalidCommand(
            f"{key} must be a printable string of 1..{max_len} characters, got {value!r}"[:300]
        )


def _name(name: str, *, strict: bool) -> None:
    """``strict``: the topic is created here, so Kafka's rule applies; otherwise it names an existing topic
    (maybe one created before this check existed), so only its size is checked."""
    if strict:
        try:
            validate_topic_name(name)
        except ValueError as exc:
            raise InvalidCommand(str(exc)) from None
    elif len(name) > 1024:
        raise InvalidCommand(f"topic name must be a string of at most 1024 characters, got {name!r}"[:300])


def validate_replicas(replicas: Sequence[int], what: str = "replicas") -> None:
    if not 1 <= len(replicas) <= MAX_REPLICAS:
        raise InvalidCommand(
            f"{what} must be a list of 1..{MAX_REPLICAS} node ids, got {list(replicas)!r}"[:300]
        )
    for node in replicas:
        if not 1 <= node <= MAX_NODE_ID:
            raise InvalidCommand(f"{what} holds {node!r}, not a node id in 1..{MAX_NODE_ID}"[:300])
    if len(set(replicas)) != len(replicas):
        raise InvalidCommand(f"{what} {list(replicas)} name a node twice")


def _assignment(replicas: Sequence[Sequence[int]], existing: int) -> None:
    if not replicas:
        raise InvalidCommand("replicas must be a non-empty list (one replica list per partition)")
    if existing + len(replicas) > MAX_PARTITIONS:
        raise InvalidCommand(f"{existing + len(replicas)} partitions exceed the limit of {MAX_PARTITIONS}")
    for p, rs in enumerate(replicas):
        validate_replicas(rs, f"replicas of partition {existing + p}")


def _configs(configs: dict[str, str]) -> None:
    if len(configs) > MAX_CONFIGS:
        raise InvalidCommand(f"configs must be an object of at most {MAX_CONFIGS} entries")
    for key, value in configs.items():
        if not 0 < len(key) <= MAX_CONFIG_KEY:
            raise InvalidCommand(
                f"config name {key!r} is not a string of 1..{MAX_CONFIG_KEY} characters"[:300]
            )
        if len(value) > MAX_CONFIG_VALUE:
            raise InvalidCommand(
                f"config {key!r} value is not a string of at most {MAX_CONFIG_VALUE} characters"
            )


def _raft_address(address: str) -> None:
    _str(address, "raft", MAX_HOST + 6)
    host, sep, port = address.rpartition(":")
    if not sep or not host or " " in host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise InvalidCommand(f"raft address {address!r} is not host:port with a port in 1..65535")


def validate_command(cmd: Command, topic_partitions: int | None) -> None:
    """Raise InvalidCommand if ``cmd`` must not be applied. ``topic_partitions`` is how many partitions the
    topic the command names has now (None: no such topic). Commands not checked here are checked by
    their own apply code (ACLs, quotas, credentials)."""
    match cmd:
        case CreateTopic(name, _, replicas, configs):
            _name(name, strict=True)
            _assignment(replicas, 0)
            _configs(configs)
        case DeleteTopic(name):
            _name(name, strict=False)
        case AddPartitions(name, replicas):
            _name(name, strict=False)
            _assignment(replicas, topic_partitions or 0)
        case DecommissionBroker(node_id) | UnregisterBroker(node_id):
            _int(node_id, "id", 1, MAX_NODE_ID)
        case RegisterBroker(node_id, kafka_host, kafka_port, raft_address, rack, incarnation, _):
            _int(node_id, "id", 1, MAX_NODE_ID)
            _str(kafka_host, "kafka_host", MAX_HOST)
            if " " in kafka_host:
                raise InvalidCommand(f"kafka_host {kafka_host!r} holds a space")
            _int(kafka_port, "kafka_port", 1, 65535)
            _raft_address(raft_address)
            _str(rack, "rack", MAX_LABEL, optional=True)
            _str(incarnation, "incarnation", MAX_LABEL)
        case AllocateProducerIds(broker, request_id, size):
            _int(broker, "broker", 1, MAX_NODE_ID)
            _str(request_id, "request", MAX_LABEL)
            if not 1 <= size <= MAX_BLOCK_SIZE:
                raise InvalidCommand(
                    f"producer-id block size {size!r} is not an integer in 1..{MAX_BLOCK_SIZE}"[:300]
                )
        case Reassign(name, partition, target):
            _name(name, strict=False)
            _int(partition, "partition", 0, MAX_PARTITIONS)
            if target is not None:
                validate_replicas(target, "target")
        case Reassigned(name, partition, replicas):
            _name(name, strict=False)
            _int(partition, "partition", 0, MAX_PARTITIONS)
            validate_replicas(replicas)
        case AlterBrokerConfigs(_, configs):
            try:
                validate_broker_configs(configs)
            except ValueError as exc:
                raise InvalidCommand(str(exc)[:300]) from None
        case _:
            pass
