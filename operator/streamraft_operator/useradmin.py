"""Kafka Admin API calls for StreamUsers (confluent-kafka AdminClient): ACLs and SCRAM credentials.
Blocking, with timeouts; failures become topicadmin.AdminFailed naming what failed."""

from collections.abc import Sequence

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialAlteration,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)

from streamraft_operator.brokers import admin_client
from streamraft_operator.topicadmin import TIMEOUT_S, AdminFailed, wait_all
from streamraft_operator.userspec import Acl

SCRAM_ITERATIONS = 8192
"""Kafka's kafka-configs default for SCRAM-SHA-512."""

_RESOURCE = {
    "topic": ResourceType.TOPIC,
    "group": ResourceType.GROUP,
    "cluster": ResourceType.BROKER,  # librdkafka's name for Kafka's CLUSTER resource type (4)
    "transactionalId": ResourceType.TRANSACTIONAL_ID,
}
_PATTERN = {"literal": ResourcePatternType.LITERAL, "prefix": ResourcePatternType.PREFIXED}
_PERMISSION = {"allow": AclPermissionType.ALLOW, "deny": AclPermissionType.DENY}
_OPERATION = {
    "All": AclOperation.ALL,
    "Read": AclOperation.READ,
    "Write": AclOperation.WRITE,
    "Create": AclOperation.CREATE,
    "Delete": AclOperation.DELETE,
    "Alter": AclOperation.ALTER,
    "Describe": AclOperation.DESCRIBE,
    "ClusterAction": AclOperation.CLUSTER_ACTION,
    "DescribeConfigs": AclOperation.DESCRIBE_CONFIGS,
    "AlterConfigs": AclOperation.ALTER_CONFIGS,
    "IdempotentWrite": AclOperation.IDEMPOTENT_WRITE,
}


def _rev(table: dict[str, object]) -> dict[object, str]:
    return {v: k for k, v in table.items()}


def binding(acl: Acl, principal: str) -> AclBinding:
    return AclBinding(
        _RESOURCE[acl.resource_type],
        acl.resource_name,
        _PATTERN[acl.pattern_type],
        principal,
        acl.host,
        _OPERATION[acl.operation],
        _PERMISSION[acl.permission],
    )


def _acl_of(b: AclBinding) -> Acl | None:
    """None for a binding the StreamUser model cannot express (it is then left alone)."""
    try:
        return Acl(
            _rev(dict(_RESOURCE))[b.restype],
            str(b.name),
            _rev(dict(_PATTERN))[b.resource_pattern_type],
            _rev(dict(_OPERATION))[b.operation],
            str(b.host),
            _rev(dict(_PERMISSION))[b.permission_type],
        )
    except KeyError:
        return None


# No credential for the user, or brokers without SCRAM (KIP-554) at all, which therefore hold none.
_NO_CREDENTIALS = (
    KafkaError.RESOURCE_NOT_FOUND,
    KafkaError._UNSUPPORTED_FEATURE,
    KafkaError.UNSUPPORTED_VERSION,
)


def describe_acls(bootstrap: Sequence[str], principal: str) -> frozenset[Acl]:
    flt = AclBindingFilter(
        ResourceType.ANY,
        None,  # type: ignore[arg-type]  # None matches any name (librdkafka); the stub says str
        ResourcePatternType.ANY,
        principal,
        None,  # type: ignore[arg-type]  # any host
        AclOperation.ANY,
        AclPermissionType.ANY,
    )
    # Each call keeps its client referenced until the results are in: a collected client cancels them.
    client = admin_client(bootstrap)
    try:
        found = client.describe_acls(flt, request_timeout=TIMEOUT_S).result(timeout=TIMEOUT_S)
    except Exception as exc:  # KafkaException, timeouts: all "ask later"
        raise AdminFailed(f"describe ACLs of {principal}: {exc}") from exc
    return frozenset(a for a in (_acl_of(b) for b in found or ()) if a is not None)


def create_acls(bootstrap: Sequence[str], principal: str, acls: Sequence[Acl]) -> None:
    if acls:
        client = admin_client(bootstrap)
        futures = client.create_acls([binding(a, principal) for a in acls], request_timeout=TIMEOUT_S)
        wait_all(futures, "create ACL")


def _exact_filter(acl: Acl, principal: str) -> AclBindingFilter:
    return AclBindingFilter(
        _RESOURCE[acl.resource_type],
        acl.resource_name,
        _PATTERN[acl.pattern_type],
        principal,
        acl.host,
        _OPERATION[acl.operation],
        _PERMISSION[acl.permission],
    )


def delete_acls(bootstrap: Sequence[str], principal: str, acls: Sequence[Acl]) -> None:
    if acls:
        client = admin_client(bootstrap)
        filters = [_exact_filter(a, principal) for a in acls]
        wait_all(client.delete_acls(filters, request_timeout=TIMEOUT_S), "delete ACL")


def scram_mechanisms(bootstrap: Sequence[str], user: str) -> frozenset[str]:
    client = admin_client(bootstrap)
    try:
        futures = client.describe_user_scram_credentials([user], request_timeout=TIMEOUT_S)
        future = futures[user] if isinstance(futures, dict) else futures
        desc = future.result(timeout=TIMEOUT_S)
    except KafkaException as exc:
        err = exc.args[0] if exc.args else None
        if isinstance(err, KafkaError) and err.code() in _NO_CREDENTIALS:
            return frozenset()
        raise AdminFailed(f"describe SCRAM credentials of {user}: {exc}") from exc
    except Exception as exc:
        raise AdminFailed(f"describe SCRAM credentials of {user}: {exc}") from exc
    return frozenset(str(info.mechanism.name).replace("_", "-") for info in desc.scram_credential_infos)


def upsert_scram(bootstrap: Sequence[str], user: str, password: bytes) -> None:
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS)
    change = UserScramCredentialUpsertion(user, info, password)
    client = admin_client(bootstrap)
    wait_all(client.alter_user_scram_credentials([change], request_timeout=TIMEOUT_S), "set SCRAM")


def delete_scram(bootstrap: Sequence[str], user: str, mechanisms: Sequence[str]) -> None:
    changes: list[UserScramCredentialAlteration] = [
        UserScramCredentialDeletion(user, ScramMechanism[m.replace("-", "_")]) for m in mechanisms
    ]
    if changes:
        client = admin_client(bootstrap)
        wait_all(client.alter_user_scram_credentials(changes, request_timeout=TIMEOUT_S), "delete SCRAM")
