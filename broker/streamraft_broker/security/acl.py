"""Kafka's ACL model and the authorizer that decides with it (sans-I/O: no sockets, files or clocks).

An ACL binding says: ``principal`` from ``host`` is allowed (or denied) ``operation`` on resources matching
``(resource_type, name, pattern_type)``. Decisions follow Kafka's StandardAuthorizer:

- super users are allowed everything;
- a DENY binding matching the principal, host, resource and operation (or ALL) wins over any ALLOW;
- an ALLOW for READ, WRITE, DELETE or ALTER implies DESCRIBE; ALTER_CONFIGS implies DESCRIBE_CONFIGS;
- with no binding at all on a resource, the answer is ``allow.everyone.if.no.acl.found``.

A binding matches a resource when it is LITERAL with the same name or the wildcard ``*``, or PREFIXED with
a prefix of its name. Principals match exactly or through ``User:*``; hosts exactly or through ``*``.

Codes are Kafka's wire values (``AclOperation``, ``AclPermissionType``, ``ResourceType``,
``PatternType``), so bindings travel in CreateAcls/DescribeAcls/DeleteAcls unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, TypeVar

from streamraft_broker.security.principal import KafkaPrincipal

CLUSTER_NAME = "kafka-cluster"
"""The one name of the Cluster resource."""
WILDCARD = "*"
MAX_ACLS = 100_000
"""Bindings one cluster holds; more is refused (memory stays bounded against a hostile admin)."""
MAX_FIELD_CHARS = 1024


class Operation(IntEnum):
    UNKNOWN = 0
    ANY = 1
    ALL = 2
    READ = 3
    WRITE = 4
    CREATE = 5
    DELETE = 6
    ALTER = 7
    DESCRIBE = 8
    CLUSTER_ACTION = 9
    DESCRIBE_CONFIGS = 10
    ALTER_CONFIGS = 11
    IDEMPOTENT_WRITE = 12
    CREATE_TOKENS = 13
    DESCRIBE_TOKENS = 14


class Permission(IntEnum):
    UNKNOWN = 0
    ANY = 1
    DENY = 2
    ALLOW = 3


class ResourceType(IntEnum):
    UNKNOWN = 0
    ANY = 1
    TOPIC = 2
    GROUP = 3
    CLUSTER = 4
    TRANSACTIONAL_ID = 5
    DELEGATION_TOKEN = 6
    USER = 7


class PatternType(IntEnum):
    UNKNOWN = 0
    ANY = 1
    MATCH = 2
    LITERAL = 3
    PREFIXED = 4


# An ALLOW of any of these operations also allows the key (Kafka's implied operations).
_IMPLIED_BY: dict[Operation, tuple[Operation, ...]] = {
    Operation.DESCRIBE: (Operation.READ, Operation.WRITE, Operation.DELETE, Operation.ALTER),
    Operation.DESCRIBE_CONFIGS: (Operation.ALTER_CONFIGS,),
}

# The operations each resource type supports: what authorized-operations bitfields are computed over.
OPERATIONS: dict[ResourceType, tuple[Operation, ...]] = {
    ResourceType.TOPIC: (
        Operation.READ,
        Operation.WRITE,
        Operation.CREATE,
        Operation.DESCRIBE,
        Operation.DELETE,
        Operation.ALTER,
        Operation.DESCRIBE_CONFIGS,
        Operation.ALTER_CONFIGS,
    ),
    ResourceType.GROUP: (Operation.READ, Operation.DESCRIBE, Operation.DELETE),
    ResourceType.CLUSTER: (
        Operation.CREATE,
        Operation.CLUSTER_ACTION,
        Operation.DESCRIBE_CONFIGS,
        Operation.ALTER_CONFIGS,
        Operation.IDEMPOTENT_WRITE,
        Operation.ALTER,
        Operation.DESCRIBE,
    ),
    ResourceType.TRANSACTIONAL_ID: (Operation.DESCRIBE, Operation.WRITE),
    ResourceType.DELEGATION_TOKEN: (Operation.DESCRIBE,),
}

# Error codes Kafka answers with.
INVALID_REQUEST = 42
SECURITY_DISABLED = 54
TOPIC_AUTHORIZATION_FAILED = 29
GROUP_AUTHORIZATION_FAILED = 30
CLUSTER_AUTHORIZATION_FAILED = 31
TRANSACTIONAL_ID_AUTHORIZATION_FAILED = 53


class AclError(ValueError):
    """A binding or filter Kafka would refuse; ``error_code`` is the wire code to answer with."""

    def __init__(self, message: str, error_code: int = INVALID_REQUEST) -> None:
        super().__init__(message)
        self.error_code = error_code


@dataclass(frozen=True)
class Resource:
    resource_type: ResourceType
    name: str

    @classmethod
    def topic(cls, name: str) -> Resource:
        return cls(ResourceType.TOPIC, name)

    @classmethod
    def group(cls, name: str) -> Resource:
        return cls(ResourceType.GROUP, name)

    @classmethod
    def transactional_id(cls, name: str) -> Resource:
        return cls(ResourceType.TRANSACTIONAL_ID, name)


CLUSTER = Resource(ResourceType.CLUSTER, CLUSTER_NAME)


@dataclass(frozen=True)
class AclBinding:
    resource_type: ResourceType
    name: str
    pattern_type: PatternType
    principal: str
    host: str
    operation: Operation
    permission: Permission

    def matches_resource(self, resource: Resource) -> bool:
        if self.resource_type != resource.resource_type:
            return False
        if self.pattern_type == PatternType.PREFIXED:
            return resource.name.startswith(self.name)
        return self.name in (resource.name, WILDCARD)

    def as_json(self) -> dict[str, Any]:
        return {
            "resource_type": int(self.resource_type),
            "name": self.name,
            "pattern_type": int(self.pattern_type),
            "principal": self.principal,
            "host": self.host,
            "operation": int(self.operation),
            "permission": int(self.permission),
        }

    @classmethod
    def from_json(cls, doc: Any) -> AclBinding:
        """Parses and validates one binding; raises AclError naming what is wrong."""
        if not isinstance(doc, dict):
            raise AclError(f"ACL binding {doc!r} is not an object")
        try:
            return validate_binding(
                int(doc["resource_type"]),
                str(doc["name"]),
                int(doc["pattern_type"]),
                str(doc["principal"]),
                str(doc["host"]),
                int(doc["operation"]),
                int(doc["permission"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, AclError):
                raise
            raise AclError(f"ACL binding {doc!r} is malformed: {exc!r}") from None

    def __str__(self) -> str:
        return (
            f"{self.permission.name} {self.principal} from {self.host} {self.operation.name} on "
            f"{self.resource_type.name}:{self.pattern_type.name}:{self.name}"
        )


_E = TypeVar("_E", bound=IntEnum)


def _enum(kind: type[_E], value: int, what: str) -> _E:
    try:
        return kind(value)
    except ValueError:
        raise AclError(f"{what} {value} is not a valid {kind.__name__}") from None


def _check_text(value: str, what: str) -> None:
    if not value or len(value) > MAX_FIELD_CHARS:
        raise AclError(f"{what} {value[:64]!r} must be 1..{MAX_FIELD_CHARS} characters")


def validate_binding(  # noqa: PLR0917 -- the seven fields of a Kafka ACL binding
    resource_type: int,
    name: str,
    pattern_type: int,
    principal: str,
    host: str,
    operation: int,
    permission: int,
) -> AclBinding:
    """A binding CreateAcls may store, or AclError saying why not (as Kafka refuses them)."""
    rtype = _enum(ResourceType, resource_type, "resource type")
    ptype = _enum(PatternType, pattern_type, "pattern type")
    op = _enum(Operation, operation, "operation")
    perm = _enum(Permission, permission, "permission type")
    if rtype in (ResourceType.ANY, ResourceType.UNKNOWN):
        raise AclError(f"resource type {rtype.name} is only valid in a filter")
    if ptype not in (PatternType.LITERAL, PatternType.PREFIXED):
        raise AclError(f"pattern type {ptype.name} is only valid in a filter (use LITERAL or PREFIXED)")
    if op in (Operation.ANY, Operation.UNKNOWN):
        raise AclError(f"operation {op.name} is only valid in a filter")
    if perm not in (Permission.ALLOW, Permission.DENY):
        raise AclError(f"permission type {perm.name} is only valid in a filter (use ALLOW or DENY)")
    _check_text(name, "resource name")
    _check_text(host, "host")
    if rtype == ResourceType.CLUSTER and (name != CLUSTER_NAME or ptype != PatternType.LITERAL):
        raise AclError(f"the only Cluster resource is the LITERAL {CLUSTER_NAME!r}, not {name!r}")
    if rtype == ResourceType.USER:
        raise AclError("USER resource bindings (delegation tokens for others) are not supported")
    if ptype == PatternType.PREFIXED and name == WILDCARD:
        raise AclError("a PREFIXED binding cannot use the wildcard name '*' (use LITERAL '*')")
    try:
        parsed = KafkaPrincipal.parse(principal)
    except ValueError as exc:
        raise AclError(str(exc)) from None
    _check_text(principal, "principal")
    if op not in OPERATIONS.get(rtype, ()) and op != Operation.ALL:
        raise AclError(f"operation {op.name} does not apply to {rtype.name} resources")
    return AclBinding(rtype, name, ptype, str(parsed), host, op, perm)


@dataclass(frozen=True)
class AclFilter:
    """DescribeAcls/DeleteAcls filter: None or ANY fields match anything."""

    resource_type: ResourceType = ResourceType.ANY
    name: str | None = None
    pattern_type: PatternType = PatternType.ANY
    principal: str | None = None
    host: str | None = None
    operation: Operation = Operation.ANY
    permission: Permission = Permission.ANY

    @classmethod
    def parse(  # noqa: PLR0917 -- the seven fields of a Kafka ACL filter
        cls,
        resource_type: int,
        name: str | None,
        pattern_type: int,
        principal: str | None,
        host: str | None,
        operation: int,
        permission: int,
    ) -> AclFilter:
        rtype = _enum(ResourceType, resource_type, "resource type filter")
        ptype = _enum(PatternType, pattern_type, "pattern type filter")
        op = _enum(Operation, operation, "operation filter")
        perm = _enum(Permission, permission, "permission type filter")
        for value in (rtype, ptype, op, perm):
            if int(value) == 0:
                raise AclError(f"filter field {type(value).__name__} is UNKNOWN")
        return cls(rtype, name, ptype, principal, host, op, perm)

    def matches(self, b: AclBinding) -> bool:
        if self.resource_type not in (ResourceType.ANY, b.resource_type):
            return False
        if self.principal is not None and self.principal != b.principal:
            return False
        if self.host is not None and self.host != b.host:
            return False
        if self.operation not in (Operation.ANY, b.operation):
            return False
        if self.permission not in (Permission.ANY, b.permission):
            return False
        return self._pattern_matches(b)

    def _pattern_matches(self, b: AclBinding) -> bool:
        if self.pattern_type == PatternType.MATCH:
            # Bindings that would apply to the named resource: the same literal name, the literal
            # wildcard, or a prefix of it.
            if self.name is None:
                return True
            if b.pattern_type == PatternType.LITERAL:
                return b.name in (self.name, WILDCARD)
            return self.name.startswith(b.name)
        if self.pattern_type not in (PatternType.ANY, b.pattern_type):
            return False
        return self.name is None or self.name == b.name


def exact_filter(b: AclBinding) -> AclFilter:
    """The filter matching exactly this binding (and no other)."""
    return AclFilter(b.resource_type, b.name, b.pattern_type, b.principal, b.host, b.operation, b.permission)


class AclSet:
    """The bindings of a cluster in creation order; deterministic, so every broker applying the same
    commands holds the same set. Indexed by resource so a decision looks at the bindings that can apply
    (literal name, literal wildcard, prefixes of its type), not at all of them."""

    def __init__(self, bindings: Iterable[AclBinding] = ()) -> None:
        self._bindings: dict[AclBinding, None] = {}
        self._literal: dict[tuple[ResourceType, str], list[AclBinding]] = {}
        self._prefixed: dict[ResourceType, list[AclBinding]] = {}
        self.add(bindings)

    def __iter__(self) -> Iterator[AclBinding]:
        return iter(list(self._bindings))

    def __len__(self) -> int:
        return len(self._bindings)

    def _index(self, b: AclBinding) -> list[AclBinding]:
        if b.pattern_type == PatternType.PREFIXED:
            return self._prefixed.setdefault(b.resource_type, [])
        return self._literal.setdefault((b.resource_type, b.name), [])

    def add(self, bindings: Iterable[AclBinding]) -> int:
        """Adds the bindings not held yet (creating one twice is a no-op, as in Kafka); returns how many
        were new. Raises AclError when the set would exceed MAX_ACLS (nothing is added then)."""
        new = [b for b in dict.fromkeys(bindings) if b not in self._bindings]
        if len(self._bindings) + len(new) > MAX_ACLS:
            raise AclError(f"at most {MAX_ACLS} ACL bindings may exist ({len(self._bindings)} do)")
        for b in new:
            self._bindings[b] = None
            self._index(b).append(b)
        return len(new)

    def remove(self, bindings: Iterable[AclBinding]) -> list[AclBinding]:
        gone = [b for b in dict.fromkeys(bindings) if b in self._bindings]
        for b in gone:
            del self._bindings[b]
            self._index(b).remove(b)
        return gone

    def on_resource(self, resource: Resource) -> list[AclBinding]:
        """Every binding that applies to ``resource``."""
        found = list(self._literal.get((resource.resource_type, resource.name), ()))
        if resource.name != WILDCARD:
            found += self._literal.get((resource.resource_type, WILDCARD), ())
        found += (
            b for b in self._prefixed.get(resource.resource_type, ()) if resource.name.startswith(b.name)
        )
        return found

    def matching(self, acl_filter: AclFilter) -> list[AclBinding]:
        return [b for b in self._bindings if acl_filter.matches(b)]

    def to_json(self) -> list[dict[str, Any]]:
        return [b.as_json() for b in self._bindings]

    @classmethod
    def from_json(cls, docs: Any) -> AclSet:
        if not isinstance(docs, list):
            raise AclError("ACL list is not a JSON array")
        return cls(AclBinding.from_json(d) for d in docs)


CREATE_ACLS = "create_acls"
DELETE_ACLS = "delete_acls"
"""Ops of the controller commands creating or deleting exact bindings (``controller.commands``)."""


@dataclass(frozen=True)
class AuthorizerConfig:
    enabled: bool = False
    super_users: frozenset[str] = frozenset()
    allow_everyone_if_no_acl_found: bool = False


def parse_super_users(text: str) -> frozenset[str]:
    """``User:admin;User:broker`` -> the principals; raises ValueError naming a malformed one."""
    return frozenset(str(KafkaPrincipal.parse(p.strip())) for p in text.split(";") if p.strip())


class Authorizer:
    """Answers "may this principal from this host do this operation on this resource?"."""

    def __init__(self, config: AuthorizerConfig, acls: Callable[[], AclSet]) -> None:
        self.config = config
        self.acls = acls
        """The current bindings (a replicated broker's controller state is replaced by snapshots)."""

    @property
    def enabled(self) -> bool:
        return self.config.enabled

    def authorize(self, principal: KafkaPrincipal, host: str, op: Operation, resource: Resource) -> bool:
        if not self.config.enabled:
            return True
        who = str(principal)
        if who in self.config.super_users:
            return True
        principals = (who, f"{principal.principal_type}:{WILDCARD}")
        on_resource = self.acls().on_resource(resource)
        if not on_resource:
            return self.config.allow_everyone_if_no_acl_found
        mine = [b for b in on_resource if b.principal in principals and b.host in (host, WILDCARD)]
        if any(b.permission == Permission.DENY and b.operation in (op, Operation.ALL) for b in mine):
            return False
        allowing = (op, Operation.ALL, *_IMPLIED_BY.get(op, ()))
        return any(b.permission == Permission.ALLOW and b.operation in allowing for b in mine)

    def authorize_any(
        self, principal: KafkaPrincipal, host: str, op: Operation, resource_type: ResourceType
    ) -> bool:
        """May the principal do ``op`` on SOME resource of the type (Kafka's authorizeByResourceType):
        an ALLOW binding exists for it, and no DENY on the literal wildcard takes every resource away."""
        if not self.config.enabled or str(principal) in self.config.super_users:
            return True
        principals = (str(principal), f"{principal.principal_type}:{WILDCARD}")
        of_type = [b for b in self.acls() if b.resource_type == resource_type]
        if not of_type:
            return self.config.allow_everyone_if_no_acl_found
        mine = [b for b in of_type if b.principal in principals and b.host in (host, WILDCARD)]
        ops = (op, Operation.ALL)
        if any(
            b.permission == Permission.DENY
            and b.operation in ops
            and b.pattern_type == PatternType.LITERAL
            and b.name == WILDCARD
            for b in mine
        ):
            return False
        return any(b.permission == Permission.ALLOW and b.operation in ops for b in mine)

    def authorized_operations(self, principal: KafkaPrincipal, host: str, resource: Resource) -> int:
        """Kafka's bitfield: bit ``op`` set for every operation of the resource type that is allowed."""
        bits = 0
        for op in OPERATIONS.get(resource.resource_type, ()):
            if self.authorize(principal, host, op, resource):
                bits |= 1 << int(op)
        return bits
