"""What every handler gets: this node's identity, the topic registry, metrics and optional subsystems."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from kio.schema.errors import ErrorCode

from streamraft_broker.metrics import BrokerMetrics
from streamraft_broker.protocol.fetch_response import Chunk
from streamraft_broker.protocol.header import RequestHeader
from streamraft_broker.quotas.manager import QuotaManager
from streamraft_broker.security.acl import AclSet, Authorizer, AuthorizerConfig
from streamraft_broker.security.principal import current_session
from streamraft_broker.topics.registry import TopicRegistry


@dataclass
class RawResponse:
    """A pre-framed response (size prefix included) that may contain file slices for sendfile."""

    parts: list[Chunk]


@dataclass
class BrokerContext:
    node_id: int
    host: str
    port: int
    cluster_id: str
    registry: TopicRegistry
    metrics: BrokerMetrics
    # The settings auto_create_topics_enable, num_partitions and default_replication_factor.
    auto_create_topics: bool = True
    default_partitions: int = 1
    default_replication_factor: int = 3
    # Consumer-group coordinator and idempotent-producer state, wired in when those modules are present.
    groups: Any = None
    producers: Any = None
    extra: dict[str, Any] = field(default_factory=dict)
    authorizer: Authorizer = field(default_factory=lambda: Authorizer(AuthorizerConfig(), AclSet))
    """Decides every request's operations (see security.acl); allows everything unless configured."""
    quotas: QuotaManager | None = None
    """Client quotas: their configuration and enforcement (see ``streamraft_broker.quotas``)."""
    # Set when the broker stops: long-polling fetches answer at once instead of holding shutdown up.
    shutting_down: asyncio.Event = field(default_factory=asyncio.Event)


HandlerResult = Any  # a kio response entity, a RawResponse, or None for "send nothing" (acks=0)
Handler = Callable[[BrokerContext, RequestHeader, Any], Awaitable[HandlerResult]]


def endpoint_of(ctx: BrokerContext, node_id: int, host: str, port: int) -> tuple[str, int]:
    """The address of broker ``node_id`` on the listener the current request arrived on (Kafka answers
    each listener with that listener's endpoints); ``host``/``port`` is its inter-broker address, used
    when that listener's address of another broker is not known."""
    if node_id == ctx.node_id:
        advertised = ctx.extra.get("advertised_listeners")
        if advertised:
            found = advertised.get(current_session().listener)
            if found is not None:
                return found[0], int(found[1])
    else:
        others = ctx.extra.get("peer_listeners")
        if others:
            found = others(node_id, current_session().listener)
            if found is not None:
                return found[0], int(found[1])
    return host, port


def err(code: int) -> ErrorCode:
    return ErrorCode(code)
