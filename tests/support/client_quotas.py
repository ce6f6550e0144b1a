"""AlterClientQuotas and DescribeClientQuotas through kafka-python's own protocol classes and connections.

kafka-python 3.0 encodes both APIs (``kafka.protocol.admin``) but its KafkaAdminClient has no method for
them yet, so these helpers send the requests on the admin client's connection manager (``_manager``,
the object its own admin methods use).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kafka import KafkaAdminClient
from kafka.protocol.admin import AlterClientQuotasRequest, DescribeClientQuotasRequest

EXACT, DEFAULT, ANY = 0, 1, 2
"""DescribeClientQuotas match types."""

EntityKey = tuple[tuple[str, str | None], ...]


@contextmanager
def admin_client(bootstrap: str) -> Iterator[KafkaAdminClient]:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
    try:
        yield admin
    finally:
        admin.close()


def set_quotas(bootstrap: str, entity: dict[str, str | None], ops: dict[str, float | None]) -> None:
    """One alteration through a short-lived admin client; fails the test unless it succeeded."""
    with admin_client(bootstrap) as admin:
        result = alter(admin, [(entity, ops)])
    assert result == [(0, None)], result


def _send(admin: KafkaAdminClient, request: Any, node_id: int | None) -> Any:
    manager = admin._manager  # see the module docstring

    async def call() -> Any:
        return await manager.send(request, node_id=node_id)

    return manager.run(call)


def alter(
    admin: KafkaAdminClient,
    entries: list[tuple[dict[str, str | None], dict[str, float | None]]],
    *,
    validate_only: bool = False,
    node_id: int | None = None,
) -> list[tuple[int, str | None]]:
    """(entity type -> name or None for the default, key -> value or None to remove) per entry; returns
    each entry's (error code, message)."""
    request = AlterClientQuotasRequest(
        entries=[
            (
                [(kind, name) for kind, name in entity.items()],
                [(key, 0.0 if value is None else float(value), value is None) for key, value in ops.items()],
            )
            for entity, ops in entries
        ],
        validate_only=validate_only,
    )
    response = _send(admin, request, node_id)
    return [(int(e.error_code), e.error_message) for e in response.entries]


def describe(
    admin: KafkaAdminClient,
    components: list[tuple[str, int, str | None]],
    *,
    strict: bool = False,
    node_id: int | None = None,
) -> tuple[int, dict[EntityKey, dict[str, float]]]:
    """(error code, {entity (sorted (type, name) pairs): {key: value}})."""
    request = DescribeClientQuotasRequest(components=components, strict=strict)
    response = _send(admin, request, node_id)
    found: dict[EntityKey, dict[str, float]] = {}
    for entry in response.entries or []:
        entity = tuple(sorted((e.entity_type, e.entity_name) for e in entry.entity))
        found[entity] = {v.key: float(v.value) for v in entry.values}
    return int(response.error_code), found
