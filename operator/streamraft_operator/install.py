"""The operator's own install objects (RBAC, Deployment) and the example resources.

Rendered into manifests/ by `streamraft_operator.gen`; the Helm chart reads the same RBAC rules from the
generated charts/streamraft/files/rbac-rules.yaml, so chart and manifests grant exactly the same rights.
"""

from typing import Any

from streamraft_operator.constants import (
    API_VERSION,
    CLUSTER_KIND,
    CLUSTER_PLURAL,
    DEFAULT_IMAGE,
    GROUP,
    TOPIC_KIND,
    TOPIC_PLURAL,
    USER_KIND,
    USER_PLURAL,
)

Obj = dict[str, Any]
NAME = "streamraft-operator"
NAMESPACE = "streamraft-system"
METRICS_PORT = 8080
HEALTH_PORT = 8081
REPLICAS = 2

_RW = ["get", "list", "watch", "create", "patch", "update", "delete"]


def rbac_rules() -> list[Obj]:
    """Least privilege: only the kinds the operator reads or owns, only the verbs it uses."""
    return [
        {
            "apiGroups": [GROUP],
            "resources": [CLUSTER_PLURAL, TOPIC_PLURAL, USER_PLURAL],
            "verbs": ["get", "list", "watch", "patch", "update"],
        },
        {
            "apiGroups": [GROUP],
            "resources": [f"{CLUSTER_PLURAL}/status", f"{TOPIC_PLURAL}/status", f"{USER_PLURAL}/status"],
            "verbs": ["get", "patch", "update"],
        },
        # Owner references with blockOwnerDeletion need update on the owner's finalizers.
        {
            "apiGroups": [GROUP],
            "resources": [
                f"{CLUSTER_PLURAL}/finalizers",
                f"{TOPIC_PLURAL}/finalizers",
                f"{USER_PLURAL}/finalizers",
            ],
            "verbs": ["update"],
        },
        # Secrets: the generated CA, broker certificates and admin token of each cluster.
        {"apiGroups": [""], "resources": ["configmaps", "services", "secrets"], "verbs": _RW},
        {"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies"], "verbs": _RW},
        {"apiGroups": ["apps"], "resources": ["statefulsets"], "verbs": _RW},
        {"apiGroups": ["policy"], "resources": ["poddisruptionbudgets"], "verbs": _RW},
        {"apiGroups": ["monitoring.coreos.com"], "resources": ["servicemonitors"], "verbs": _RW},
        # Pods are only read and deleted (one at a time, for rolling restarts); PVCs deleted on scale-down
        # and patched (requests.storage) to grow them.
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch", "delete"]},
        {
            "apiGroups": [""],
            "resources": ["persistentvolumeclaims"],
            "verbs": ["get", "list", "patch", "delete"],
        },
        # Whether a PVC's class allows volume expansion.
        {"apiGroups": ["storage.k8s.io"], "resources": ["storageclasses"], "verbs": ["get"]},
        {"apiGroups": ["", "events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
        # kopf scans namespaces and CRDs; the operator checks whether the ServiceMonitor CRD exists.
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list", "watch"]},
        {
            "apiGroups": ["apiextensions.k8s.io"],
            "resources": ["customresourcedefinitions"],
            "verbs": ["get", "list", "watch"],
        },
    ]


def leader_election_rules() -> list[Obj]:
    """The Lease the replicas elect their leader with: granted by a Role in the operator's own namespace
    only (no delete: the Lease outlives every replica, and a release just empties its holder)."""
    return [
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "verbs": ["get", "list", "watch", "create", "update"],
        }
    ]


CLUSTER_SCOPED_RESOURCES = frozenset({"namespaces", "customresourcedefinitions", "storageclasses"})


def cluster_scoped_rules() -> list[Obj]:
    """The rules a Role cannot grant (cluster-scoped kinds): kept in a small ClusterRole when the
    operator watches given namespaces and gets Roles there."""
    return [r for r in rbac_rules() if CLUSTER_SCOPED_RESOURCES & set(r["resources"])]


def namespaced_rules() -> list[Obj]:
    """Everything else: granted per watched namespace by a Role when the chart's
    operator.watchNamespaces is set, so the operator holds no rights (secrets above all) elsewhere."""
    return [r for r in rbac_rules() if not CLUSTER_SCOPED_RESOURCES & set(r["resources"])]


def _labels() -> dict[str, str]:
    return {"app.kubernetes.io/name": NAME, "app.kubernetes.io/component": "operator"}


def namespace() -> Obj:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}


def service_account() -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": _labels()},
    }


def cluster_role() -> Obj:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": NAME, "labels": _labels()},
        "rules": rbac_rules(),
    }


def cluster_role_binding() -> Obj:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": NAME, "labels": _labels()},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": NAME},
        "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": NAMESPACE}],
    }


def leader_election_role() -> Obj:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": f"{NAME}-leader-election", "namespace": NAMESPACE, "labels": _labels()},
        "rules": leader_election_rules(),
    }


def leader_election_role_binding() -> Obj:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": f"{NAME}-leader-election", "namespace": NAMESPACE, "labels": _labels()},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": f"{NAME}-leader-election",
        },
        "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": NAMESPACE}],
    }


def operator_container(image: str) -> Obj:
    return {
        "name": "operator",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["streamraft-operator"],
        "args": [
            "--all-namespaces",
            f"--metrics-port={METRICS_PORT}",
            f"--health-port={HEALTH_PORT}",
            "--leader-elect",
        ],
        # The holder identity (plus a per-process suffix) and the Lease's namespace.
        "env": [
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        ],
        "ports": [
            {"name": "metrics", "containerPort": METRICS_PORT},
            {"name": "health", "containerPort": HEALTH_PORT},
        ],
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": "health"}, "periodSeconds": 10},
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": "health"}, "periodSeconds": 10},
        "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }


def operator_affinity() -> Obj:
    """Prefer the replicas on different nodes: a standby on the leader's node dies with it."""
    return {
        "podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 100,
                    "podAffinityTerm": {
                        "topologyKey": "kubernetes.io/hostname",
                        "labelSelector": {"matchLabels": _labels()},
                    },
                }
            ]
        }
    }


def deployment(image: str = DEFAULT_IMAGE) -> Obj:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": _labels()},
        "spec": {
            # Two replicas: the one holding the Lease runs the handlers, the other waits to take over
            # (leaderelection.py). A rolling update therefore never leaves the operator without a standby.
            "replicas": REPLICAS,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "selector": {"matchLabels": _labels()},
            "template": {
                "metadata": {"labels": _labels()},
                "spec": {
                    "serviceAccountName": NAME,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 10001,
                        "runAsGroup": 10001,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "affinity": operator_affinity(),
                    "containers": [operator_container(image)],
                    "volumes": [{"name": "tmp", "emptyDir": {}}],
                },
            },
        },
    }


def install_objects(crds: list[dict[str, object]]) -> list[Any]:
    return [
        namespace(),
        *crds,
        service_account(),
        cluster_role(),
        cluster_role_binding(),
        leader_election_role(),
        leader_election_role_binding(),
        deployment(),
    ]


def example_cluster(name: str = "demo", replicas: int = 3) -> Obj:
    return {
        "apiVersion": API_VERSION,
        "kind": CLUSTER_KIND,
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "image": DEFAULT_IMAGE,
            "storage": {"size": "1Gi"},
            "listeners": {"kafka": {"port": 9092}},
            "config": {"auto.create.topics.enable": False, "num.partitions": 3, "log.format": "json"},
            "rack": {"topologyKey": "topology.kubernetes.io/zone"},
            "metrics": {"enabled": True, "serviceMonitor": False},
            "pdb": {"maxUnavailable": 1},
        },
    }


def example_topic(name: str = "orders", cluster: str = "demo") -> Obj:
    return {
        "apiVersion": API_VERSION,
        "kind": TOPIC_KIND,
        "metadata": {"name": name},
        "spec": {
            "clusterRef": cluster,
            "partitions": 6,
            "replicas": 3,
            "config": {"retention.ms": 86_400_000, "cleanup.policy": "delete"},
        },
    }


def example_user(name: str = "orders-app", cluster: str = "demo") -> Obj:
    return {
        "apiVersion": API_VERSION,
        "kind": USER_KIND,
        "metadata": {"name": name},
        "spec": {
            "cluster": cluster,
            "authentication": {"type": "tls"},
            "authorization": {
                "acls": [
                    {
                        "resource": {"type": "topic", "name": "orders"},
                        "operations": ["Read", "Write", "Describe"],
                    },
                    {
                        "resource": {"type": "group", "name": "orders-", "patternType": "prefix"},
                        "operations": ["Read"],
                    },
                ]
            },
        },
    }
