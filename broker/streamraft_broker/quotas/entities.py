"""Client quota configuration as Kafka has it: entities, keys, validation, precedence and the command.

An entity is a set of (type, name) components, type ``user``, ``client-id`` or ``ip``; a None name is the
type's default entity (``<default>`` in kafka-configs). Keys and their value types are Kafka's
(``QuotaConfig``): ``producer_byte_rate`` and ``consumer_byte_rate`` (whole bytes per second),
``request_percentage`` and ``controller_mutation_rate`` for user and/or client-id entities,
``connection_creation_rate`` (whole connections per second) for ip entities. The last two are stored and
described but not enforced by this broker.

Changes travel as one ``alter_client_quotas`` command (``controller.commands.AlterClientQuotas``). The
controller state and the single-node file apply the same command through :meth:`ClientQuotas.apply`,
which validates the whole command before changing anything: a command that is not valid changes nothing
and raises ValueError.
"""

from __future__ import annotations

import ipaddress
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

ALTER_CLIENT_QUOTAS = "alter_client_quotas"

USER = "user"
CLIENT_ID = "client-id"
IP = "ip"
ENTITY_TYPES = (USER, CLIENT_ID, IP)

PRODUCER_BYTE_RATE = "producer_byte_rate"
CONSUMER_BYTE_RATE = "consumer_byte_rate"
REQUEST_PERCENTAGE = "request_percentage"
CONTROLLER_MUTATION_RATE = "controller_mutation_rate"
CONNECTION_CREATION_RATE = "connection_creation_rate"

INVALID_REQUEST = 42
UNSUPPORTED_VERSION = 35

_LONG_MAX = 9.223372036854776e18
_INT_MAX = 2147483647.0
# Kafka's ConfigDef types of the quota keys: the largest value and whether it must be whole.
_USER_CLIENT_KEYS: dict[str, tuple[float, bool]] = {
    PRODUCER_BYTE_RATE: (_LONG_MAX, True),
    CONSUMER_BYTE_RATE: (_LONG_MAX, True),
    REQUEST_PERCENTAGE: (math.inf, False),
    CONTROLLER_MUTATION_RATE: (math.inf, False),
}
_IP_KEYS: dict[str, tuple[float, bool]] = {CONNECTION_CREATION_RATE: (_INT_MAX, True)}
MAX_NAME_CHARS = 32767
"""Longest entity name (a Kafka protocol string)."""

Entity = tuple[tuple[str, str | None], ...]
"""Components sorted by type; a None name is the default entity of that type."""


class QuotaError(Exception):
    """Carries the Kafka error code to answer with and a message naming what was wrong."""

    def __init__(self, error_code: int, message: str) -> None:
        super().__init__(message)
        self.error_code = error_code


def entity_text(entity: Entity) -> str:
    """``user=alice,client-id=<default>``, for messages."""
    return ",".join(f"{t}={'<default>' if n is None else n}" for t, n in entity) or "<empty>"


def make_entity(components: Iterable[tuple[str, str | None]]) -> Entity:
    """A validated entity; raises QuotaError(INVALID_REQUEST) naming what is wrong."""
    seen: dict[str, str | None] = {}
    for kind, name in components:
        if kind not in ENTITY_TYPES:
            raise QuotaError(
                INVALID_REQUEST, f"unknown quota entity type {kind!r} (use user, client-id or ip)"
            )
        if kind in seen:
            raise QuotaError(INVALID_REQUEST, f"entity type {kind!r} appears more than once in one entity")
        if name is not None and not 1 <= len(name) <= MAX_NAME_CHARS:
            raise QuotaError(
                INVALID_REQUEST, f"{kind} name must be 1..{MAX_NAME_CHARS} characters (null for the default)"
            )
        seen[kind] = name
    if not seen:
        raise QuotaError(INVALID_REQUEST, "invalid empty client quota entity")
    if IP in seen:
        if len(seen) > 1:
            raise QuotaError(INVALID_REQUEST, "an ip entity cannot be combined with user or client-id")
        address = seen[IP]
        if address is not None:
            try:
                ipaddress.ip_address(address)
            except ValueError:
                raise QuotaError(INVALID_REQUEST, f"{address!r} is not a valid IP address") from None
    return tuple(sorted(seen.items()))


def _allowed_keys(entity: Entity) -> dict[str, tuple[float, bool]]:
    return _IP_KEYS if entity[0][0] == IP else _USER_CLIENT_KEYS


def check_op(entity: Entity, key: str, value: float | None) -> float | None:
    """The value to store (None: remove) once ``key`` is valid for ``entity`` and ``value`` valid for it."""
    allowed = _allowed_keys(entity)
    if key not in allowed:
        raise QuotaError(
            INVALID_REQUEST,
            f"{key!r} is not a quota key for entity {entity_text(entity)} "
            f"(valid: {', '.join(sorted(allowed))})",
        )
    if value is None:
        return None
    high, whole = allowed[key]
    if not math.isfinite(value) or value <= 0:
        raise QuotaError(INVALID_REQUEST, f"{key}: {value} must be a finite number above 0")
    if value > high:
        raise QuotaError(INVALID_REQUEST, f"{key}: {value} exceeds the largest allowed value {high:.0f}")
    if whole and abs(value % 1) > 1e-6:
        raise QuotaError(INVALID_REQUEST, f"{key}: {value} must be a whole number")
    return float(value)


@dataclass(frozen=True)
class Alteration:
    """One entity's changes: key -> new value, or None to remove the key."""

    entity: Entity
    ops: tuple[tuple[str, float | None], ...]


def _validated(alterations: Iterable[Alteration]) -> list[Alteration]:
    """The alterations with every entity and op validated; raises ValueError naming the problem."""
    try:
        out: list[Alteration] = []
        for a in alterations:
            entity = make_entity(a.entity)
            out.append(Alteration(entity, tuple((k, check_op(entity, k, v)) for k, v in a.ops)))
        return out
    except QuotaError as exc:
        raise ValueError(f"alter_client_quotas: {exc}") from None


# Where a (user, client-id) pair finds its quota, Kafka's order (docs "Quotas" section): each entry is the
# entity to look up and whether the sensor is shared across client-ids (user tag only) or users.
_USER_TAG, _CLIENT_TAG, _BOTH_TAGS = "user", "client", "both"


def _precedence(user: str, client_id: str) -> tuple[tuple[Entity, str], ...]:
    return (
        (((CLIENT_ID, client_id), (USER, user)), _BOTH_TAGS),
        (((CLIENT_ID, None), (USER, user)), _BOTH_TAGS),
        (((USER, user),), _USER_TAG),
        (((CLIENT_ID, client_id), (USER, None)), _BOTH_TAGS),
        (((CLIENT_ID, None), (USER, None)), _BOTH_TAGS),
        (((USER, None),), _USER_TAG),
        (((CLIENT_ID, client_id),), _CLIENT_TAG),
        (((CLIENT_ID, None),), _CLIENT_TAG),
    )


@dataclass(frozen=True)
class ResolvedQuota:
    """The bound that applies and the sensor it is measured on: Kafka's metric tags (user, client-id), an
    empty string where the matching entity has no such component (all its clients share one sensor)."""

    bound: float
    user_tag: str
    client_tag: str
    entity: Entity


class ClientQuotas:
    """Entity -> {key: value}. An entity whose last key is removed is gone (as in Kafka)."""

    def __init__(self) -> None:
        self.entities: dict[Entity, dict[str, float]] = {}
        self.has_user_client_quotas = False
        """Some user or client-id entity holds a key: enforcement can be skipped entirely otherwise."""

    def apply(self, alterations: Iterable[Alteration]) -> None:
        """Applies the alterations of an ``AlterClientQuotas`` command (``controller.commands``): all of
        them, or nothing (ValueError)."""
        for alteration in _validated(alterations):
            current = dict(self.entities.get(alteration.entity, {}))
            for key, value in alteration.ops:
                if value is None:
                    current.pop(key, None)
                else:
                    current[key] = value
            if current:
                self.entities[alteration.entity] = current
            else:
                self.entities.pop(alteration.entity, None)
        self._refresh()

    def _refresh(self) -> None:
        self.has_user_client_quotas = any(e[0][0] != IP for e in self.entities)

    def to_json(self) -> list[dict[str, Any]]:
        """For snapshots and the single-node file; sorted, so equal states give equal bytes."""
        return [
            {"entity": [list(c) for c in entity], "quotas": dict(sorted(values.items()))}
            for entity, values in sorted(self.entities.items(), key=lambda kv: json.dumps(kv[0]))
        ]

    @classmethod
    def from_json(cls, data: Any) -> ClientQuotas:
        """What ``to_json`` saved, validated as a command would be; raises ValueError naming the problem."""
        if not isinstance(data, list):
            raise ValueError("client quotas must be a list of entities")
        try:
            alterations = [
                Alteration(
                    tuple((str(t), None if n is None else str(n)) for t, n in item["entity"]),
                    tuple((str(k), None if v is None else float(v)) for k, v in item["quotas"].items()),
                )
                for item in data
            ]
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
            raise ValueError(f"a client quota entry is malformed: {exc!r}") from None
        state = cls()
        state.apply(alterations)
        return state

    def resolve(self, key: str, user: str, client_id: str) -> ResolvedQuota | None:
        """The quota ``key`` that applies to ``user`` (principal name) and ``client_id``, or None."""
        if not self.has_user_client_quotas:
            return None
        for entity, tags in _precedence(user, client_id):
            values = self.entities.get(entity)
            if values is not None and key in values:
                return ResolvedQuota(
                    values[key],
                    user if tags != _CLIENT_TAG else "",
                    client_id if tags != _USER_TAG else "",
                    entity,
                )
        return None

    def describe(
        self, components: Iterable[tuple[str, int, str | None]], strict: bool
    ) -> list[tuple[Entity, dict[str, float]]]:
        """Kafka's DescribeClientQuotas filter: (entity type, match type, match) components, match type 0
        exact name, 1 the default entity, 2 any entity of that type; ``strict`` excludes entities having
        other types too. Raises QuotaError for a filter Kafka refuses."""
        exact: dict[str, str | None] = {}
        specified: set[str] = set()
        for kind, match_type, match in components:
            if not kind:
                raise QuotaError(INVALID_REQUEST, "invalid empty entity type in the filter")
            if kind in exact or kind in specified:
                raise QuotaError(
                    INVALID_REQUEST, f"entity type {kind} cannot appear more than once in the filter"
                )
            if kind not in ENTITY_TYPES:
                raise QuotaError(UNSUPPORTED_VERSION, f"unsupported entity type {kind!r}")
            if match_type == 0:
                if match is None:
                    raise QuotaError(INVALID_REQUEST, f"{kind}: match type 0 (exact) needs a match string")
                exact[kind] = match
            elif match_type in (1, 2):
                if match is not None:
                    raise QuotaError(
                        INVALID_REQUEST, f"{kind}: match type {match_type} takes no match string"
                    )
                if match_type == 1:
                    exact[kind] = None
                else:
                    specified.add(kind)
            else:
                raise QuotaError(UNSUPPORTED_VERSION, f"unknown match type {match_type}")
        kinds = set(exact) | specified
        if IP in kinds and len(kinds) > 1:
            raise QuotaError(
                INVALID_REQUEST, "an ip filter component cannot be combined with user or client-id"
            )
        out = []
        for entity, values in self.entities.items():
            parts = dict(entity)
            if strict and len(parts) != len(kinds):
                continue
            if all(k in parts and parts[k] == v for k, v in exact.items()) and specified <= parts.keys():
                out.append((entity, dict(values)))
        return out
