"""The chart installed into a test namespace, and StreamCluster/StreamTopic helpers shared by e2e tests."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.k8s.cluster import Cluster

CHART = Path(__file__).resolve().parents[2] / "charts" / "streamraft"
GROUP = "streamraft.io"


@dataclass(frozen=True)
class Release:
    namespace: str
    name: str


@contextmanager
def installed_release(k8s: Cluster, prefix: str, helm: str = "helm") -> Iterator[Release]:
    """helm-installs the chart (operator watching only its namespace) with `helm` ("helm" is Helm 3,
    "helm4" Helm 4); deletes the resources afterwards."""
    with k8s.namespace(prefix) as ns:
        name = f"sr-{uuid.uuid4().hex[:6]}"
        k8s.helm("install", name, str(CHART), "--namespace", ns,
                 "--set", f"operator.watchNamespaces={{{ns}}}", "--wait", "--timeout", "180s",
                 binary=helm)  # fmt: skip
        out = k8s.helm("status", name, "--namespace", ns, "-o", "json", binary=helm)
        assert json.loads(out.stdout)["info"]["status"] == "deployed", out.stdout
        yield Release(ns, name)
        delete_streamraft_resources(k8s, ns)


def delete_streamraft_resources(k8s: Cluster, ns: str) -> None:
    """Topics first (their finalizer needs the operator, which the namespace's deletion takes away), then
    the clusters. Our subprocess bound exceeds kubectl's own --timeout, so a slow deletion is reported by
    kubectl, not cut off mid-wait."""
    k8s.kubectl("delete", "streamtopics", "--all", "-n", ns, "--wait=true", "--timeout=90s", check=False,
                timeout=120)  # fmt: skip
    k8s.kubectl("delete", "streamclusters", "--all", "-n", ns, "--wait=false", check=False)


def resource(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/v1alpha1", "kind": kind, "metadata": {"name": name}, "spec": spec}


def ready(k8s: Cluster, ns: str, plural: str, name: str) -> dict[str, Any] | None:
    """The object if its Ready condition is True, else None."""
    obj = k8s.api.get(f"/apis/{GROUP}/v1alpha1/namespaces/{ns}/{plural}/{name}")
    for cond in ((obj or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready" and cond.get("status") == "True":
            return obj
    return None


def operator_lease(k8s: Cluster, rel: Release) -> dict[str, Any] | None:
    """The Lease the chart's operator replicas elect their leader with (named like the Deployment)."""
    path = f"/apis/coordination.k8s.io/v1/namespaces/{rel.namespace}/leases/{rel.name}-streamraft-operator"
    return k8s.api.get(path)


def lease_holder_pod(lease: dict[str, Any] | None) -> str:
    """The pod name part of the holder identity (`<pod>_<per-process suffix>`); "" when nobody holds it."""
    holder = str(((lease or {}).get("spec") or {}).get("holderIdentity") or "")
    return holder.rsplit("_", 1)[0] if holder else ""


def operator_pods(k8s: Cluster, ns: str) -> list[str]:
    """Names of the operator Deployment's pods (the helm test pod carries the same labels)."""
    selector = "app.kubernetes.io%2Fname%3Dstreamraft-operator"
    return sorted(
        p["metadata"]["name"]
        for p in k8s.api.items(f"/api/v1/namespaces/{ns}/pods?labelSelector={selector}")
        if any(o["kind"] == "ReplicaSet" for o in p["metadata"].get("ownerReferences") or [])
        and not p["metadata"].get("deletionTimestamp")
    )
