"""Parsed, validated view of a StreamUser spec (the CRD schema enforces the same; see spec.py for why we
parse again), and the Kafka ACL model it is written in."""

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from streamraft_operator.spec import SpecError

AUTH_TYPES = ("scram-sha-512", "tls")
RESOURCE_TYPES = ("topic", "group", "cluster", "transactionalId")
PATTERN_TYPES = ("literal", "prefix")
OPERATIONS = (
    "All",
    "Read",
    "Write",
    "Create",
    "Delete",
    "Alter",
    "Describe",
    "ClusterAction",
    "DescribeConfigs",
    "AlterConfigs",
    "IdempotentWrite",
)
PERMISSIONS = ("allow", "deny")
CLUSTER_RESOURCE_NAME = "kafka-cluster"
"""Kafka's only name for the cluster resource."""


@dataclass(frozen=True, order=True)
class Acl:
    """One Kafka ACL binding for the user's principal (a spec entry with several operations is several)."""

    resource_type: str
    resource_name: str
    pattern_type: str
    operation: str
    host: str = "*"
    permission: str = "allow"


PRODUCER_BYTE_RATE = "producer_byte_rate"
CONSUMER_BYTE_RATE = "consumer_byte_rate"
REQUEST_PERCENTAGE = "request_percentage"
QUOTA_FIELDS = {
    PRODUCER_BYTE_RATE: "producerByteRate",
    CONSUMER_BYTE_RATE: "consumerByteRate",
    REQUEST_PERCENTAGE: "requestPercentage",
}
"""Kafka's quota key -> the StreamUser spec field holding it."""


@dataclass(frozen=True)
class Quotas:
    producer_byte_rate: int | None = None
    consumer_byte_rate: int | None = None
    request_percentage: float | None = None

    def kafka_values(self) -> dict[str, float]:
        """Kafka quota key -> value, for the keys the spec sets (brokers hold every value as a double)."""
        values = {
            PRODUCER_BYTE_RATE: self.producer_byte_rate,
            CONSUMER_BYTE_RATE: self.consumer_byte_rate,
            REQUEST_PERCENTAGE: self.request_percentage,
        }
        return {k: float(v) for k, v in values.items() if v is not None}

    def status(self) -> dict[str, int | float]:
        """The spec's fields with the values set, for the StreamUser's status."""
        return {
            QUOTA_FIELDS[k]: v if k == REQUEST_PERCENTAGE else int(v) for k, v in self.kafka_values().items()
        }


@dataclass(frozen=True)
class UserSpec:
    name: str
    namespace: str
    cluster: str
    auth: str
    acls: frozenset[Acl]
    quotas: Quotas

    @property
    def principal(self) -> str:
        """The principal brokers see: a SCRAM user by name; a TLS client by its certificate's subject
        distinguished name (Kafka's default mapping, no ssl.principal.mapping.rules), `CN=<name>`."""
        return f"User:{self.name}" if self.auth == "scram-sha-512" else f"User:CN={self.name}"

    @property
    def quota_name(self) -> str:
        """The principal's name, which Kafka's user quota entity is named by (user=alice, user=CN=alice)."""
        return self.principal.removeprefix("User:")


def _str(value: object, path: str, choices: tuple[str, ...], problems: list[str], default: str | None) -> str:
    if value is None and default is not None:
        return default
    if not isinstance(value, str) or value not in choices:
        problems.append(f"{path} must be one of {', '.join(choices)}, got {value!r}")
        return default or choices[0]
    return value


def _acls(entries: object, problems: list[str]) -> frozenset[Acl]:
    if entries is None:
        return frozenset()
    if not isinstance(entries, list):
        problems.append("spec.authorization.acls must be a list")
        return frozenset()
    out: set[Acl] = set()
    for i, entry in enumerate(entries):
        path = f"spec.authorization.acls[{i}]"
        if not isinstance(entry, Mapping):
            problems.append(f"{path} must be an object")
            continue
        resource = entry.get("resource")
        if not isinstance(resource, Mapping):
            problems.append(f"{path}.resource is required")
            continue
        rtype = _str(resource.get("type"), f"{path}.resource.type", RESOURCE_TYPES, problems, None)
        name = resource.get("name", CLUSTER_RESOURCE_NAME if rtype == "cluster" else None)
        if not isinstance(name, str) or not name:
            problems.append(f"{path}.resource.name is required for a {rtype}")
            name = ""
        elif rtype == "cluster" and name != CLUSTER_RESOURCE_NAME:
            problems.append(
                f"{path}.resource.name of a cluster must be {CLUSTER_RESOURCE_NAME}, got {name!r}"
            )
        pattern = _str(
            resource.get("patternType"), f"{path}.resource.patternType", PATTERN_TYPES, problems, "literal"
        )
        host = entry.get("host", "*")
        if not isinstance(host, str) or not host:
            problems.append(f"{path}.host must be a non-empty string")
            host = "*"
        permission = _str(entry.get("type"), f"{path}.type", PERMISSIONS, problems, "allow")
        ops = entry.get("operations")
        if not isinstance(ops, list) or not ops:
            problems.append(f"{path}.operations must list at least one of {', '.join(OPERATIONS)}")
            continue
        for j, op in enumerate(ops):
            operation = _str(op, f"{path}.operations[{j}]", OPERATIONS, problems, None)
            out.add(Acl(rtype, name, pattern, operation, host, permission))
    return frozenset(out)


MAX_BYTE_RATE = 2**63 - 1
"""Kafka's byte-rate quotas are longs."""


# Kafka refuses a quota of 0 or less (AlterClientQuotas answers INVALID_REQUEST): say so in the spec's terms.
def _rate(value: object, path: str, problems: list[str]) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_BYTE_RATE:
        problems.append(f"{path} must be a positive integer (bytes per second), got {value!r}")
        return None
    return value


def _percent(value: object, path: str, problems: list[str]) -> float | None:
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        problems.append(f"{path} must be a number above 0, got {value!r}")
        return None
    return float(value)


def parse_user(name: str, namespace: str, spec: Mapping[str, Any]) -> UserSpec:
    problems: list[str] = []
    cluster = spec.get("cluster")
    if not isinstance(cluster, str) or not cluster:
        problems.append("spec.cluster is required and must name a StreamCluster")
    auth = spec.get("authentication")
    auth_type = _str(
        auth.get("type") if isinstance(auth, Mapping) else None,
        "spec.authentication.type",
        AUTH_TYPES,
        problems,
        None,
    )
    authorization = spec.get("authorization") or {}
    if not isinstance(authorization, Mapping):
        problems.append("spec.authorization must be an object")
        authorization = {}
    acls = _acls(authorization.get("acls"), problems)
    q = spec.get("quotas") or {}
    if not isinstance(q, Mapping):
        problems.append("spec.quotas must be an object")
        q = {}
    quotas = Quotas(
        _rate(q.get("producerByteRate"), "spec.quotas.producerByteRate", problems),
        _rate(q.get("consumerByteRate"), "spec.quotas.consumerByteRate", problems),
        _percent(q.get("requestPercentage"), "spec.quotas.requestPercentage", problems),
    )
    if problems:
        raise SpecError("; ".join(problems))
    return UserSpec(name, namespace, str(cluster), auth_type, acls, quotas)
