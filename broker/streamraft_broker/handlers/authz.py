"""One-line authorization checks for handlers: the principal and host of the request being served
(``current_session()``) against the broker's authorizer (``ctx.authorizer``; allows everything when no
``authorizer.class.name`` is configured)."""

from __future__ import annotations

from streamraft_broker.handlers.context import BrokerContext
from streamraft_broker.security.acl import (
    CLUSTER,
    CLUSTER_AUTHORIZATION_FAILED,
    GROUP_AUTHORIZATION_FAILED,
    TOPIC_AUTHORIZATION_FAILED,
    Operation,
    Resource,
    ResourceType,
)
from streamraft_broker.security.principal import current_session
from streamraft_broker.topics.internal import INVALID_TOPIC_EXCEPTION, is_internal

NOT_REQUESTED = -2147483648
"""Kafka's authorized-operations value when the client did not ask for them (INT32_MIN)."""


def may(ctx: BrokerContext, op: Operation, resource: Resource) -> bool:
    session = current_session()
    return ctx.authorizer.authorize(session.principal, session.client_host, op, resource)


def may_topic(ctx: BrokerContext, op: Operation, topic: str) -> bool:
    return may(ctx, op, Resource.topic(topic))


def may_cluster(ctx: BrokerContext, op: Operation) -> bool:
    return may(ctx, op, CLUSTER)


def topic_denied(ctx: BrokerContext, op: Operation, topic: str) -> int:
    """TOPIC_AUTHORIZATION_FAILED when ``op`` on ``topic`` is not allowed, else 0."""
    return 0 if may_topic(ctx, op, topic) else TOPIC_AUTHORIZATION_FAILED


def group_denied(ctx: BrokerContext, op: Operation, group: str) -> int:
    return 0 if may(ctx, op, Resource.group(group)) else GROUP_AUTHORIZATION_FAILED


def cluster_denied(ctx: BrokerContext, op: Operation) -> int:
    return 0 if may_cluster(ctx, op) else CLUSTER_AUTHORIZATION_FAILED


def may_create_topic(ctx: BrokerContext, topic: str) -> bool:
    """Kafka: Create on the cluster, or on the topic."""
    return may_cluster(ctx, Operation.CREATE) or may_topic(ctx, Operation.CREATE, topic)


def may_idempotent_write(ctx: BrokerContext) -> bool:
    """Kafka 3+: IdempotentWrite on the cluster, or Write on some topic (KIP-679)."""
    session = current_session()
    return may_cluster(ctx, Operation.IDEMPOTENT_WRITE) or ctx.authorizer.authorize_any(
        session.principal, session.client_host, Operation.WRITE, ResourceType.TOPIC
    )


def operations(ctx: BrokerContext, resource: Resource, requested: bool) -> int:
    """The authorized-operations bitfield of ``resource`` for this request, or Kafka's "not requested"."""
    if not requested:
        return NOT_REQUESTED
    session = current_session()
    return ctx.authorizer.authorized_operations(session.principal, session.client_host, resource)


def config_denied(ctx: BrokerContext, op: Operation, resource_type: int, name: str) -> int:
    """DescribeConfigs/AlterConfigs on a topic (TOPIC_AUTHORIZATION_FAILED) or on a broker, which Kafka
    checks on the Cluster (CLUSTER_AUTHORIZATION_FAILED)."""
    if resource_type == ResourceType.TOPIC:
        return topic_denied(ctx, op, name)
    return cluster_denied(ctx, op)


def produce_refused(ctx: BrokerContext, topic: str) -> int:
    """Produce needs Write on the topic; internal topics take no client writes whatever the ACLs say
    (Kafka: INVALID_TOPIC_EXCEPTION, "Cannot append to internal topic")."""
    return topic_denied(ctx, Operation.WRITE, topic) or (INVALID_TOPIC_EXCEPTION if is_internal(topic) else 0)
