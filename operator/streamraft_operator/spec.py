"""Parsed, validated views of StreamCluster and StreamTopic specs.

The API server already enforces the CRD schema; parsing again here turns anything that slipped past it
(an older CRD, a hand-edited object) into one clear message instead of a KeyError deep in a handler.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from streamraft_operator.configkeys import BROKER_KEYS, TOPIC_KEYS, validate_config
from streamraft_operator.constants import (
    ADMIN_PORT,
    DEFAULT_IMAGE,
    KAFKA_PORT_DEFAULT,
    KAFKA_TLS_PORT_DEFAULT,
    METRICS_PORT,
    RAFT_PORT,
)


class SpecError(ValueError):
    """The resource's spec cannot be acted upon; the message names every offending field."""


TLS_AUTHENTICATIONS = ("none", "tls", "scram-sha-512")


@dataclass(frozen=True)
class ClusterSpec:
    name: str
    namespace: str
    replicas: int
    image: str = DEFAULT_IMAGE
    resources: Mapping[str, Any] = field(default_factory=dict)
    storage_size: str = "10Gi"
    storage_class: str | None = None
    delete_claim: bool = False
    kafka_port: int = KAFKA_PORT_DEFAULT
    advertise: str = "PodDNS"
    config: Mapping[str, object] = field(default_factory=dict)
    rack_topology_key: str | None = None
    metrics_enabled: bool = True
    service_monitor: bool = False
    pod_labels: Mapping[str, str] = field(default_factory=dict)
    pod_annotations: Mapping[str, str] = field(default_factory=dict)
    affinity: Mapping[str, Any] | None = None
    tolerations: tuple[Mapping[str, Any], ...] = ()
    security_context: Mapping[str, Any] = field(default_factory=dict)
    pdb_max_unavailable: int = 1
    raft_tls: bool = True
    """Raft between brokers over mutual TLS with operator-issued certificates (spec.security.raftTls)."""
    network_policy: bool = True
    """A NetworkPolicy keeps Raft and admin ports to the brokers (spec.security.networkPolicy)."""
    tls_listener: bool = True
    """A Kafka listener over TLS (spec.listeners.tls) serving broker certificates of the cluster CA."""
    tls_port: int = KAFKA_TLS_PORT_DEFAULT
    tls_authentication: str = "none"
    """spec.listeners.tls.authentication: none; tls (a client certificate of the cluster CA); scram-sha-512
    (SASL_SSL: a SCRAM StreamUser's password)."""

    @property
    def certificates(self) -> bool:
        """The operator issues a CA and broker certificates (for Raft, the TLS listener or both)."""
        return self.raft_tls or self.tls_listener


@dataclass(frozen=True)
class TopicSpec:
    name: str
    namespace: str
    cluster: str
    topic: str
    partitions: int
    replicas: int
    config: Mapping[str, object] = field(default_factory=dict)


def _section(spec: Mapping[str, Any], key: str, problems: list[str]) -> Mapping[str, Any]:
    value = spec.get(key) or {}
    if not isinstance(value, Mapping):
        problems.append(f"spec.{key} must be an object")
        return {}
    return value


def _int(value: object, path: str, problems: list[str], minimum: int, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        problems.append(f"{path} must be an integer, got {value!r}")
        return minimum
    if not minimum <= value <= maximum:
        problems.append(f"{path} must be between {minimum} and {maximum}, got {value}")
    return value


def pdb_budget(requested: int, replicas: int) -> int:
    """Voluntary disruptions allowed: as requested, but never more than a Raft minority (a lone broker has
    no quorum to protect, so draining its node is allowed)."""
    if replicas == 1:
        return min(requested, 1)
    return min(requested, max(1, (replicas - 1) // 2))


# Pod securityContext fields a StreamCluster may not set to these values unless the operator was installed
# allowing it: they would run brokers as root or with more of the host than they need.
def weakened_security_context(ctx: Mapping[str, Any]) -> list[str]:
    """Problems with a spec.template.pod.securityContext that weakens the brokers' non-root defaults."""
    out: list[str] = []
    path = "spec.template.pod.securityContext"
    if ctx.get("runAsNonRoot", True) is not True:
        out.append(f"{path}.runAsNonRoot may not be false")
    for key in ("runAsUser", "runAsGroup"):
        if key in ctx and ctx[key] == 0:
            out.append(f"{path}.{key} may not be 0 (root)")
    seccomp = ctx.get("seccompProfile")
    if isinstance(seccomp, Mapping) and seccomp.get("type") == "Unconfined":
        out.append(f"{path}.seccompProfile may not be Unconfined")
    if out:
        out.append(
            "the operator refuses weaker broker security unless installed with "
            "--allow-security-context-override (chart value operator.allowSecurityContextOverride)"
        )
    return out


def parse_cluster(
    name: str, namespace: str, spec: Mapping[str, Any], *, allow_security_context_override: bool = False
) -> ClusterSpec:
    problems: list[str] = []
    if "replicas" not in spec:
        problems.append("spec.replicas is required")
    replicas = _int(spec.get("replicas", 1), "spec.replicas", problems, 1, 99)
    image = spec.get("image") or DEFAULT_IMAGE
    if not isinstance(image, str):
        problems.append("spec.image must be a string")
    storage = _section(spec, "storage", problems)
    listeners = _section(spec, "listeners", problems)
    kafka = listeners.get("kafka") or {}
    port = _int(kafka.get("port", KAFKA_PORT_DEFAULT), "spec.listeners.kafka.port", problems, 1024, 65535)
    if port in (RAFT_PORT, METRICS_PORT, ADMIN_PORT):
        problems.append(f"spec.listeners.kafka.port must not be {port} (used by Raft, metrics or admin)")
    advertise = kafka.get("advertise", "PodDNS")
    if advertise not in ("PodIP", "PodDNS"):
        problems.append(f"spec.listeners.kafka.advertise must be PodIP or PodDNS, got {advertise!r}")
    tls = listeners.get("tls") or {}
    tls_enabled = tls.get("enabled", True)
    if not isinstance(tls_enabled, bool):
        problems.append(f"spec.listeners.tls.enabled must be true or false, got {tls_enabled!r}")
    tls_port = _int(tls.get("port", KAFKA_TLS_PORT_DEFAULT), "spec.listeners.tls.port", problems, 1024, 65535)
    if tls_enabled is not False and tls_port in (port, RAFT_PORT, METRICS_PORT, ADMIN_PORT):
        problems.append(
            f"spec.listeners.tls.port must not be {tls_port} "
            "(used by the Kafka listener, Raft, metrics or admin)"
        )
    tls_auth = tls.get("authentication", "none")
    if tls_auth not in TLS_AUTHENTICATIONS:
        problems.append(
            f"spec.listeners.tls.authentication must be one of {', '.join(TLS_AUTHENTICATIONS)}, "
            f"got {tls_auth!r}"
        )
    config = _section(spec, "config", problems)
    problems += [f"spec.config: {p}" for p in validate_config(config, BROKER_KEYS)]
    rack = _section(spec, "rack", problems)
    metrics = _section(spec, "metrics", problems)
    pod = _section(_section(spec, "template", problems), "pod", problems)
    pdb = _section(spec, "pdb", problems)
    max_unavailable = _int(pdb.get("maxUnavailable", 1), "spec.pdb.maxUnavailable", problems, 0, 99)
    security = _section(spec, "security", problems)
    flags: dict[str, bool] = {}
    for key in ("raftTls", "networkPolicy"):
        value = security.get(key, True)
        if not isinstance(value, bool):
            problems.append(f"spec.security.{key} must be true or false, got {value!r}")
        flags[key] = value is not False
    security_context = dict(pod.get("securityContext") or {})
    if not allow_security_context_override:
        problems += weakened_security_context(security_context)
    if problems:
        raise SpecError("; ".join(problems))
    return ClusterSpec(
        name=name,
        namespace=namespace,
        replicas=replicas,
        image=str(image),
        resources=dict(spec.get("resources") or {}),
        storage_size=str(storage.get("size", "10Gi")),
        storage_class=storage.get("storageClass") or None,
        delete_claim=bool(storage.get("deleteClaim", False)),
        kafka_port=port,
        advertise=str(advertise),
        config=dict(config),
        rack_topology_key=rack.get("topologyKey") or None,
        metrics_enabled=bool(metrics.get("enabled", True)),
        service_monitor=bool(metrics.get("serviceMonitor", False)),
        pod_labels=dict(pod.get("labels") or {}),
        pod_annotations=dict(pod.get("annotations") or {}),
        affinity=pod.get("affinity"),
        tolerations=tuple(pod.get("tolerations") or ()),
        security_context=security_context,
        pdb_max_unavailable=pdb_budget(max_unavailable, replicas),
        raft_tls=flags["raftTls"],
        network_policy=flags["networkPolicy"],
        tls_listener=tls_enabled is not False,
        tls_port=tls_port,
        tls_authentication=str(tls_auth),
    )


def parse_topic(name: str, namespace: str, spec: Mapping[str, Any]) -> TopicSpec:
    problems: list[str] = []
    cluster = spec.get("clusterRef")
    if not isinstance(cluster, str) or not cluster:
        problems.append("spec.clusterRef is required and must name a StreamCluster")
    topic = spec.get("topicName") or name
    partitions = _int(spec.get("partitions", 1), "spec.partitions", problems, 1, 10_000)
    replicas = _int(spec.get("replicas", 3), "spec.replicas", problems, 1, 7)
    if replicas % 2 == 0:
        problems.append(f"spec.replicas must be odd (1, 3, 5 or 7), got {replicas}")
    config = spec.get("config") or {}
    if not isinstance(config, Mapping):
        problems.append("spec.config must be an object")
        config = {}
    problems += [f"spec.config: {p}" for p in validate_config(config, TOPIC_KEYS)]
    if problems:
        raise SpecError("; ".join(problems))
    return TopicSpec(name, namespace, str(cluster), str(topic), partitions, replicas, dict(config))
