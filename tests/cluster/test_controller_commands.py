"""The controller log's command schema: every entry already written (before commands were typed and
versioned) still reads as the same command and replays to the same state, every command survives
encode/decode, and a malformed or hostile entry is a rejected command (a ValueError the apply loop logs
and skips), never another exception.

The byte literals below were produced by the ``*_command()`` functions that built these entries before
``controller.commands`` existed; they must never be regenerated from the new encoder."""

from __future__ import annotations

import contextlib
import json
import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from streamraft_broker.controller.commands import (
    MAX_ITEMS,
    AddPartitions,
    AllocateProducerIds,
    AlterBrokerConfigs,
    AlterClientQuotas,
    AlterConfigs,
    Command,
    CreateAcls,
    CreateTopic,
    DecommissionBroker,
    DeleteAcls,
    DeleteRecords,
    DeleteScramCredential,
    DeleteTopic,
    InvalidCommand,
    Reassign,
    Reassigned,
    RegisterBroker,
    UnregisterBroker,
    UpsertScramCredential,
    decode,
    encode,
)
from streamraft_broker.controller.state import ControllerState
from streamraft_broker.quotas.entities import Alteration
from streamraft_broker.security.acl import AclBinding, AclError, validate_binding
from streamraft_broker.security.scram import ScramCredential

TOPIC_ID = uuid.UUID("6f1c2a34-8b7d-4e5f-9a0b-1c2d3e4f5a6b")
BINDING_1 = validate_binding(2, "orders", 3, "User:alice", "*", 3, 3)
BINDING_2 = validate_binding(3, "app-", 4, "User:bob", "10.0.0.1", 2, 2)
CREDENTIAL = ScramCredential(b"salt-bytes", b"K" * 32, b"S" * 32, 4096)

# Entries as the broker wrote them before commands carried a version field.
V0_ENTRIES: dict[str, bytes] = {
    "create_topic": b'{"configs": {"retention.ms": "60000"}, "id": "6f1c2a34-8b7d-4e5f-9a0b-1c2d3e4f5a6b", "name": "orders", "op": "create_topic", "replicas": [[1, 2, 3], [2, 3, 1]]}',  # noqa: E501
    "delete_topic": b'{"name": "orders", "op": "delete_topic"}',
    "add_partitions": b'{"name": "orders", "op": "add_partitions", "replicas": [[3, 1, 2]]}',
    "delete_records": b'{"id": "6f1c2a34-8b7d-4e5f-9a0b-1c2d3e4f5a6b", "log_start": {"0": 7, "1": 3}, "name": "orders", "op": "delete_records"}',  # noqa: E501
    "alter_configs": b'{"configs": {"segment.ms": "5"}, "id": "6f1c2a34-8b7d-4e5f-9a0b-1c2d3e4f5a6b", "name": "orders", "op": "alter_configs"}',  # noqa: E501
    "register_broker": b'{"id": 2, "incarnation": "inc-a", "kafka_host": "h2", "kafka_port": 9092, "op": "register_broker", "rack": "rack-a", "raft": "h2:9093"}',  # noqa: E501
    "register_broker_listeners": b'{"id": 3, "incarnation": "inc-b", "kafka_host": "h3", "kafka_port": 9092, "listeners": {"EXTERNAL": "ext3:19092"}, "op": "register_broker", "rack": null, "raft": "h3:9093"}',  # noqa: E501
    "decommission_broker": b'{"id": 4, "op": "decommission_broker"}',
    "unregister_broker": b'{"id": 4, "op": "unregister_broker"}',
    "reassign": b'{"name": "orders", "op": "reassign", "partition": 0, "target": [4, 2, 3]}',
    "reassign_cancel": b'{"name": "orders", "op": "reassign", "partition": 1, "target": null}',
    "reassigned": b'{"name": "orders", "op": "reassigned", "partition": 0, "replicas": [4, 2, 3]}',
    "allocate_producer_ids": b'{"broker": 2, "op": "allocate_producer_ids", "request": "req-a", "size": 1000}',  # noqa: E501
    "create_acls": b'{"acls": [{"host": "*", "name": "orders", "operation": 3, "pattern_type": 3, "permission": 3, "principal": "User:alice", "resource_type": 2}, {"host": "10.0.0.1", "name": "app-", "operation": 2, "pattern_type": 4, "permission": 2, "principal": "User:bob", "resource_type": 3}], "op": "create_acls"}',  # noqa: E501
    "delete_acls": b'{"acls": [{"host": "*", "name": "orders", "operation": 3, "pattern_type": 3, "permission": 3, "principal": "User:alice", "resource_type": 2}], "op": "delete_acls"}',  # noqa: E501
    "alter_client_quotas": b'{"entries": [{"entity": [["client-id", null], ["user", "alice"]], "ops": [["producer_byte_rate", 1024.0], ["consumer_byte_rate", null]]}, {"entity": [["ip", "10.0.0.1"]], "ops": [["connection_creation_rate", 5.0]]}], "op": "alter_client_quotas"}',  # noqa: E501
    "upsert_scram_credential": b'{"iterations": 4096, "mechanism": "SCRAM-SHA-256", "op": "upsert_scram_credential", "salt": "c2FsdC1ieXRlcw==", "server_key": "U1NTU1NTU1NTU1NTU1NTU1NTU1NTU1NTU1NTU1NTU1M=", "stored_key": "S0tLS0tLS0tLS0tLS0tLS0tLS0tLS0tLS0tLS0tLS0s=", "user": "alice"}',  # noqa: E501
    "delete_scram_credential": b'{"mechanism": "SCRAM-SHA-512", "op": "delete_scram_credential", "user": "alice"}',  # noqa: E501
}

V0_COMMANDS: dict[str, Command] = {
    "create_topic": CreateTopic("orders", TOPIC_ID, ((1, 2, 3), (2, 3, 1)), {"retention.ms": "60000"}),
    "delete_topic": DeleteTopic("orders"),
    "add_partitions": AddPartitions("orders", ((3, 1, 2),)),
    "delete_records": DeleteRecords("orders", TOPIC_ID, {0: 7, 1: 3}),
    "alter_configs": AlterConfigs("orders", TOPIC_ID, {"segment.ms": "5"}),
    "register_broker": RegisterBroker(2, "h2", 9092, "h2:9093", "rack-a", "inc-a"),
    "register_broker_listeners": RegisterBroker(
        3, "h3", 9092, "h3:9093", None, "inc-b", {"EXTERNAL": "ext3:19092"}
    ),
    "decommission_broker": DecommissionBroker(4),
    "unregister_broker": UnregisterBroker(4),
    "reassign": Reassign("orders", 0, (4, 2, 3)),
    "reassign_cancel": Reassign("orders", 1, None),
    "reassigned": Reassigned("orders", 0, (4, 2, 3)),
    "allocate_producer_ids": AllocateProducerIds(2, "req-a", 1000),
    "create_acls": CreateAcls((BINDING_1, BINDING_2)),
    "delete_acls": DeleteAcls((BINDING_1,)),
    "alter_client_quotas": AlterClientQuotas(
        (
            Alteration(
                (("client-id", None), ("user", "alice")),
                (("producer_byte_rate", 1024.0), ("consumer_byte_rate", None)),
            ),
            Alteration((("ip", "10.0.0.1"),), (("connection_creation_rate", 5.0),)),
        )
    ),
    "upsert_scram_credential": UpsertScramCredential("alice", "SCRAM-SHA-256", CREDENTIAL),
    "delete_scram_credential": DeleteScramCredential("alice", "SCRAM-SHA-512"),
}

# These entries in this order, then a topic "gone" created and deleted, gave this snapshot (written by the
# same pre-typed code): replaying the old entries must still give it, byte for byte.
V0_REPLAY = [
    "register_broker",
    "register_broker_listeners",
    "create_topic",
    "add_partitions",
    "delete_records",
    "alter_configs",
    "reassign",
    "allocate_producer_ids",
    "create_acls",
    "alter_client_quotas",
    "upsert_scram_credential",
    "decommission_broker",
]
V0_GONE = [
    b'{"configs": {}, "id": "00000000-0000-4000-8000-000000000001", "name": "gone", "op": "create_topic", "replicas": [[1]]}',  # noqa: E501
    b'{"name": "gone", "op": "delete_topic"}',
]
V0_SNAPSHOT = b'{"acls": [{"host": "*", "name": "orders", "operation": 3, "pattern_type": 3, "permission": 3, "principal": "User:alice", "resource_type": 2}, {"host": "10.0.0.1", "name": "app-", "operation": 2, "pattern_type": 4, "permission": 2, "principal": "User:bob", "resource_type": 3}], "brokers": [{"id": 2, "incarnation": "inc-a", "kafka_host": "h2", "kafka_port": 9092, "listeners": {}, "previous_incarnations": 0, "rack": "rack-a", "raft": "h2:9093", "state": "active"}, {"id": 3, "incarnation": "inc-b", "kafka_host": "h3", "kafka_port": 9092, "listeners": {"EXTERNAL": "ext3:19092"}, "previous_incarnations": 0, "rack": null, "raft": "h3:9093", "state": "active"}], "client_quotas": [{"entity": [["client-id", null], ["user", "alice"]], "quotas": {"producer_byte_rate": 1024.0}}, {"entity": [["ip", "10.0.0.1"]], "quotas": {"connection_creation_rate": 5.0}}], "deleted_topics": ["gone"], "producer_ids": {"last_grant": [{"broker": 2, "request": "req-a", "size": 1000, "start": 0}], "next_id": 1000}, "scram_credentials": {"alice": {"SCRAM-SHA-256": {"iterations": 4096, "salt": "c2FsdC1ieXRlcw==", "server_key": "U1NTU1NTU1NTU1NTU1NTU1NTU1NTU1NTU1NTU1NTU1M=", "stored_key": "S0tLS0tLS0tLS0tLS0tLS0tLS0tLS0tLS0tLS0tLS0s="}}}, "topics": [{"configs": {"segment.ms": "5"}, "id": "6f1c2a34-8b7d-4e5f-9a0b-1c2d3e4f5a6b", "log_start": {"0": 7, "1": 3}, "name": "orders", "origin": [[1, 2, 3], [2, 3, 1], [3, 1, 2]], "replicas": [[1, 2, 3], [2, 3, 1], [3, 1, 2]], "targets": {"0": [4, 2, 3]}}], "version": 1}'  # noqa: E501


def test_every_op_has_a_sample_of_the_old_encoding() -> None:
    ops = {json.loads(e)["op"] for e in V0_ENTRIES.values()}
    assert ops == {c.OP for c in V0_COMMANDS.values()}
    assert len(ops) == 16, "a command type has no byte-exact sample of its old encoding"


@pytest.mark.parametrize("key", sorted(V0_ENTRIES))
def test_entries_written_before_versions_decode_to_the_same_command(key: str) -> None:
    assert decode(V0_ENTRIES[key]) == V0_COMMANDS[key]


@pytest.mark.parametrize("key", sorted(V0_ENTRIES))
def test_new_entries_are_the_old_encoding_plus_the_version(key: str) -> None:
    """So a broker of the previous release, which ignores keys it does not read, still reads them during a
    rolling upgrade."""
    assert json.loads(encode(V0_COMMANDS[key])) == {**json.loads(V0_ENTRIES[key]), "version": 1}
    assert decode(encode(V0_COMMANDS[key])) == V0_COMMANDS[key]


def test_an_old_log_replays_to_the_old_snapshot_byte_for_byte() -> None:
    state = ControllerState()
    for key in V0_REPLAY:
        state.apply(V0_ENTRIES[key])
    for entry in V0_GONE:
        state.apply(entry)
    assert state.to_snapshot() == V0_SNAPSHOT


def test_an_old_snapshot_loads_and_goes_on_like_a_replayed_log() -> None:
    restored = ControllerState.from_snapshot(V0_SNAPSHOT)
    assert restored.to_snapshot() == V0_SNAPSHOT
    replayed = ControllerState()
    for key in V0_REPLAY:
        replayed.apply(V0_ENTRIES[key])
    for entry in V0_GONE:
        replayed.apply(entry)
    for key in ("reassigned", "delete_acls", "unregister_broker", "delete_scram_credential", "delete_topic"):
        assert restored.apply(V0_ENTRIES[key]) == replayed.apply(V0_ENTRIES[key])
    assert restored.to_snapshot() == replayed.to_snapshot()


def test_the_version_field_is_read() -> None:
    doc = json.loads(V0_ENTRIES["delete_topic"])
    assert decode(json.dumps({**doc, "version": 1}).encode()) == DeleteTopic("orders")
    for version in (2, 0, "1", True, None, 1.0):
        with pytest.raises(InvalidCommand, match="version"):
            decode(json.dumps({**doc, "version": version}).encode())


# ---------------------------------------------------------------------------------------------- round trip

_ints = st.integers(min_value=-(2**63), max_value=2**63 - 1)
_text = st.text(max_size=12)
_ids = st.lists(_ints, max_size=4).map(tuple)
_assignment = st.lists(_ids, max_size=4).map(tuple)
_str_map = st.dictionaries(_text, _text, max_size=3)


def _binding(draw: st.DrawFn) -> AclBinding:
    return validate_binding(
        draw(st.sampled_from([2, 3])),  # TOPIC, GROUP
        draw(st.text(min_size=1, max_size=10).filter(lambda n: n != "*")),
        draw(st.sampled_from([3, 4])),  # LITERAL, PREFIXED
        f"User:{draw(st.text(alphabet='abcxyz', min_size=1, max_size=6))}",
        draw(st.sampled_from(["*", "10.0.0.1"])),
        draw(st.sampled_from([2, 3])),  # ALL, READ
        draw(st.sampled_from([2, 3])),  # DENY, ALLOW
    )


@st.composite
def _bindings(draw: st.DrawFn) -> tuple[AclBinding, ...]:
    out = []
    for _ in range(draw(st.integers(0, 3))):
        try:
            out.append(_binding(draw))
        except AclError:  # a generated name or principal Kafka refuses: not a command anyone writes
            continue
    return tuple(out)


_alterations = st.lists(
    st.builds(
        Alteration,
        st.lists(st.tuples(_text, st.none() | _text), max_size=3).map(tuple),
        st.lists(st.tuples(_text, st.none() | st.floats(allow_nan=False)), max_size=3).map(tuple),
    ),
    max_size=3,
).map(tuple)

COMMANDS: st.SearchStrategy[Command] = st.one_of(
    st.builds(CreateTopic, _text, st.uuids(), _assignment, _str_map),
    st.builds(DeleteTopic, _text),
    st.builds(AddPartitions, _text, _assignment),
    st.builds(
        DeleteRecords,
        _text,
        st.uuids(),
        st.dictionaries(st.integers(-(2**31), 2**31 - 1), _ints, max_size=3),
    ),
    st.builds(AlterConfigs, _text, st.uuids(), _str_map),
    st.builds(RegisterBroker, _ints, _text, _ints, _text, st.none() | _text, _text, _str_map),
    st.builds(DecommissionBroker, _ints),
    st.builds(UnregisterBroker, _ints),
    st.builds(Reassign, _text, _ints, st.none() | _ids),
    st.builds(Reassigned, _text, _ints, _ids),
    st.builds(AllocateProducerIds, _ints, _text, _ints),
    st.builds(CreateAcls, _bindings()),
    st.builds(DeleteAcls, _bindings()),
    st.builds(AlterClientQuotas, _alterations),
    st.builds(
        UpsertScramCredential,
        _text,
        _text,
        st.builds(
            ScramCredential, st.binary(max_size=40), st.binary(max_size=40), st.binary(max_size=40), _ints
        ),
    ),
    st.builds(DeleteScramCredential, _text, _text),
    st.builds(AlterBrokerConfigs, st.sampled_from(["", "1", "2147483647"]), _str_map),
)


@settings(max_examples=400, deadline=None)
@given(COMMANDS)
def test_every_command_survives_encode_and_decode(command: Command) -> None:
    entry = encode(command)
    assert decode(entry) == command
    assert encode(decode(entry)) == entry


# ---------------------------------------------------------------------------------------------- hostile


def _with(key: str, **changes: Any) -> bytes:
    doc = json.loads(V0_ENTRIES[key])
    doc.update(changes)
    return json.dumps({k: v for k, v in doc.items() if v is not _MISSING}).encode()


_MISSING: Any = object()


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        (b'{"op": "nope"}', "unknown controller command op 'nope'"),
        (b'{"name": "t"}', "unknown controller command op None"),
        (b'{"op": 5}', "unknown controller command op 5"),
        (b"\xff", "not JSON"),
        (b"[" * 100_000, "nested too deeply"),
        (_with("create_topic", replicas=_MISSING), r"replicas \('replicas'\) is missing"),
        (_with("create_topic", name=7), "topic name must be a string, got 7"),
        (_with("create_topic", configs={"a": 1}), "configs 'a' value is not a string"),
        (_with("create_topic", replicas=[[1]] * (MAX_ITEMS + 1)), f"more than {MAX_ITEMS}"),
        (_with("add_partitions", replicas=[list(range(MAX_ITEMS + 1))]), f"more than {MAX_ITEMS}"),
        (_with("delete_records", log_start={"x": 1}), "log_start partition 'x'"),
        (_with("delete_records", log_start={"0": "7"}), "log_start of partition 0 must be an integer"),
        (_with("delete_records", log_start=[1]), "log_start must be an object"),
        (_with("alter_configs", id=None), "topic id None is not a UUID"),
        (_with("register_broker", kafka_port="9092"), "kafka_port must be an integer"),
        (_with("register_broker", listeners=["x"]), "listeners must be an object"),
        (_with("register_broker", rack=["a"]), "rack must be a string or null"),
        (_with("reassign", target="4"), "target must be a list of node ids"),
        (_with("reassigned", partition=0.0), "partition must be an integer"),
        (_with("allocate_producer_ids", size=False), "block size must be an integer"),
        (_with("create_acls", acls={"a": 1}), "acls must be a list"),
        (
            _with("create_acls", acls=[{"name": "x"}]),
            r"ACL binding 0: resource_type \('resource_type'\) is missing",
        ),
        (
            _with("create_acls", acls=[{**json.loads(V0_ENTRIES["delete_acls"])["acls"][0], "operation": 9}]),
            "does not apply to TOPIC",
        ),
        (_with("alter_client_quotas", entries=[{"entity": "x", "ops": []}]), "entity must be a list"),
        (
            _with(
                "alter_client_quotas",
                entries=[{"entity": [["user", "u"]], "ops": [["producer_byte_rate", "5"]]}],
            ),
            "must be a number or null",
        ),
        (
            _with(
                "alter_client_quotas",
                entries=[{"entity": [["user", "u"]], "ops": [["producer_byte_rate", 10**400]]}],
            ),
            "out of range",
        ),
        (_with("upsert_scram_credential", salt="not base64!"), "salt is not base64"),
        (_with("upsert_scram_credential", iterations=None), "iterations must be an integer"),
        (_with("delete_scram_credential", user=_MISSING), r"user \('user'\) is missing"),
    ],
)
def test_a_malformed_entry_is_rejected_naming_the_problem_and_changes_nothing(
    entry: bytes, reason: str
) -> None:
    state = ControllerState()
    for key in V0_REPLAY:
        state.apply(V0_ENTRIES[key])
    before = state.to_snapshot()
    with pytest.raises(InvalidCommand, match=reason):
        state.apply(entry)
    assert state.to_snapshot() == before


_json: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@st.composite
def _mangled(draw: st.DrawFn) -> bytes:
    """A real entry with one field replaced by arbitrary JSON, removed, or added."""
    doc = json.loads(V0_ENTRIES[draw(st.sampled_from(sorted(V0_ENTRIES)))])
    key = draw(st.sampled_from([*sorted(doc), "version", "extra"]))
    if draw(st.booleans()):
        doc.pop(key, None)
    else:
        doc[key] = draw(_json)
    return json.dumps(doc).encode()


@settings(max_examples=500, deadline=None)
@given(_mangled())
def test_any_mangled_entry_applies_or_is_rejected_as_a_value_error(entry: bytes) -> None:
    """The Raft apply loop skips ValueErrors (logged as a rejected entry); anything else would stop the
    controller group on every broker."""
    state = ControllerState()
    for key in V0_REPLAY:
        state.apply(V0_ENTRIES[key])
    with contextlib.suppress(ValueError):
        state.apply(entry)


def test_fields_old_code_read_as_optional_stay_optional() -> None:
    """``rack`` and ``listeners`` of a registration were read with defaults: an entry without them is still a
    registration (no rack, no named listeners)."""
    doc = json.loads(V0_ENTRIES["register_broker"])
    del doc["rack"]
    assert decode(json.dumps(doc).encode()) == RegisterBroker(2, "h2", 9092, "h2:9093", None, "inc-a")


@pytest.mark.parametrize(
    ("snapshot", "reason"),
    [
        (b"[" * 100_000, "nested too deeply"),
        (
            V0_SNAPSHOT.replace(b'"replicas": [[1, 2, 3]', b'"replicas": [[Infinity, 2, 3]'),
            "'topics' is malformed",
        ),
        (V0_SNAPSHOT.replace(b'"next_id": 1000', b'"next_id": -Infinity'), "'producer_ids' is malformed"),
    ],
)
def test_a_hostile_snapshot_is_a_value_error(snapshot: bytes, reason: str) -> None:
    """Installing a snapshot refuses a ValueError (the broker names the snapshot and keeps its state); the
    old code let RecursionError and OverflowError through."""
    with pytest.raises(ValueError, match=reason):
        ControllerState.from_snapshot(snapshot)
