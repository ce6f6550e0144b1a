"""The authorizer decides as Kafka's StandardAuthorizer does: super users, DENY over ALLOW, implied
operations, LITERAL/wildcard/PREFIXED patterns, principal and host wildcards, allow.everyone.if.no.acl.found;
bindings are validated like CreateAcls; filters select as DescribeAcls/DeleteAcls do; ACL commands apply
the same in the controller state (and its snapshots) as in the single-node file."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from streamraft_broker.config import ConfigError, load_config
from streamraft_broker.controller.commands import CreateAcls, DeleteAcls, encode
from streamraft_broker.controller.state import ControllerState
from streamraft_broker.security.acl import (
    CLUSTER,
    CREATE_ACLS,
    MAX_ACLS,
    AclBinding,
    AclError,
    AclFilter,
    AclSet,
    Authorizer,
    AuthorizerConfig,
    Operation,
    PatternType,
    Permission,
    Resource,
    ResourceType,
    validate_binding,
)
from streamraft_broker.security.acl_store import FileAclStore
from streamraft_broker.security.principal import ANONYMOUS, KafkaPrincipal

ALICE = KafkaPrincipal.parse("User:alice")
BOB = KafkaPrincipal.parse("User:bob")
HOST = "10.0.0.1"


def acl(  # noqa: PLR0917 -- mirrors the fields of a binding, in Kafka's order
    rtype: ResourceType,
    name: str,
    principal: str = "User:alice",
    op: Operation = Operation.READ,
    perm: Permission = Permission.ALLOW,
    pattern: PatternType = PatternType.LITERAL,
    host: str = "*",
) -> AclBinding:
    return validate_binding(int(rtype), name, int(pattern), principal, host, int(op), int(perm))


def authorizer(
    *bindings: AclBinding,
    super_users: frozenset[str] = frozenset(),
    allow_everyone_if_no_acl_found: bool = False,
) -> Authorizer:
    acls = AclSet(bindings)
    settings = AuthorizerConfig(True, super_users, allow_everyone_if_no_acl_found)
    return Authorizer(settings, lambda: acls)


def may(auth: Authorizer, op: Operation, resource: Resource, who: KafkaPrincipal = ALICE) -> bool:
    return auth.authorize(who, HOST, op, resource)


TOPIC = Resource.topic("orders")


def test_no_authorizer_allows_everything() -> None:
    auth = Authorizer(AuthorizerConfig(), AclSet)
    assert may(auth, Operation.WRITE, TOPIC, ANONYMOUS)
    assert may(auth, Operation.CLUSTER_ACTION, CLUSTER, ANONYMOUS)


def test_without_acls_only_super_users_pass_unless_everyone_is_allowed() -> None:
    auth = authorizer(super_users=frozenset({"User:admin"}))
    assert not may(auth, Operation.DESCRIBE, TOPIC)
    assert may(auth, Operation.DELETE, TOPIC, KafkaPrincipal.parse("User:admin"))
    assert may(authorizer(allow_everyone_if_no_acl_found=True), Operation.WRITE, TOPIC)
    # An ACL on the resource (for someone else) takes the resource out of "no ACL found".
    fenced = authorizer(acl(ResourceType.TOPIC, "orders", "User:bob"), allow_everyone_if_no_acl_found=True)
    assert not may(fenced, Operation.READ, TOPIC)
    assert may(fenced, Operation.READ, TOPIC, BOB)


def test_read_write_delete_alter_imply_describe_and_alter_configs_implies_describe_configs() -> None:
    for op in (Operation.READ, Operation.WRITE, Operation.DELETE, Operation.ALTER):
        auth = authorizer(acl(ResourceType.TOPIC, "orders", op=op))
        assert may(auth, Operation.DESCRIBE, TOPIC), op
        assert not may(auth, Operation.DESCRIBE_CONFIGS, TOPIC), op
    auth = authorizer(acl(ResourceType.TOPIC, "orders", op=Operation.ALTER_CONFIGS))
    assert may(auth, Operation.DESCRIBE_CONFIGS, TOPIC)
    assert not may(auth, Operation.DESCRIBE, TOPIC)
    auth = authorizer(acl(ResourceType.TOPIC, "orders", op=Operation.DESCRIBE))
    assert not may(auth, Operation.READ, TOPIC)


def test_deny_wins_over_allow_and_all_covers_every_operation() -> None:
    auth = authorizer(
        acl(ResourceType.TOPIC, "*", op=Operation.ALL),
        acl(ResourceType.TOPIC, "orders", op=Operation.WRITE, perm=Permission.DENY),
    )
    assert may(auth, Operation.READ, TOPIC)
    assert not may(auth, Operation.WRITE, TOPIC)
    assert may(auth, Operation.WRITE, Resource.topic("payments"))
    # A DENY of Read does not deny the Describe that an ALLOW of Write implies (Kafka's rule).
    auth = authorizer(
        acl(ResourceType.TOPIC, "orders", op=Operation.WRITE),
        acl(ResourceType.TOPIC, "orders", op=Operation.READ, perm=Permission.DENY),
    )
    assert may(auth, Operation.DESCRIBE, TOPIC)
    everything_denied = authorizer(
        acl(ResourceType.TOPIC, "orders", op=Operation.WRITE),
        acl(ResourceType.TOPIC, "orders", op=Operation.ALL, perm=Permission.DENY),
    )
    assert not may(everything_denied, Operation.DESCRIBE, TOPIC)


def test_prefixed_and_wildcard_patterns_principals_and_hosts() -> None:
    auth = authorizer(
        acl(ResourceType.TOPIC, "team-a.", pattern=PatternType.PREFIXED),
        acl(ResourceType.GROUP, "*", "User:*"),
        acl(ResourceType.TOPIC, "local", op=Operation.WRITE, host="127.0.0.1"),
    )
    assert may(auth, Operation.READ, Resource.topic("team-a.orders"))
    assert not may(auth, Operation.READ, Resource.topic("team-b.orders"))
    assert not may(auth, Operation.READ, Resource.topic("team-a"))
    assert may(auth, Operation.READ, Resource.group("anything"), BOB)
    assert not may(auth, Operation.READ, Resource.topic("team-a.orders"), BOB)
    assert not may(auth, Operation.WRITE, Resource.topic("local"))  # from HOST, not 127.0.0.1
    assert auth.authorize(ALICE, "127.0.0.1", Operation.WRITE, Resource.topic("local"))


def test_authorized_operations_bitfield() -> None:
    auth = authorizer(
        acl(ResourceType.TOPIC, "orders", op=Operation.READ),
        acl(ResourceType.CLUSTER, "kafka-cluster", op=Operation.ALTER),
    )
    expected = (1 << Operation.READ) | (1 << Operation.DESCRIBE)
    assert auth.authorized_operations(ALICE, HOST, TOPIC) == expected
    assert auth.authorized_operations(ALICE, HOST, CLUSTER) == (1 << Operation.ALTER) | (
        1 << Operation.DESCRIBE
    )
    everything = authorizer(super_users=frozenset({"User:alice"}))
    assert everything.authorized_operations(ALICE, HOST, TOPIC) == sum(
        1 << op
        for op in (
            Operation.READ,
            Operation.WRITE,
            Operation.CREATE,
            Operation.DESCRIBE,
            Operation.DELETE,
            Operation.ALTER,
            Operation.DESCRIBE_CONFIGS,
            Operation.ALTER_CONFIGS,
        )
    )


def test_idempotent_write_by_resource_type() -> None:
    auth = authorizer(acl(ResourceType.TOPIC, "orders", op=Operation.WRITE))
    assert auth.authorize_any(ALICE, HOST, Operation.WRITE, ResourceType.TOPIC)
    assert not auth.authorize_any(BOB, HOST, Operation.WRITE, ResourceType.TOPIC)
    denied = authorizer(
        acl(ResourceType.TOPIC, "orders", op=Operation.WRITE),
        acl(ResourceType.TOPIC, "*", op=Operation.WRITE, perm=Permission.DENY),
    )
    assert not denied.authorize_any(ALICE, HOST, Operation.WRITE, ResourceType.TOPIC)


@pytest.mark.parametrize(
    ("fields", "complaint"),
    [
        ((1, "x", 3, "User:a", "*", 3, 3), "only valid in a filter"),  # resource type ANY
        ((2, "x", 2, "User:a", "*", 3, 3), "only valid in a filter"),  # pattern MATCH
        ((2, "x", 3, "User:a", "*", 1, 3), "only valid in a filter"),  # operation ANY
        ((2, "x", 3, "User:a", "*", 3, 1), "only valid in a filter"),  # permission ANY
        ((2, "x", 3, "alice", "*", 3, 3), "TYPE:NAME"),
        ((2, "", 3, "User:a", "*", 3, 3), "resource name"),
        ((4, "other", 3, "User:a", "*", 7, 3), "kafka-cluster"),
        ((2, "x", 3, "User:a", "*", 9, 3), "does not apply to TOPIC"),  # ClusterAction on a topic
        ((2, "*", 4, "User:a", "*", 3, 3), "PREFIXED"),
        ((99, "x", 3, "User:a", "*", 3, 3), "not a valid ResourceType"),
    ],
)
def test_invalid_bindings_are_refused_naming_the_problem(
    fields: tuple[int, str, int, str, str, int, int], complaint: str
) -> None:
    with pytest.raises(AclError, match=complaint) as raised:
        validate_binding(*fields)
    assert raised.value.error_code == 42


def test_filters_any_match_literal_prefixed() -> None:
    literal = acl(ResourceType.TOPIC, "team-a.orders")
    wildcard = acl(ResourceType.TOPIC, "*", "User:bob")
    prefixed = acl(ResourceType.TOPIC, "team-a.", pattern=PatternType.PREFIXED, op=Operation.WRITE)
    group = acl(ResourceType.GROUP, "team-a.orders")
    acls = AclSet([literal, wildcard, prefixed, group])
    assert acls.matching(AclFilter()) == [literal, wildcard, prefixed, group]
    topic_any = AclFilter(ResourceType.TOPIC, "team-a.orders", PatternType.ANY)
    assert acls.matching(topic_any) == [literal]
    topic_match = AclFilter(ResourceType.TOPIC, "team-a.orders", PatternType.MATCH)
    assert acls.matching(topic_match) == [literal, wildcard, prefixed]
    assert acls.matching(AclFilter(pattern_type=PatternType.PREFIXED)) == [prefixed]
    assert acls.matching(AclFilter(principal="User:bob")) == [wildcard]
    assert acls.matching(AclFilter(operation=Operation.WRITE)) == [prefixed]
    with pytest.raises(AclError):
        AclFilter.parse(0, None, 1, None, None, 1, 1)


def test_set_ignores_duplicates_and_is_bounded() -> None:
    one = acl(ResourceType.TOPIC, "orders")
    acls = AclSet([one])
    assert acls.add([one]) == 0
    assert len(acls) == 1
    many = [
        AclBinding(
            ResourceType.TOPIC, f"t{i}", PatternType.LITERAL, "User:a", "*", Operation.READ, Permission.ALLOW
        )
        for i in range(MAX_ACLS)
    ]
    with pytest.raises(AclError, match="at most"):
        acls.add(many)
    assert len(acls) == 1, "a refused batch must add nothing"


def test_controller_state_applies_acl_commands_and_keeps_them_in_snapshots() -> None:
    state = ControllerState()
    first, second = acl(ResourceType.TOPIC, "orders"), acl(ResourceType.GROUP, "g", op=Operation.READ)
    state.apply(encode(CreateAcls((first, second))))
    state.apply(encode(DeleteAcls((first,))))
    assert list(state.acls) == [second]
    restored = ControllerState.from_snapshot(state.to_snapshot())
    assert list(restored.acls) == [second]
    # Validated at apply: a malformed binding changes nothing (and names the problem).
    bad = {"op": CREATE_ACLS, "acls": [first.as_json(), {**second.as_json(), "operation": 9}]}
    with pytest.raises(ValueError, match="does not apply to GROUP"):
        state.apply(json.dumps(bad).encode())
    assert list(state.acls) == [second]
    # A snapshot written before ACLs existed has none.
    old = json.loads(ControllerState().to_snapshot())
    del old["acls"]
    assert len(ControllerState.from_snapshot(json.dumps(old).encode()).acls) == 0


def test_file_store_is_durable_and_refuses_a_corrupt_file(tmp_path: Path) -> None:
    store = FileAclStore(tmp_path)
    bindings = [
        acl(ResourceType.TOPIC, "orders"),
        acl(ResourceType.TOPIC, "x.", pattern=PatternType.PREFIXED),
    ]
    asyncio.run(store.create(bindings))
    asyncio.run(store.delete(bindings[:1]))
    assert list(FileAclStore(tmp_path).current()) == bindings[1:]
    (tmp_path / "acls.json").write_text('[{"resource_type": 2}]')
    with pytest.raises(AclError, match="not a valid ACL file"):
        FileAclStore(tmp_path)


def test_settings_use_kafka_names_and_name_a_bad_principal(tmp_path: Path) -> None:
    config_file = tmp_path / "broker.yaml"
    config_file.write_text(
        "authorizer.class.name: org.apache.kafka.metadata.authorizer.StandardAuthorizer\n"
        "super.users: User:admin; User:ops\n"
        "allow.everyone.if.no.acl.found: true\n"
    )
    cfg = load_config({}, {}, config_file)
    assert cfg.authorizer_class_name.endswith("StandardAuthorizer")
    assert cfg.super_users == frozenset({"User:admin", "User:ops"})
    assert cfg.allow_everyone_if_no_acl_found
    assert not load_config({}, {}).authorizer_class_name, "no authorizer unless configured"
    with pytest.raises(ConfigError, match=r"STREAMRAFT_SUPER_USERS.*TYPE:NAME"):
        load_config({}, {"STREAMRAFT_SUPER_USERS": "admin"})
