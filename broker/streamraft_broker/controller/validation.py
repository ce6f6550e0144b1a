"""Validation of controller commands at apply time.

Every broker applies every committed controller entry, whoever proposed it: a command is checked here when
it is applied, not only when a handler builds it, so a forged or corrupt entry that reached the log (a peer
speaking Raft without authentication, a bug in an older broker) is rejected the same way on every replica
and changes nothing. The checks depend only on the command and the state it is applied to, so every
replica reaches the same verdict.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from streamraft_broker.controller.producer_ids import ALLOCATE_PRODUCER_IDS, MAX_BLOCK_SIZE

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


class InvalidCommand(ValueError):
    """A controller command that is rejected (the state is left unchanged); the message says why."""


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


def _int(cmd: dict[str, Any], key: str, lo: int, hi: int) -> int:
    value = cmd.get(key)
    # bool is an int in Python and in json.loads' output: refused, as is 1.0.
    if type(value) is not int or not lo <= value <= hi:
        raise InvalidCommand(f"{key} must be an integer in {lo}..{hi}, got {value!r}"[:300])
    return value


def _str(cmd: dict[str, Any], key: str, max_len: int, *, optional: bool = False) -> str | None:
    value = cmd.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= max_len or not value.isprintable():
        raise InvalidCommand(
            f"{key} must be a printable string of 1..{max_len} characters, got {value!r}"[:300]
        )
    return value


def _name(cmd: dict[str, Any], *, strict: bool) -> None:
    """``strict``: the topic is created here, so Kafka's rule applies; otherwise it names an existing topic
    (maybe one created before this check existed), so only its type and size are checked."""
    name: Any = cmd.get("name")
    if strict:
        try:
            validate_topic_name(name)
        except ValueError as exc:
            raise InvalidCommand(str(exc)) from None
    elif not isinstance(name, str) or len(name) > 1024:
        raise InvalidCommand(f"topic name must be a string of at most 1024 characters, got {name!r}"[:300])


def validate_replicas(replicas: Any, what: str = "replicas") -> None:
    if not isinstance(replicas, list) or not 1 <= len(replicas) <= MAX_REPLICAS:
        raise InvalidCommand(f"{what} must be a list of 1..{MAX_REPLICAS} node ids, got {replicas!r}"[:300])
    for node in replicas:
        if type(node) is not int or not 1 <= node <= MAX_NODE_ID:
            raise InvalidCommand(f"{what} holds {node!r}, not a node id in 1..{MAX_NODE_ID}"[:300])
    if len(set(replicas)) != len(replicas):
        raise InvalidCommand(f"{what} {replicas} name a node twice")


def _assignment(cmd: dict[str, Any], existing: int) -> None:
    replicas = cmd.get("replicas")
    if not isinstance(replicas, list) or not replicas:
        raise InvalidCommand("replicas must be a non-empty list (one replica list per partition)")
    if existing + len(replicas) > MAX_PARTITIONS:
        raise InvalidCommand(f"{existing + len(replicas)} partitions exceed the limit of {MAX_PARTITIONS}")
    for p, rs in enumerate(replicas):
        validate_replicas(rs, f"replicas of partition {existing + p}")


def _configs(cmd: dict[str, Any]) -> None:
    configs = cmd.get("configs")
    if not isinstance(configs, dict) or len(configs) > MAX_CONFIGS:
        raise InvalidCommand(f"configs must be an object of at most {MAX_CONFIGS} entries")
    for key, value in configs.items():
        if not isinstance(key, str) or not 0 < len(key) <= MAX_CONFIG_KEY:
            raise InvalidCommand(
                f"config name {key!r} is not a string of 1..{MAX_CONFIG_KEY} characters"[:300]
            )
        if not isinstance(value, str) or len(value) > MAX_CONFIG_VALUE:
            raise InvalidCommand(
                f"config {key!r} value is not a string of at most {MAX_CONFIG_VALUE} characters"
            )


def _raft_address(cmd: dict[str, Any]) -> None:
    address = _str(cmd, "raft", MAX_HOST + 6)
    assert address is not None
    host, sep, port = address.rpartition(":")
    if not sep or not host or " " in host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise InvalidCommand(f"raft address {address!r} is not host:port with a port in 1..65535")


def validate_command(op: object, cmd: dict[str, Any], topic_partitions: int | None) -> None:
    """Raise InvalidCommand if ``cmd`` (operation ``op``) must not be applied. ``topic_partitions`` is how
    many partitions the topic the command names has now (None: no such topic). Operations not known here
    are left to their own apply code."""
    if op == "create_topic":
        _name(cmd, strict=True)
        topic_id = cmd.get("id")
        try:
            uuid.UUID(topic_id if isinstance(topic_id, str) else "")
        except ValueError:
            raise InvalidCommand(f"topic id {topic_id!r} is not a UUID"[:300]) from None
        _assignment(cmd, 0)
        _configs(cmd)
    elif op == "delete_topic":
        _name(cmd, strict=False)
    elif op == "add_partitions":
        _name(cmd, strict=False)
        _assignment(cmd, topic_partitions or 0)
    elif op in ("register_broker", "decommission_broker", "unregister_broker"):
        _int(cmd, "id", 1, MAX_NODE_ID)
        if op == "register_broker":
            host = _str(cmd, "kafka_host", MAX_HOST)
            if host is not None and " " in host:
                raise InvalidCommand(f"kafka_host {host!r} holds a space")
            _int(cmd, "kafka_port", 1, 65535)
            _raft_address(cmd)
            _str(cmd, "rack", MAX_LABEL, optional=True)
            _str(cmd, "incarnation", MAX_LABEL)
    elif op == ALLOCATE_PRODUCER_IDS:
        _int(cmd, "broker", 1, MAX_NODE_ID)
        _str(cmd, "request", MAX_LABEL)
        size = cmd.get("size")
        if type(size) is not int or not 1 <= size <= MAX_BLOCK_SIZE:
            raise InvalidCommand(
                f"producer-id block size {size!r} is not an integer in 1..{MAX_BLOCK_SIZE}"[:300]
            )
    elif op in ("reassign", "reassigned"):
        _name(cmd, strict=False)
        _int(cmd, "partition", 0, MAX_PARTITIONS)
        if op == "reassign":
            if cmd.get("target") is not None:
                validate_replicas(cmd.get("target"), "target")
        else:
            validate_replicas(cmd.get("replicas"))
