"""One StreamCluster reconcile: apply the desired objects, observe brokers, take at most one disruptive step
(restart one pod, or remove one broker), and write status only if it changed.

Idempotent and restartable: objects are server-side applied by name, and every decision is recomputed
from what the API server and the brokers say now, so an operator restart mid-way repeats nothing twice.
"""

import asyncio
import dataclasses
import datetime
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

from streamraft_operator import applyfailure, brokerconfigadmin, brokers, clustersecrets, metrics, resources
from streamraft_operator.configkeys import dynamic_broker_configs, plan_dynamic_configs
from streamraft_operator.constants import (
    ADMIN_PORT,
    API_VERSION,
    CLUSTER_KIND,
    EVENT_APPLY_FAILED,
    EVENT_BROKER_CONFIG,
    EVENT_MANUAL_ROLL,
    EVENT_ROLLING_RESTART,
    EVENT_SCALE_DOWN,
    EVENT_SECRETS,
    EVENT_STORAGE_REFUSED,
    EVENT_STORAGE_RESIZED,
    METRICS_PORT,
    PAUSED_ANNOTATION,
)
from streamraft_operator.kube import Kube, KubeError, now_rfc3339, path_for, with_owner
from streamraft_operator.manualroll import MANUAL_ROLL_ANNOTATION, ManualRoll, PodView, plan_manual_roll
from streamraft_operator.rollout import (
    PartitionState,
    broker_of,
    in_sync_view,
    leaderless,
    next_restart,
    partitions_led,
    scale_down_blocker,
    under_replicated,
)
from streamraft_operator.spec import ClusterSpec, SpecError, parse_cluster
from streamraft_operator.status import (
    BrokerObservation,
    ClusterObservation,
    Condition,
    cluster_conditions,
    render_conditions,
    status_patch,
)
from streamraft_operator.storageplan import (
    StoragePlan,
    claim_observation,
    plan_storage,
    quantity,
    template_storage,
)
from streamraft_operator.topicadmin import AdminFailed

Emit = Callable[[str, str], None]  # (reason, message) -> an Event on the StreamCluster
ALLOW_SECURITY_CONTEXT_OVERRIDE_ENV = "STREAMRAFT_ALLOW_SECURITY_CONTEXT_OVERRIDE"
"""Set by `streamraft-operator --allow-security-context-override` (chart value)."""


def security_context_override_allowed() -> bool:
    return os.environ.get(ALLOW_SECURITY_CONTEXT_OVERRIDE_ENV, "").lower() in ("1", "true", "yes")


def ensure_secrets(kube: Kube, body: Mapping[str, Any], c: ClusterSpec, emit: Emit) -> str | None:
    """Creates or renews the cluster's generated Secrets; returns the admin token."""
    existing = {
        name: clustersecrets.secret_data(kube.get("v1", "Secret", c.namespace, name))
        for name in clustersecrets.secret_names(c)
    }
    now = datetime.datetime.now(datetime.UTC)
    wanted = clustersecrets.plan_secrets(c, existing, now, resources.labels(c))
    for obj in wanted.secrets:
        try:
            kube.apply(with_owner(obj, body))
        except KubeError as exc:
            if not applyfailure.refused(exc):
                raise
            raise applyfailure.ApplyRefused(
                exc.status, applyfailure.describe("Secret", obj["metadata"]["name"], exc)
            ) from exc
        existing[obj["metadata"]["name"]] = clustersecrets.secret_data(obj)
    for change in wanted.changes:
        emit(EVENT_SECRETS, change)
    token = existing[clustersecrets.admin_token_secret_name(c)].get(clustersecrets.TOKEN_KEY, b"")
    return token.decode().strip() or None


def is_paused(body: Mapping[str, Any]) -> bool:
    value = (body.get("metadata", {}).get("annotations") or {}).get(PAUSED_ANNOTATION, "")
    return str(value).lower() in ("true", "1", "yes")


def pod_ready(pod: Mapping[str, Any]) -> bool:
    for cond in pod.get("status", {}).get("conditions") or ():
        if cond.get("type") == "Ready":
            return bool(cond.get("status") == "True")
    return False


def ordinal(pod_name: str) -> int:
    return int(pod_name.rsplit("-", 1)[1])


def write_status(kube: Kube, body: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any]:
    """Merge-patch only the changed top-level status fields; nothing at all when unchanged."""
    diff = status_patch(body.get("status") or {}, desired)
    if diff:
        meta = body["metadata"]
        path = path_for(body["apiVersion"], body["kind"], meta["namespace"], meta["name"]) + "/status"
        kube.request("PATCH", path, body={"status": diff}, content_type="application/merge-patch+json")
    return diff


def conditions_status(body: Mapping[str, Any], conds: list[Condition]) -> dict[str, Any]:
    gen = int(body["metadata"].get("generation", 0))
    previous = (body.get("status") or {}).get("conditions")
    return {"observedGeneration": gen, "conditions": render_conditions(conds, previous, gen, now_rfc3339())}


def _observe_partitions(addresses: list[str]) -> tuple[list[PartitionState] | None, str | None]:
    if not addresses:
        return None, None
    try:
        return brokers.partition_states(addresses), None
    except brokers.BrokersUnreachable as exc:
        return None, str(exc)


def _observe_health(pods: Mapping[str, Mapping[str, Any]], enabled: bool) -> dict[int, brokers.BrokerHealth]:
    """Replication gauges of every Ready broker, by node id (none when metrics are off)."""
    out: dict[int, brokers.BrokerHealth] = {}
    for name, pod in pods.items():
        ip = pod.get("status", {}).get("podIP")
        if enabled and ip and pod_ready(pod):
            got = brokers.health(ip, METRICS_PORT)
            if got is not None:
                out[broker_of(name)] = got
    return out


def brokers_behind(health: Mapping[int, brokers.BrokerHealth]) -> str | None:
    """What the brokers themselves report as not caught up, in words; None when nothing is."""
    under = sum(h.under_replicated or 0 for h in health.values())
    lost = sum(h.leaderless or 0 for h in health.values())
    parts = []
    if under:
        parts.append(f"{under} under-replicated partition(s)")
    if lost:
        parts.append(f"{lost} partition replica(s) without a known leader")
    return " and ".join(parts) + " reported by the brokers" if parts else None


def _drain(
    c: ClusterSpec,
    pods: Mapping[str, Mapping[str, Any]],
    health: Mapping[int, brokers.BrokerHealth],
    node: int,
    token: str | None,
) -> str:
    """Asks the controller to move replicas off `node`; returns the condition message either way.

    Sent to the controller's pod when the brokers agree on one (any broker forwards it, but the
    controller answers without a hop), else to any Ready broker."""
    controllers = {h.controller for h in health.values() if h.controller is not None}
    candidates = [f"{c.name}-{resources.ordinal_of(n)}" for n in controllers] if len(controllers) == 1 else []
    candidates += sorted(n for n, p in pods.items() if pod_ready(p))
    for pod_name in candidates:
        ip = (pods.get(pod_name) or {}).get("status", {}).get("podIP")
        if ip:
            return brokers.decommission(ip, ADMIN_PORT, node, token)[1]
    return f"no broker has an address to ask for the drain of broker {node}"


def _manual_roll(
    kube: Kube, body: Mapping[str, Any], live: Mapping[str, Mapping[str, Any]], emit: Emit
) -> ManualRoll:
    """Plans the manual rolling update and records a cluster-wide request (removing its annotation)."""
    meta = body["metadata"]
    views = {
        n: PodView(str(p["metadata"].get("uid", "")), p["metadata"].get("annotations") or {})
        for n, p in live.items()
    }
    plan = plan_manual_roll(meta.get("annotations") or {}, views)
    if plan.annotations:
        kube.merge_patch(
            API_VERSION,
            CLUSTER_KIND,
            meta["namespace"],
            meta["name"],
            {"metadata": {"annotations": dict(plan.annotations)}},
        )
    if plan.accepted:
        emit(EVENT_MANUAL_ROLL, f"manual rolling update requested for {', '.join(plan.accepted)}")
    return plan


def apply_dynamic_configs(c: ClusterSpec, addresses: list[str], emit: Emit) -> str | None:
    """Makes the cluster-wide dynamic broker configs match spec.config's dynamic keys; returns why it
    could not (None when done). A spec without dynamic keys is not failed by brokers that will not answer
    (ACLs on, the operator not a super user): there is nothing it asks for."""
    desired = dynamic_broker_configs(c.config)
    try:
        current = brokerconfigadmin.describe_default_broker_configs(addresses)
        ops = plan_dynamic_configs(desired, current)
        brokerconfigadmin.alter_default_broker_configs(addresses, ops)
    except (AdminFailed, brokers.BrokersUnreachable) as exc:
        return str(exc) if desired else None
    if ops:
        done = ", ".join(f"{k}={v}" if v is not None else f"{k} removed" for k, v in ops.items())
        emit(EVENT_BROKER_CONFIG, f"{done} (cluster-wide dynamic broker configs, applied without a restart)")
    return None


STS_GONE_TIMEOUT_S = 30.0
"""How long a reconcile waits for an orphaning StatefulSet deletion to finish before re-creating it."""


def _observe_storage(
    kube: Kube, c: ClusterSpec, current_sts: Mapping[str, Any] | None, most: int
) -> tuple[StoragePlan, dict[int, str]]:
    """The storage plan, and each broker PVC's capacity by pod ordinal (when bound)."""
    prefix = f"data-{c.name}-"
    claims = {}
    for pvc in kube.list("v1", "PersistentVolumeClaim", c.namespace, resources.selector_string(c)):
        name = pvc["metadata"]["name"]
        suffix = name[len(prefix) :] if name.startswith(prefix) else ""
        if suffix.isdigit() and int(suffix) < most and not pvc["metadata"].get("deletionTimestamp"):
            claims[int(suffix)] = claim_observation(pvc)
    expandable = {}
    # Classes are only read when a claim is to grow, so a steady cluster needs no StorageClass access.
    growing = [cl for cl in claims.values() if quantity(cl.requested) < quantity(c.storage_size)]
    for cls in sorted({cl.storage_class for cl in growing if cl.storage_class}):
        sc = kube.get("storage.k8s.io/v1", "StorageClass", None, cls)
        expandable[cls] = bool((sc or {}).get("allowVolumeExpansion"))
    plan = plan_storage(
        c.storage_size,
        c.storage_class,
        template_storage(current_sts),
        [claims[o] for o in sorted(claims)],
        expandable,
    )
    return plan, {o: cl.capacity for o, cl in claims.items() if cl.capacity is not None}


def _recreate_stateful_set(kube: Kube, namespace: str, name: str) -> None:
    """Deletes the StatefulSet leaving its pods running (propagationPolicy=Orphan) and waits until it is gone,
    so the apply that follows creates it with the new volumeClaimTemplates and adopts the same pods."""
    kube.delete("apps/v1", "StatefulSet", namespace, name, propagation="Orphan")
    deadline = time.monotonic() + STS_GONE_TIMEOUT_S
    while kube.get("apps/v1", "StatefulSet", namespace, name) is not None:
        if time.monotonic() > deadline:
            raise KubeError(0, f"StatefulSet {name} still being deleted after {STS_GONE_TIMEOUT_S:.0f}s")
        time.sleep(0.2)


def reconcile_cluster_sync(kube: Kube, body: Mapping[str, Any], emit: Emit) -> dict[str, Any]:
    """Returns the status fields written (empty when nothing changed)."""
    meta = body["metadata"]
    name, namespace = meta["name"], meta["namespace"]
    if is_paused(body):
        conds = [Condition("Progressing", False, "Paused", f"{PAUSED_ANNOTATION} is set; not reconciling")]
        return write_status(kube, body, conditions_status(body, conds))
    try:
        c = parse_cluster(
            name,
            namespace,
            body.get("spec") or {},
            allow_security_context_override=security_context_override_allowed(),
        )
    except SpecError as exc:
        obs = ClusterObservation(0, (), invalid=str(exc))
        return write_status(kube, body, conditions_status(body, cluster_conditions(obs)))
    # Before the pods that mount them; for every broker the StatefulSet may hold (even during scale-down).
    current_sts = kube.get("apps/v1", "StatefulSet", namespace, name)
    most = max(c.replicas, int(current_sts["spec"]["replicas"]) if current_sts else 0)
    try:
        token = ensure_secrets(kube, body, dataclasses.replace(c, replicas=most), emit)
    except applyfailure.ApplyRefused as exc:
        # Nothing else is applied without the Secrets the pods mount; say so, then back off.
        obs = ClusterObservation(c.replicas, (), apply_failed=exc.what)
        write_status(kube, body, conditions_status(body, cluster_conditions(obs)))
        emit(EVENT_APPLY_FAILED, exc.what)
        raise

    current = current_sts
    current_replicas = int(current["spec"]["replicas"]) if current else c.replicas
    pods = {
        p["metadata"]["name"]: p
        for p in kube.list("v1", "Pod", namespace, resources.selector_string(c))
        if not p["metadata"].get("deletionTimestamp")
    }
    addresses = [
        f"{p['status']['podIP']}:{c.kafka_port}" for p in pods.values() if p.get("status", {}).get("podIP")
    ]
    metadata, unreachable = _observe_partitions(addresses)
    if unreachable is not None and not any(pod_ready(p) for p in pods.values()):
        unreachable = None  # nothing is up yet: that is "not ready", not "unreachable"
    health = _observe_health(pods, c.metrics_enabled)
    lag: dict[tuple[str, int], dict[int, int]] = {}
    for h in health.values():
        for key, followers in h.follower_lag.items():
            lag.setdefault(key, {}).update(followers)
    up = {broker_of(n) for n, p in pods.items() if pod_ready(p)}
    partitions = None if metadata is None else in_sync_view(metadata, lag, up)

    # Scale-down removes one broker at a time, and only once it holds no partition replica: the
    # controller is asked to drain it first (decommission), and the pod goes once Metadata shows it empty.
    target = c.replicas
    blocked: str | None = None
    blocked_reason = "RestartBlocked"
    if c.replicas < current_replicas:
        highest = resources.node_id(current_replicas - 1)
        pod_name = f"{name}-{current_replicas - 1}"
        why = scale_down_blocker(highest, partitions)
        if why is None:
            target = current_replicas - 1
            emit(EVENT_SCALE_DOWN, f"removing broker {highest} ({pod_name}): it holds no replicas")
        else:
            if partitions is not None:
                why = f"{why}; {_drain(c, pods, health, highest, token)}"
            target, blocked, blocked_reason = current_replicas, why, "ScaleDownBlocked"
    storage, capacities = _observe_storage(kube, c, current_sts, most)
    failed: tuple[int, str] | None = None  # the first apply the API server refused: (HTTP status, what)
    # One Warning per spec generation (status records the generation it last saw), not one per resync.
    seen_generation = (body.get("status") or {}).get("observedGeneration")
    if storage.refused is not None and seen_generation != meta.get("generation"):
        emit(EVENT_STORAGE_REFUSED, storage.refused)
    for pvc_name, size in storage.resize:
        try:
            kube.merge_patch(
                "v1",
                "PersistentVolumeClaim",
                namespace,
                pvc_name,
                {"spec": {"resources": {"requests": {"storage": size}}}},
            )
            emit(EVENT_STORAGE_RESIZED, f"{pvc_name}: requests.storage -> {size}")
        except KubeError as exc:
            if not applyfailure.refused(exc):
                raise
            failed = failed or (exc.status, applyfailure.describe("PersistentVolumeClaim", pvc_name, exc))
    if storage.recreate and failed is None:
        _recreate_stateful_set(kube, namespace, name)
        emit(EVENT_STORAGE_RESIZED, f"StatefulSet {name} re-created (pods orphaned, not restarted) "
             f"with volumeClaimTemplates of {storage.size}")  # fmt: skip
    # A refused storage change keeps the StatefulSet's current template so every other change still applies.
    applied = dataclasses.replace(
        c, replicas=target, storage_size=storage.size, storage_class=storage.storage_class
    )

    sm_crd = c.service_monitor and kube.crd_exists("servicemonitors.monitoring.coreos.com")
    sts: Mapping[str, Any] = {}
    for obj in resources.desired_objects(applied, service_monitor_crd=sm_crd):
        try:
            out = kube.apply(with_owner(obj, body))
        except KubeError as exc:
            if not applyfailure.refused(exc):
                raise
            failed = failed or (exc.status, applyfailure.describe(obj["kind"], obj["metadata"]["name"], exc))
            continue
        if obj["kind"] == "StatefulSet":
            sts = out

    # Rolling restart (updateStrategy OnDelete): at most one pod per reconcile, only if quorum holds.
    revision = (sts.get("status") or {}).get("updateRevision")
    live = {n: p for n, p in pods.items() if ordinal(n) < target}
    manual = _manual_roll(kube, body, live, emit)
    outdated = sorted(
        {
            n
            for n, p in live.items()
            if revision and p["metadata"].get("labels", {}).get("controller-revision-hash") != revision
        }
        | set(manual.pods)
    )
    ready = {n: pod_ready(p) for n, p in live.items()}
    waiting: str | None = None
    if blocked is None and outdated:
        # One broker has no quorum to keep; a restart is downtime either way.
        decision = (
            next_restart(outdated, ready, partitions, behind=brokers_behind(health))
            if target > 1
            else next_restart(outdated, ready, [])
        )
        if decision.pod is not None:
            kube.delete("v1", "Pod", namespace, decision.pod)
            metrics.RESTARTS.inc()
            why = (
                f"manual rolling update ({MANUAL_ROLL_ANNOTATION})"
                if decision.pod in manual.pods
                else f"to apply revision {revision}"
            )
            emit(EVENT_ROLLING_RESTART, f"restarted {decision.pod}: {why}")
        elif decision.waiting:
            waiting = decision.blocked
        elif decision.blocked is not None:
            blocked = decision.blocked

    # Dynamic broker configs go over the Admin API once the brokers answer; they never restart a broker.
    config_failed = None
    if addresses and metadata is not None:
        config_failed = apply_dynamic_configs(c, addresses, emit)

    led = partitions_led(partitions or [])
    observed: list[BrokerObservation] = []
    for pod_name in sorted(pods, key=ordinal):
        pod = pods[pod_name]
        bid = broker_of(pod_name)
        seen = health.get(bid)
        observed.append(
            BrokerObservation(
                bid,
                pod_name,
                pod_ready(pod),
                led.get(bid, 0) if partitions else None,
                seen.max_lag if seen is not None else None,
                capacities.get(ordinal(pod_name)),
            )
        )
    labels = (namespace, name)
    metrics.BROKERS_DESIRED.labels(*labels).set(c.replicas)
    metrics.BROKERS_READY.labels(*labels).set(sum(1 for b in observed if b.ready))
    metrics.UNREACHABLE.labels(*labels).set(1 if unreachable else 0)
    if partitions is not None:
        metrics.UNDER_REPLICATED.labels(*labels).set(len(under_replicated(partitions)))
        metrics.LEADERLESS.labels(*labels).set(len(leaderless(partitions)))
    obs = ClusterObservation(
        desired_replicas=c.replicas,
        brokers=tuple(observed),
        outdated_pods=tuple(outdated),
        manual_pods=manual.pods,
        blocked=blocked,
        blocked_reason=blocked_reason,
        waiting=waiting,
        unreachable=unreachable,
        apply_failed=failed[1] if failed else None,
        storage_refused=storage.refused,
        storage_resizing=storage.resizing,
        config_failed=config_failed,
    )
    desired = {
        **conditions_status(body, cluster_conditions(obs)),
        "replicas": len(pods),
        "readyReplicas": sum(1 for b in observed if b.ready),
        "selector": resources.selector_string(c),
        "bootstrap": resources.bootstrap_address(c),
        "bootstrapTls": resources.bootstrap_tls_address(c),
        "configHash": resources.config_hash(c),
        "brokers": [b.as_status() for b in observed],
    }
    written = write_status(kube, body, desired)
    if failed is not None:
        # Recorded in status and as an Event; the handler retries with backoff rather than in a tight loop.
        emit(EVENT_APPLY_FAILED, failed[1])
        raise applyfailure.ApplyRefused(*failed)
    return written


async def reconcile_cluster(kube: Kube, body: Mapping[str, Any], emit: Emit) -> dict[str, Any]:
    return await asyncio.to_thread(reconcile_cluster_sync, kube, body, emit)


def fetch_cluster(kube: Kube, namespace: str, name: str) -> dict[str, Any] | None:
    return kube.get(API_VERSION, CLUSTER_KIND, namespace, name)


def cluster_addresses(kube: Kube, cluster: Mapping[str, Any]) -> list[str]:
    """Pod-IP addresses of the Ready brokers (else any with an IP): no ClusterIP, so no kube-proxy needed."""
    meta = cluster["metadata"]
    c: ClusterSpec = parse_cluster(meta["name"], meta["namespace"], cluster.get("spec") or {})
    pods = kube.list("v1", "Pod", meta["namespace"], resources.selector_string(c))
    ready = [p for p in pods if pod_ready(p) and p.get("status", {}).get("podIP")]
    chosen = ready or [p for p in pods if p.get("status", {}).get("podIP")]
    return [f"{p['status']['podIP']}:{c.kafka_port}" for p in chosen]
