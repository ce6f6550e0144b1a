"""One StreamTopic reconcile through the Kafka Admin API, and its deletion."""

import asyncio
from collections.abc import Mapping
from typing import Any

from streamraft_operator import topicadmin
from streamraft_operator.brokers import BrokersUnreachable
from streamraft_operator.clusterreconcile import (
    Emit,
    cluster_addresses,
    conditions_status,
    fetch_cluster,
    is_paused,
    write_status,
)
from streamraft_operator.constants import EVENT_TOPIC_CREATED, EVENT_TOPIC_DRIFT, PAUSED_ANNOTATION
from streamraft_operator.kube import Kube
from streamraft_operator.spec import SpecError, TopicSpec, parse_topic
from streamraft_operator.status import Condition
from streamraft_operator.topicplan import plan_topic


def _failed(reason: str, message: str) -> list[Condition]:
    return [
        Condition("Ready", False, reason, message),
        Condition("Progressing", False, reason, message),
        Condition("Degraded", True, reason, message),
    ]


def _sync_topic(kube: Kube, body: Mapping[str, Any], t: TopicSpec, emit: Emit) -> tuple[list[Condition], int]:
    cluster = fetch_cluster(kube, t.namespace, t.cluster)
    if cluster is None:
        return _failed(
            "ClusterNotFound", f"StreamCluster {t.cluster} not found in namespace {t.namespace}"
        ), 0
    try:
        addresses = cluster_addresses(kube, cluster)
    except SpecError as exc:
        return _failed("ClusterNotReady", f"StreamCluster {t.cluster} is invalid: {exc}"), 0
    if not addresses:
        return _failed("ClusterNotReady", f"StreamCluster {t.cluster} has no broker with an address yet"), 0
    try:
        observed = topicadmin.describe(addresses, t.topic, list(t.config))
        plan = plan_topic(t, observed)
        if plan.create:
            topicadmin.create(addresses, t.topic, t.partitions, t.replicas, plan.set_config)
            emit(
                EVENT_TOPIC_CREATED,
                f"created topic {t.topic} ({t.partitions} partitions, {t.replicas} replicas)",
            )
            return [
                Condition("Ready", True, "TopicCreated", f"topic {t.topic} created"),
                Condition("Progressing", False, "TopicCreated", "nothing left to do"),
                Condition("Degraded", False, "AsExpected", "no problems seen"),
            ], t.partitions
        assert observed is not None
        if plan.grow_to is not None:
            topicadmin.grow(addresses, t.topic, plan.grow_to)
        if plan.set_config:
            topicadmin.set_config(addresses, t.topic, plan.set_config)
            emit(
                EVENT_TOPIC_DRIFT, f"set {', '.join(f'{k}={v}' for k, v in sorted(plan.set_config.items()))}"
            )
    except (topicadmin.AdminFailed, BrokersUnreachable) as exc:
        return _failed("AdminFailed", str(exc)), 0
    partitions = plan.grow_to or observed.partitions
    if plan.problems:
        reason = "PartitionsCannotShrink" if observed.partitions > t.partitions else "AdminFailed"
        message = "; ".join(plan.problems)
        return [
            Condition("Ready", True, reason, f"topic {t.topic} exists; {message}"),
            Condition("Progressing", False, reason, message),
            Condition("Degraded", True, reason, message),
        ], partitions
    reason = "TopicDriftReverted" if plan.set_config or plan.grow_to else "TopicInSync"
    return [
        Condition("Ready", True, reason, f"topic {t.topic} matches the spec"),
        Condition("Progressing", False, reason, "nothing left to do"),
        Condition("Degraded", False, "AsExpected", "no problems seen"),
    ], partitions


def reconcile_topic_sync(kube: Kube, body: Mapping[str, Any], emit: Emit) -> dict[str, Any]:
    meta = body["metadata"]
    if is_paused(body):
        conds = [Condition("Progressing", False, "Paused", f"{PAUSED_ANNOTATION} is set; not reconciling")]
        return write_status(kube, body, conditions_status(body, conds))
    try:
        t = parse_topic(meta["name"], meta["namespace"], body.get("spec") or {})
    except SpecError as exc:
        return write_status(kube, body, conditions_status(body, _failed("InvalidSpec", str(exc))))
    conds, partitions = _sync_topic(kube, body, t, emit)
    desired: dict[str, Any] = {**conditions_status(body, conds), "topicName": t.topic}
    if partitions:
        desired["partitions"] = partitions
        desired["replicas"] = t.replicas
    return write_status(kube, body, desired)


def delete_topic_sync(kube: Kube, body: Mapping[str, Any]) -> str:
    """Deletes the Kafka topic; returns what was done. Raises BrokersUnreachable to be retried later."""
    meta = body["metadata"]
    if is_paused(body):
        return "paused: Kafka topic left in place"
    try:
        t = parse_topic(meta["name"], meta["namespace"], body.get("spec") or {})
    except SpecError:
        return "invalid spec: no Kafka topic was ever created"
    cluster = fetch_cluster(kube, t.namespace, t.cluster)
    if cluster is None:
        return f"StreamCluster {t.cluster} is gone, and its topics with it"
    if cluster["metadata"].get("deletionTimestamp"):
        # Its brokers are going away with their volumes: waiting for them to delete the topic would
        # hold the StreamTopic's finalizer until the retries ran out, for nothing.
        return f"StreamCluster {t.cluster} is being deleted, and its topics with it"
    addresses = cluster_addresses(kube, cluster)
    if not addresses:
        raise BrokersUnreachable(f"StreamCluster {t.cluster} has no broker with an address")
    try:
        topicadmin.delete(addresses, t.topic)
    except topicadmin.AdminFailed as exc:
        raise BrokersUnreachable(str(exc)) from exc
    return f"deleted Kafka topic {t.topic}"


async def reconcile_topic(kube: Kube, body: Mapping[str, Any], emit: Emit) -> dict[str, Any]:
    return await asyncio.to_thread(reconcile_topic_sync, kube, body, emit)


async def delete_topic(kube: Kube, body: Mapping[str, Any]) -> str:
    return await asyncio.to_thread(delete_topic_sync, kube, body)
