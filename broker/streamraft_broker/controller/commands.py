"""The controller log's commands: one frozen dataclass per operation, and their one encoding.

Each Raft entry of the controller group is one command, JSON with sorted keys: ``"op"`` names the
dataclass, ``"version"`` the schema version of that op, the other keys its fields. ``encode`` writes a
command; ``decode`` reads one back, checking every field's type and size, and raises ``InvalidCommand``
(a ValueError) naming the field for anything else: not JSON, an unknown op or version, a missing field, a
wrong type, a list longer than ``MAX_ITEMS``. The apply path rejects such an entry exactly like one that
fails ``controller.validation`` (semantic checks: names, ids, counts), so a forged or corrupt entry never
stops the controller group.

Versioning rule: entries written before the version field existed have none and are version 1 (the
field layout of version 1 is what they hold). Changing an op's fields in a way an older decoder would
misread bumps that op's ``VERSION``; its decoder keeps reading every older version, so existing logs and
data directories still load. A broker rejects a version newer than it knows (an invalid command, the same
on every broker of that build), so a new version is only proposed once every broker reads it. A new
optional field that older brokers may ignore does not need a new version (as ``listeners`` of
``register_broker``, omitted when empty).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import ClassVar, Final, TypeAlias

from streamraft_broker.controller.producer_ids import ALLOCATE_PRODUCER_IDS
from streamraft_broker.quotas.entities import ALTER_CLIENT_QUOTAS, Alteration
from streamraft_broker.security.acl import CREATE_ACLS, DELETE_ACLS, AclBinding, validate_binding
from streamraft_broker.security.scram import ScramCredential
from streamraft_broker.topics.broker_configs import check_entity

UPSERT_SCRAM = "upsert_scram_credential"
DELETE_SCRAM = "delete_scram_credential"
VERSION_KEY = "version"
_PARTITION_KEY = re.compile(r"-?[0-9]{1,10}")
MAX_ITEMS = 100_000
"""Entries of any one list or object in a command; more is refused before anything is built from it
(the Raft entry size bounds the bytes, this bounds the work of decoding them)."""

JsonValue: TypeAlias = "bool | int | float | str | list[JsonValue] | dict[str, JsonValue] | None"
JsonObject: TypeAlias = "dict[str, JsonValue]"


class InvalidCommand(ValueError):
    """A controller command that is rejected (the state is left unchanged); the message says why."""


# ---------------------------------------------------------------------------------------------- commands


@dataclass(frozen=True)
class CreateTopic:
    OP: ClassVar[str] = "create_topic"
    VERSION: ClassVar[int] = 1
    name: str
    topic_id: uuid.UUID
    replicas: tuple[tuple[int, ...], ...]
    configs: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DeleteTopic:
    OP: ClassVar[str] = "delete_topic"
    VERSION: ClassVar[int] = 1
    name: str


@dataclass(frozen=True)
class AddPartitions:
    OP: ClassVar[str] = "add_partitions"
    VERSION: ClassVar[int] = 1
    name: str
    replicas: tuple[tuple[int, ...], ...]
    """The new partitions' replicas, in partition order after the existing ones."""


@dataclass(frozen=True)
class DeleteRecords:
    """DeleteRecords: move these partitions' log start forward (never back) to the given offsets."""

    OP: ClassVar[str] = "delete_records"
    VERSION: ClassVar[int] = 1
    name: str
    topic_id: uuid.UUID
    log_start: dict[int, int]


@dataclass(frozen=True)
class AlterConfigs:
    """IncrementalAlterConfigs: the topic's complete config overrides after the change."""

    OP: ClassVar[str] = "alter_configs"
    VERSION: ClassVar[int] = 1
    name: str
    topic_id: uuid.UUID
    configs: dict[str, str]


@dataclass(frozen=True)
class AlterBrokerConfigs:
    """Dynamic broker configs (kafka-configs --entity-type brokers): the entity's complete set of dynamic
    values after the change; ``entity`` is "" (cluster-wide) or a broker id. Values are validated when
    applied (``topics.broker_configs.validate_broker_configs``), the same on every broker."""

    OP: ClassVar[str] = "alter_broker_configs"
    VERSION: ClassVar[int] = 1
    entity: str
    configs: dict[str, str]


@dataclass(frozen=True)
class RegisterBroker:
    OP: ClassVar[str] = "register_broker"
    VERSION: ClassVar[int] = 1
    node_id: int
    kafka_host: str
    kafka_port: int
    raft_address: str
    rack: str | None
    incarnation: str
    listeners: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DecommissionBroker:
    OP: ClassVar[str] = "decommission_broker"
    VERSION: ClassVar[int] = 1
    node_id: int


@dataclass(frozen=True)
class UnregisterBroker:
    OP: ClassVar[str] = "unregister_broker"
    VERSION: ClassVar[int] = 1
    node_id: int


@dataclass(frozen=True)
class Reassign:
    """Start (or with ``target`` None cancel) moving a partition to ``target``."""

    OP: ClassVar[str] = "reassign"
    VERSION: ClassVar[int] = 1
    name: str
    partition: int
    target: tuple[int, ...] | None


@dataclass(frozen=True)
class Reassigned:
    OP: ClassVar[str] = "reassigned"
    VERSION: ClassVar[int] = 1
    name: str
    partition: int
    replicas: tuple[int, ...]


@dataclass(frozen=True)
class AllocateProducerIds:
    """``request_id`` lets the proposer tell its own grant from an earlier one to the same broker."""

    OP: ClassVar[str] = ALLOCATE_PRODUCER_IDS
    VERSION: ClassVar[int] = 1
    broker: int
    request_id: str
    size: int


@dataclass(frozen=True)
class CreateAcls:
    OP: ClassVar[str] = CREATE_ACLS
    VERSION: ClassVar[int] = 1
    bindings: tuple[AclBinding, ...]


@dataclass(frozen=True)
class DeleteAcls:
    """Names exact bindings, not filters, so the answer computed before proposing is what every broker
    removes."""

    OP: ClassVar[str] = DELETE_ACLS
    VERSION: ClassVar[int] = 1
    bindings: tuple[AclBinding, ...]


@dataclass(frozen=True)
class AlterClientQuotas:
    """Entities and keys as given: ``ClientQuotas.apply`` validates them (all or nothing)."""

    OP: ClassVar[str] = ALTER_CLIENT_QUOTAS
    VERSION: ClassVar[int] = 1
    alterations: tuple[Alteration, ...]


@dataclass(frozen=True)
class UpsertScramCredential:
    OP: ClassVar[str] = UPSERT_SCRAM
    VERSION: ClassVar[int] = 1
    user: str
    mechanism: str
    credential: ScramCredential


@dataclass(frozen=True)
class DeleteScramCredential:
    OP: ClassVar[str] = DELETE_SCRAM
    VERSION: ClassVar[int] = 1
    user: str
    mechanism: str


Command: TypeAlias = (
    CreateTopic
    | DeleteTopic
    | AddPartitions
    | DeleteRecords
    | AlterConfigs
    | AlterBrokerConfigs
    | RegisterBroker
    | DecommissionBroker
    | UnregisterBroker
    | Reassign
    | Reassigned
    | AllocateProducerIds
    | CreateAcls
    | DeleteAcls
    | AlterClientQuotas
    | UpsertScramCredential
    | DeleteScramCredential
)
ScramCommand: TypeAlias = UpsertScramCredential | DeleteScramCredential
AclCommand: TypeAlias = CreateAcls | DeleteAcls


def assignment(replicas: Iterable[Iterable[int]]) -> tuple[tuple[int, ...], ...]:
    """Replica lists (one per partition) as a command holds them."""
    return tuple(tuple(rs) for rs in replicas)


# ---------------------------------------------------------------------------------------------- encoding


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _binding_json(b: AclBinding) -> JsonObject:
    return {
        "resource_type": int(b.resource_type),
        "name": b.name,
        "pattern_type": int(b.pattern_type),
        "principal": b.principal,
        "host": b.host,
        "operation": int(b.operation),
        "permission": int(b.permission),
    }


def _replicas_json(replicas: tuple[tuple[int, ...], ...]) -> list[JsonValue]:
    return [list[JsonValue](rs) for rs in replicas]


def _fields(command: Command) -> JsonObject:
    match command:
        case CreateTopic(name, topic_id, replicas, configs):
            return {
                "name": name,
                "id": str(topic_id),
                "replicas": _replicas_json(replicas),
                "configs": dict[str, JsonValue](configs),
            }
        case DeleteTopic(name):
            return {"name": name}
        case AddPartitions(name, replicas):
            return {"name": name, "replicas": _replicas_json(replicas)}
        case DeleteRecords(name, topic_id, log_start):
            # JSON object keys are strings; the partition index is read back as an int.
            return {"name": name, "id": str(topic_id), "log_start": {str(p): o for p, o in log_start.items()}}
        case AlterConfigs(name, topic_id, configs):
            return {"name": name, "id": str(topic_id), "configs": dict[str, JsonValue](configs)}
        case AlterBrokerConfigs(entity, configs):
            return {"entity": entity, "configs": dict[str, JsonValue](configs)}
        case RegisterBroker(node_id, kafka_host, kafka_port, raft_address, rack, incarnation, listeners):
            out: JsonObject = {
                "id": node_id,
                "kafka_host": kafka_host,
                "kafka_port": kafka_port,
                "raft": raft_address,
                "rack": rack,
                "incarnation": incarnation,
            }
            if listeners:  # only when there are some: as written before listeners existed
                out["listeners"] = dict[str, JsonValue](listeners)
            return out
        case DecommissionBroker(node_id) | UnregisterBroker(node_id):
            return {"id": node_id}
        case Reassign(name, partition, target):
            return {"name": name, "partition": partition, "target": None if target is None else list(target)}
        case Reassigned(name, partition, replicas):
            return {"name": name, "partition": partition, "replicas": list[JsonValue](replicas)}
        case AllocateProducerIds(broker, request_id, size):
            return {"broker": broker, "request": request_id, "size": size}
        case CreateAcls(bindings) | DeleteAcls(bindings):
            return {"acls": [_binding_json(b) for b in bindings]}
        case AlterClientQuotas(alterations):
            return {
                "entries": [
                    {
                        "entity": [[kind, name] for kind, name in a.entity],
                        "ops": [[key, value] for key, value in a.ops],
                    }
                    for a in alterations
                ]
            }
        case UpsertScramCredential(user, mechanism, credential):
            return {
                "user": user,
                "mechanism": mechanism,
                "salt": _b64(credential.salt),
                "stored_key": _b64(credential.stored_key),
                "server_key": _b64(credential.server_key),
                "iterations": credential.iterations,
            }
        case DeleteScramCredential(user, mechanism):
            return {"user": user, "mechanism": mechanism}


def encode(command: Command) -> bytes:
    """The command's controller-log entry."""
    doc = _fields(command)
    doc["op"] = command.OP
    doc[VERSION_KEY] = command.VERSION
    return json.dumps(doc, sort_keys=True).encode()


# ---------------------------------------------------------------------------------------------- decoding


def _show(value: JsonValue) -> str:
    return repr(value)[:100]


class _Fields:
    """Typed reads of one command's JSON object; every failure names the op and the field."""

    def __init__(self, op: str, doc: JsonObject) -> None:
        self.op = op
        self.doc = doc

    def fail(self, message: str) -> InvalidCommand:
        return InvalidCommand(f"{self.op}: {message}")

    def get(self, key: str, label: str) -> JsonValue:
        if key not in self.doc:
            raise self.fail(f"{label} ({key!r}) is missing")
        return self.doc[key]

    def string(self, key: str, label: str) -> str:
        value = self.get(key, label)
        if not isinstance(value, str):
            raise self.fail(f"{label} must be a string, got {_show(value)}")
        return value

    def optional_string(self, key: str, label: str) -> str | None:
        value = self.doc.get(key)  # absent is null, as read before commands were typed
        if value is not None and not isinstance(value, str):
            raise self.fail(f"{label} must be a string or null, got {_show(value)}")
        return value

    def integer(self, key: str, label: str) -> int:
        return self.as_int(self.get(key, label), label)

    def as_int(self, value: JsonValue, label: str) -> int:
        # bool is an int in Python and in json.loads' output: refused, as is 1.0.
        if type(value) is not int:
            raise self.fail(f"{label} must be an integer, got {_show(value)}")
        return value

    def items(self, value: JsonValue, label: str) -> list[JsonValue]:
        if not isinstance(value, list):
            raise self.fail(f"{label} must be a list, got {_show(value)}")
        if len(value) > MAX_ITEMS:
            raise self.fail(f"{label} holds {len(value)} items, more than {MAX_ITEMS}")
        return value

    def obj(self, value: JsonValue, label: str) -> JsonObject:
        if not isinstance(value, dict):
            raise self.fail(f"{label} must be an object, got {_show(value)}")
        if len(value) > MAX_ITEMS:
            raise self.fail(f"{label} holds {len(value)} entries, more than {MAX_ITEMS}")
        return value

    def node_ids(self, value: JsonValue, label: str) -> tuple[int, ...]:
        if not isinstance(value, list):
            raise self.fail(f"{label} must be a list of node ids, got {_show(value)}")
        nodes = self.items(value, label)
        for node in nodes:
            if type(node) is not int:
                raise self.fail(f"{label} holds {_show(node)}, not a node id (an integer)")
        return tuple(n for n in nodes if type(n) is int)

    def assignment(self, key: str) -> tuple[tuple[int, ...], ...]:
        rows = self.items(self.get(key, "replicas"), "replicas")
        return tuple(self.node_ids(rs, f"replicas of partition {p}") for p, rs in enumerate(rows))

    def str_map(self, key: str, label: str, *, default: bool = False) -> dict[str, str]:
        if default and key not in self.doc:
            return {}
        out: dict[str, str] = {}
        for k, v in self.obj(self.get(key, label), label).items():
            if not isinstance(v, str):
                raise self.fail(f"{label} {k[:100]!r} value is not a string: {_show(v)}")
            out[k] = v
        return out

    def topic_id(self) -> uuid.UUID:
        value = self.get("id", "topic id")
        try:
            return uuid.UUID(value if isinstance(value, str) else "")
        except ValueError:
            raise self.fail(f"topic id {_show(value)} is not a UUID") from None

    def base64(self, key: str) -> bytes:
        text = self.string(key, key)
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise self.fail(f"{key} is not base64") from None

    def binding(self, value: JsonValue, index: int) -> AclBinding:
        doc = self.obj(value, f"ACL binding {index}")
        sub = _Fields(f"{self.op}: ACL binding {index}", doc)
        try:
            return validate_binding(
                sub.integer("resource_type", "resource_type"),
                sub.string("name", "name"),
                sub.integer("pattern_type", "pattern_type"),
                sub.string("principal", "principal"),
                sub.string("host", "host"),
                sub.integer("operation", "operation"),
                sub.integer("permission", "permission"),
            )
        except InvalidCommand:
            raise
        except ValueError as exc:  # AclError: a binding Kafka would refuse
            raise self.fail(f"ACL binding {index}: {exc}") from None

    def alteration(self, value: JsonValue, index: int) -> Alteration:
        entry = self.obj(value, f"quota entry {index}")
        sub = _Fields(f"{self.op}: quota entry {index}", entry)
        entity: list[tuple[str, str | None]] = []
        for component in sub.items(sub.get("entity", "entity"), "entity"):
            pair = sub.items(component, "entity component")
            kind, name = pair if len(pair) == 2 else (None, None)
            if not isinstance(kind, str) or not (name is None or isinstance(name, str)):
                raise sub.fail(f"entity component {_show(component)} is not [type, name or null]")
            entity.append((kind, name))
        ops: list[tuple[str, float | None]] = []
        for op in sub.items(sub.get("ops", "ops"), "ops"):
            pair = sub.items(op, "quota op")
            key, number = pair if len(pair) == 2 else (None, None)
            if not isinstance(key, str):
                raise sub.fail(f"quota op {_show(op)} is not [key, value or null]")
            if number is None:
                ops.append((key, None))
            elif type(number) in (int, float):
                assert isinstance(number, int | float)
                try:
                    ops.append((key, float(number)))
                except OverflowError:  # an integer beyond float's range
                    raise sub.fail(f"quota {key[:100]!r} value is out of range") from None
            else:
                raise sub.fail(f"quota {key[:100]!r} value must be a number or null, got {_show(number)}")
        return Alteration(tuple(entity), tuple(ops))


def _decode_v1(op: str, f: _Fields) -> Command:
    if op == CreateTopic.OP:
        name = f.string("name", "topic name")
        topic_id = f.topic_id()
        return CreateTopic(name, topic_id, f.assignment("replicas"), f.str_map("configs", "configs"))
    if op == DeleteTopic.OP:
        return DeleteTopic(f.string("name", "topic name"))
    if op == AddPartitions.OP:
        return AddPartitions(f.string("name", "topic name"), f.assignment("replicas"))
    if op == DeleteRecords.OP:
        name = f.string("name", "topic name")
        topic_id = f.topic_id()
        log_start: dict[int, int] = {}
        for p, offset in f.obj(f.get("log_start", "log_start"), "log_start").items():
            # Read with int() before: a key outside the topic's partitions is skipped when applied.
            if not _PARTITION_KEY.fullmatch(p):
                raise f.fail(f"log_start partition {p[:100]!r} is not a partition index")
            log_start[int(p)] = f.as_int(offset, f"log_start of partition {p}")
        return DeleteRecords(name, topic_id, log_start)
    if op == AlterConfigs.OP:
        name = f.string("name", "topic name")
        return AlterConfigs(name, f.topic_id(), f.str_map("configs", "configs"))
    if op == AlterBrokerConfigs.OP:
        entity = f.string("entity", "entity")
        try:
            check_entity(entity)
        except ValueError as exc:
            raise f.fail(str(exc)) from None
        return AlterBrokerConfigs(entity, f.str_map("configs", "configs"))
    if op == RegisterBroker.OP:
        return RegisterBroker(
            f.integer("id", "id"),
            f.string("kafka_host", "kafka_host"),
            f.integer("kafka_port", "kafka_port"),
            f.string("raft", "raft address"),
            f.optional_string("rack", "rack"),
            f.string("incarnation", "incarnation"),
            f.str_map("listeners", "listeners", default=True),
        )
    if op == DecommissionBroker.OP:
        return DecommissionBroker(f.integer("id", "id"))
    if op == UnregisterBroker.OP:
        return UnregisterBroker(f.integer("id", "id"))
    if op == Reassign.OP:
        name = f.string("name", "topic name")
        partition = f.integer("partition", "partition")
        target = f.get("target", "target")
        return Reassign(name, partition, None if target is None else f.node_ids(target, "target"))
    if op == Reassigned.OP:
        name = f.string("name", "topic name")
        partition = f.integer("partition", "partition")
        return Reassigned(name, partition, f.node_ids(f.get("replicas", "replicas"), "replicas"))
    if op == AllocateProducerIds.OP:
        return AllocateProducerIds(
            f.integer("broker", "broker"), f.string("request", "request"), f.integer("size", "block size")
        )
    if op in (CreateAcls.OP, DeleteAcls.OP):
        rows = f.items(f.get("acls", "acls"), "acls")
        bindings = tuple(f.binding(b, i) for i, b in enumerate(rows))
        return CreateAcls(bindings) if op == CreateAcls.OP else DeleteAcls(bindings)
    if op == AlterClientQuotas.OP:
        rows = f.items(f.get("entries", "entries"), "entries")
        return AlterClientQuotas(tuple(f.alteration(e, i) for i, e in enumerate(rows)))
    if op == UpsertScramCredential.OP:
        user, mechanism = f.string("user", "user"), f.string("mechanism", "mechanism")
        credential = ScramCredential(
            f.base64("salt"),
            f.base64("stored_key"),
            f.base64("server_key"),
            f.integer("iterations", "iterations"),
        )
        return UpsertScramCredential(user, mechanism, credential)
    if op == DeleteScramCredential.OP:
        return DeleteScramCredential(f.string("user", "user"), f.string("mechanism", "mechanism"))
    raise f.fail("unknown controller command")


_LATEST: Final[dict[str, int]] = {
    c.OP: c.VERSION
    for c in (
        CreateTopic,
        DeleteTopic,
        AddPartitions,
        DeleteRecords,
        AlterConfigs,
        AlterBrokerConfigs,
        RegisterBroker,
        DecommissionBroker,
        UnregisterBroker,
        Reassign,
        Reassigned,
        AllocateProducerIds,
        CreateAcls,
        DeleteAcls,
        AlterClientQuotas,
        UpsertScramCredential,
        DeleteScramCredential,
    )
}


def decode(data: bytes) -> Command:
    """The command in a controller-log entry; InvalidCommand naming what is wrong with it otherwise."""
    try:
        doc: JsonValue = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidCommand(f"not JSON: {exc}") from None
    except RecursionError:
        raise InvalidCommand("not JSON: nested too deeply") from None
    if not isinstance(doc, dict):
        raise InvalidCommand("not a JSON object")
    op = doc.get("op")
    if not isinstance(op, str) or op not in _LATEST:
        raise InvalidCommand(f"unknown controller command op {_show(op)}")
    version = doc.get(VERSION_KEY, 1)  # written before the field existed: version 1
    if type(version) is not int or not 1 <= version <= _LATEST[op]:
        raise InvalidCommand(
            f"{op}: version {_show(version)} is not one this broker reads (1..{_LATEST[op]})"
        )
    return _decode_v1(op, _Fields(op, doc))
