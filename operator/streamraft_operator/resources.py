"""Desired Kubernetes objects of a StreamCluster: plain functions of the parsed spec, no I/O.

Each returned object is complete for server-side apply (apiVersion, kind, metadata.name/namespace), so
applying it twice is a no-op and a restart mid-reconcile can never create duplicates.
"""

import hashlib
import json
from typing import Any

import yaml

from streamraft_operator.clustersecrets import (
    CA_CERT,
    TLS_CERT,
    TLS_KEY,
    TOKEN_KEY,
    admin_token_secret_name,
    broker_secret_name,
)
from streamraft_operator.configkeys import broker_settings
from streamraft_operator.constants import (
    ADMIN_PORT,
    CONFIG_DIR,
    CONFIG_FILE,
    CONFIG_HASH_ANNOTATION,
    DATA_DIR,
    LABEL_CLUSTER,
    LABEL_COMPONENT,
    LABEL_INSTANCE,
    LABEL_MANAGED_BY,
    LABEL_NAME,
    METRICS_PORT,
    RAFT_PORT,
)
from streamraft_operator.spec import ClusterSpec

Obj = dict[str, Any]
BROKER_UID = 10001
# Beside CONFIG_DIR, not inside it: a mount point cannot be made inside the read-only config volume.
RAFT_TLS_DIR = "/etc/streamraft-raft-tls"
ADMIN_TOKEN_DIR = "/etc/streamraft-admin"
ADMIN_TOKEN_FILE = f"{ADMIN_TOKEN_DIR}/{TOKEN_KEY}"
OPERATOR_POD_LABELS = {LABEL_NAME: "streamraft-operator"}
"""Labels every operator pod carries (chart and manifests): the admin port admits them."""


def headless_name(c: ClusterSpec) -> str:
    return f"{c.name}-headless"


def bootstrap_name(c: ClusterSpec) -> str:
    return f"{c.name}-bootstrap"


def config_map_name(c: ClusterSpec) -> str:
    return f"{c.name}-config"


def selector_labels(c: ClusterSpec) -> dict[str, str]:
    return {LABEL_NAME: "streamraft", LABEL_INSTANCE: c.name, LABEL_COMPONENT: "broker"}


def labels(c: ClusterSpec) -> dict[str, str]:
    return {**selector_labels(c), LABEL_MANAGED_BY: "streamraft-operator", LABEL_CLUSTER: c.name}


def selector_string(c: ClusterSpec) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(selector_labels(c).items()))


def bootstrap_address(c: ClusterSpec) -> str:
    return f"{bootstrap_name(c)}.{c.namespace}.svc:{c.kafka_port}"


def bootstrap_tls_address(c: ClusterSpec) -> str | None:
    return f"{bootstrap_name(c)}.{c.namespace}.svc:{c.tls_port}" if c.tls_listener else None


def pod_dns(c: ClusterSpec, ordinal: int) -> str:
    return f"{c.name}-{ordinal}.{headless_name(c)}.{c.namespace}.svc.cluster.local"


def _meta(c: ClusterSpec, name: str) -> Obj:
    return {"name": name, "namespace": c.namespace, "labels": labels(c)}


def broker_config(c: ClusterSpec) -> str:
    """The broker's config file (its own setting names), sorted so the text and its hash are stable."""
    settings = broker_settings(c.config)
    return yaml.safe_dump(settings, default_flow_style=False) if settings else "{}\n"


def node_id(ordinal: int) -> int:
    """Broker (Raft node) id of the StatefulSet pod with this ordinal: node ids start at 1, ordinals at 0."""
    assert ordinal >= 0, ordinal
    return ordinal + 1


def ordinal_of(node: int) -> int:
    assert node >= 1, node
    return node - 1


def cluster_members(c: ClusterSpec) -> str:
    """The brokers' `--cluster-members`: `ID=KAFKA_HOST:PORT/RAFT_HOST:PORT,...` over the stable pod DNS
    names, so the list is known before any pod (or pod IP) exists and survives pods being recreated."""
    return ",".join(
        f"{node_id(i)}={pod_dns(c, i)}:{c.kafka_port}/{pod_dns(c, i)}:{RAFT_PORT}" for i in range(c.replicas)
    )


def config_hash(c: ClusterSpec) -> str:
    """Changes exactly when a broker restart is needed to pick up configuration.

    The member list is part of it: membership is static in the broker (read at start), so after a scale
    every broker must be restarted to know the new set; the quorum-aware rollout does that one at a time.
    """
    material = json.dumps(
        {
            "config": broker_config(c),
            "port": c.kafka_port,
            "members": cluster_members(c),
            # Listeners are read at start: turning TLS on or off, or moving its port, needs a restart.
            **({"tls": [c.tls_port, c.tls_authentication]} if c.tls_listener else {}),
        }
    )
    return hashlib.sha256(material.encode()).hexdigest()[:16]


def config_map(c: ClusterSpec) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(c, config_map_name(c)),
        "data": {CONFIG_FILE: broker_config(c)},
    }


def _kafka_ports(c: ClusterSpec) -> list[Obj]:
    out: list[Obj] = [{"name": "kafka", "port": c.kafka_port, "targetPort": "kafka", "protocol": "TCP"}]
    if c.tls_listener:
        out.append({"name": "kafka-tls", "port": c.tls_port, "targetPort": "kafka-tls", "protocol": "TCP"})
    return out


def _ports(c: ClusterSpec) -> list[Obj]:
    out: list[Obj] = [
        *_kafka_ports(c),
        {"name": "raft", "port": RAFT_PORT, "targetPort": "raft", "protocol": "TCP"},
    ]
    if c.metrics_enabled:
        out.append({"name": "metrics", "port": METRICS_PORT, "targetPort": "metrics", "protocol": "TCP"})
    return out


def headless_service(c: ClusterSpec) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(c, headless_name(c)),
        "spec": {
            "clusterIP": "None",
            # Raft peers must find each other before they are Ready (readiness needs a leader).
            "publishNotReadyAddresses": True,
            "selector": selector_labels(c),
            "ports": _ports(c),
        },
    }


def bootstrap_service(c: ClusterSpec) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(c, bootstrap_name(c)),
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(c),
            "ports": _kafka_ports(c),
        },
    }


def _start_script(c: ClusterSpec) -> str:
    # The node id is the StatefulSet ordinal (suffix of the pod name) plus one (Raft node ids start at 1);
    # a shell derives it so the same pod template serves every ordinal. Replication and the member list
    # come from the environment. A replicated broker advertises its member address (the pod DNS name).
    return (
        'exec streamraft broker --node-id "$(( ${POD_NAME##*-} + 1 ))"'
        f" --data-dir {DATA_DIR}/data"
        f" --listen 0.0.0.0:{c.kafka_port}"
        f" --metrics-listen 0.0.0.0:{METRICS_PORT}"
        # The operator asks brokers to drain over the pod network: the admin API must be reachable there.
        # It authenticates requests once the cluster's config sets admin_token_file (or mTLS).
        f" --admin-listen 0.0.0.0:{ADMIN_PORT}"
        f" --admin-token-file {ADMIN_TOKEN_FILE}"
        f" --config {CONFIG_DIR}/{CONFIG_FILE}"
        + (
            # Every broker's certificate is projected into every pod (one pod template serves all
            # ordinals); each broker uses the one naming its own node id.
            f" --raft-tls-cert {_own_cert} --raft-tls-key {_own_key} --raft-tls-ca {RAFT_TLS_DIR}/{CA_CERT}"
            if c.raft_tls
            else ""
        )
        + _tls_listener_flags(c)
    )


_own_cert = f'{RAFT_TLS_DIR}/"${{POD_NAME##*-}}"/{TLS_CERT}'
_own_key = f'{RAFT_TLS_DIR}/"${{POD_NAME##*-}}"/{TLS_KEY}'


def _tls_listener_flags(c: ClusterSpec) -> str:
    """PLAINTEXT (first: brokers talk to each other on it) and SSL, or SASL_SSL with SCRAM. Only the TLS
    one is advertised explicitly: a replicated broker advertises its member address (the pod DNS name) on
    the inter-broker listener."""
    if not c.tls_listener:
        return ""
    name = "SASL_SSL" if c.tls_authentication == "scram-sha-512" else "SSL"
    pod_dns_name = f'"$POD_NAME".{headless_name(c)}.{c.namespace}.svc.cluster.local'
    return (
        f" --listeners PLAINTEXT://0.0.0.0:{c.kafka_port},{name}://0.0.0.0:{c.tls_port}"
        f" --advertised-listeners {name}://{pod_dns_name}:{c.tls_port}"
        f" --ssl-keystore-certificate-chain {_own_cert} --ssl-keystore-key {_own_key}"
        f" --ssl-truststore-location {RAFT_TLS_DIR}/{CA_CERT}"
        + (" --ssl-client-auth required" if c.tls_authentication == "tls" else "")
        + (" --sasl-enabled-mechanisms SCRAM-SHA-512" if name == "SASL_SSL" else "")
    )


def _security_context(c: ClusterSpec) -> Obj:
    base: Obj = {
        "runAsNonRoot": True,
        "runAsUser": BROKER_UID,
        "runAsGroup": BROKER_UID,
        "fsGroup": BROKER_UID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    return {**base, **c.security_context}


def _container(c: ClusterSpec) -> Obj:
    env = [
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "STREAMRAFT_REPLICATION", "value": "raft"},
        {"name": "STREAMRAFT_CLUSTER_MEMBERS", "value": cluster_members(c)},
        # The member address is a DNS name that resolves to this pod only once it is published: bind all.
        {"name": "STREAMRAFT_RAFT_LISTEN", "value": f"0.0.0.0:{RAFT_PORT}"},
        # Read by the preStop hook (its leadership hand-off calls the admin API) and by the broker.
        {"name": "STREAMRAFT_ADMIN_TOKEN_FILE", "value": ADMIN_TOKEN_FILE},
    ]
    ports = [
        {"name": "kafka", "containerPort": c.kafka_port, "protocol": "TCP"},
        *([{"name": "kafka-tls", "containerPort": c.tls_port, "protocol": "TCP"}] if c.tls_listener else []),
        {"name": "raft", "containerPort": RAFT_PORT, "protocol": "TCP"},
        {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"},
        {"name": "admin", "containerPort": ADMIN_PORT, "protocol": "TCP"},
    ]
    container: Obj = {
        "name": "broker",
        "image": c.image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["sh", "-c", _start_script(c)],
        "env": env,
        "ports": ports,
        "readinessProbe": {
            "tcpSocket": {"port": "kafka"},
            "periodSeconds": 5,
            "failureThreshold": 3,
        },
        "livenessProbe": {
            "httpGet": {"path": "/metrics", "port": "metrics"},
            "periodSeconds": 10,
            "timeoutSeconds": 5,
            "failureThreshold": 6,
        },
        # Log recovery after an unclean stop may take a while; liveness must not kill it meanwhile.
        "startupProbe": {"tcpSocket": {"port": "kafka"}, "periodSeconds": 5, "failureThreshold": 120},
        "lifecycle": {
            "preStop": {
                "exec": {
                    "command": [
                        "python",
                        "-m",
                        "streamraft_operator.prestop",
                        "--admin-port",
                        str(ADMIN_PORT),
                        "--timeout",
                        "60",
                    ]
                }
            }
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [
            {"name": "data", "mountPath": DATA_DIR},
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "admin-token", "mountPath": ADMIN_TOKEN_DIR, "readOnly": True},
        ]
        + ([{"name": "raft-tls", "mountPath": RAFT_TLS_DIR, "readOnly": True}] if c.certificates else []),
    }
    if c.resources:
        container["resources"] = dict(c.resources)
    return container


def _affinity(c: ClusterSpec) -> Obj | None:
    if c.affinity is not None:
        return dict(c.affinity)
    if c.rack_topology_key is None:
        return None
    # One broker per failure domain where possible, never a hard requirement (fewer zones than brokers).
    return {
        "podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 100,
                    "podAffinityTerm": {
                        "topologyKey": c.rack_topology_key,
                        "labelSelector": {"matchLabels": selector_labels(c)},
                    },
                }
            ]
        }
    }


def stateful_set(c: ClusterSpec) -> Obj:
    pod_spec: Obj = {
        # Brokers never call the Kubernetes API.
        "automountServiceAccountToken": False,
        "securityContext": _security_context(c),
        "terminationGracePeriodSeconds": 120,
        "containers": [_container(c)],
        "volumes": [
            {"name": "config", "configMap": {"name": config_map_name(c)}},
            {"name": "tmp", "emptyDir": {}},
            {
                "name": "admin-token",
                "secret": {"secretName": admin_token_secret_name(c), "defaultMode": 0o440},
            },
        ]
        + ([raft_tls_volume(c)] if c.certificates else []),
    }
    affinity = _affinity(c)
    if affinity is not None:
        pod_spec["affinity"] = affinity
    if c.tolerations:
        pod_spec["tolerations"] = [dict(t) for t in c.tolerations]
    claim_spec: Obj = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": c.storage_size}},
    }
    if c.storage_class:
        claim_spec["storageClassName"] = c.storage_class
    annotations = {**c.pod_annotations, CONFIG_HASH_ANNOTATION: config_hash(c)}
    if c.metrics_enabled:
        annotations.setdefault("prometheus.io/scrape", "true")
        annotations.setdefault("prometheus.io/port", str(METRICS_PORT))
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": _meta(c, c.name),
        "spec": {
            "replicas": c.replicas,
            "serviceName": headless_name(c),
            "podManagementPolicy": "Parallel",
            # The operator restarts pods itself, one at a time and only when every partition keeps a quorum.
            "updateStrategy": {"type": "OnDelete"},
            "selector": {"matchLabels": selector_labels(c)},
            "persistentVolumeClaimRetentionPolicy": {
                "whenDeleted": "Delete" if c.delete_claim else "Retain",
                "whenScaled": "Retain",
            },
            "template": {
                "metadata": {"labels": {**c.pod_labels, **labels(c)}, "annotations": annotations},
                "spec": pod_spec,
            },
            "volumeClaimTemplates": [
                {"metadata": {"name": "data", "labels": selector_labels(c)}, "spec": claim_spec}
            ],
        },
    }


def raft_tls_volume(c: ClusterSpec) -> Obj:
    """`<ordinal>/tls.crt`, `<ordinal>/tls.key` of every broker, and the CA bundle, in one directory.

    Secret volumes follow Secret updates (the kubelet resyncs them), and the Raft transport re-reads its
    files when they change, so renewed certificates take effect without a restart."""
    sources: list[Obj] = []
    for i in range(c.replicas):
        items = [{"key": TLS_CERT, "path": f"{i}/{TLS_CERT}"}, {"key": TLS_KEY, "path": f"{i}/{TLS_KEY}"}]
        if i == 0:
            items.append({"key": CA_CERT, "path": CA_CERT})
        sources.append({"secret": {"name": broker_secret_name(c, i), "items": items}})
    return {"name": "raft-tls", "projected": {"sources": sources, "defaultMode": 0o440}}


def network_policy(c: ClusterSpec) -> Obj:
    """Raft and admin only from this cluster's brokers (admin also from the operator, in any namespace);
    Kafka (both listeners) and metrics (Prometheus) from anywhere. Ports not listed are closed to all."""
    brokers = {"podSelector": {"matchLabels": selector_labels(c)}}
    operator = {"namespaceSelector": {}, "podSelector": {"matchLabels": dict(OPERATOR_POD_LABELS)}}

    def port(n: int) -> Obj:
        return {"protocol": "TCP", "port": n}

    ingress: list[Obj] = [
        {"ports": [port(c.kafka_port)] + ([port(c.tls_port)] if c.tls_listener else [])},
        {"from": [brokers], "ports": [port(RAFT_PORT)]},
        {"from": [brokers, operator], "ports": [port(ADMIN_PORT)]},
    ]
    if c.metrics_enabled:
        ingress.insert(1, {"ports": [port(METRICS_PORT)]})
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta(c, c.name),
        "spec": {
            "podSelector": {"matchLabels": selector_labels(c)},
            "policyTypes": ["Ingress"],
            "ingress": ingress,
        },
    }


def pod_disruption_budget(c: ClusterSpec) -> Obj:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _meta(c, c.name),
        "spec": {"maxUnavailable": c.pdb_max_unavailable, "selector": {"matchLabels": selector_labels(c)}},
    }


def service_monitor(c: ClusterSpec) -> Obj:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": _meta(c, c.name),
        "spec": {
            "selector": {"matchLabels": {**selector_labels(c)}},
            "namespaceSelector": {"matchNames": [c.namespace]},
            "endpoints": [{"port": "metrics", "path": "/metrics", "interval": "30s"}],
        },
    }


def desired_objects(c: ClusterSpec, *, service_monitor_crd: bool) -> list[Obj]:
    """Everything the cluster needs, in apply order (config before the pods that mount it)."""
    out = [config_map(c), headless_service(c), bootstrap_service(c), stateful_set(c)]
    out.append(pod_disruption_budget(c))
    if c.network_policy:
        out.append(network_policy(c))
    if c.metrics_enabled and c.service_monitor and service_monitor_crd:
        out.append(service_monitor(c))
    return out
