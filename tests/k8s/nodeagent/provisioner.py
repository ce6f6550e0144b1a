"""A local-path provisioner: every unbound PVC gets a hostPath PV pre-bound to it (claimRef), backed
by a directory under the agent's state dir. The controller-manager's PV controller then completes the
binding. Reclaim policy Retain: the directory outlives pods (and claims), as a disk would.

It also stands in for volume expansion, the job of a CSI external-resizer (PV spec.capacity) plus the
kubelet (PVC status.capacity, after growing the filesystem) in a real cluster: a bound claim of ours whose
requests.storage exceeds its capacity gets both raised, but only when its StorageClass sets
allowVolumeExpansion (the API server's admission already refuses the request otherwise; checking again
keeps the stand-in from growing what a real cluster would not). A directory has no size to grow."""

from __future__ import annotations

import logging
from decimal import Decimal
from pathlib import Path

from kubernetes.utils import parse_quantity

from tests.k8s.nodeagent.api import Api, ApiError, Obj

log = logging.getLogger("nodeagent.provisioner")

PROVISIONER = "streamraft.io/process-node-local-path"
OURS = "pv.kubernetes.io/provisioned-by"


def pv_for(pvc: Obj, directory: Path) -> Obj:
    meta = pvc["metadata"]
    spec = pvc.get("spec") or {}
    size = ((spec.get("resources") or {}).get("requests") or {}).get("storage", "1Gi")
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {
            "name": f"pvc-{meta['uid']}",
            "annotations": {OURS: PROVISIONER},
            "labels": {"streamraft.io/claim-namespace": meta["namespace"]},
        },
        "spec": {
            "capacity": {"storage": size},
            "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": spec.get("storageClassName") or "",
            "volumeMode": spec.get("volumeMode") or "Filesystem",
            "hostPath": {"path": str(directory), "type": "DirectoryOrCreate"},
            "claimRef": {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "namespace": meta["namespace"],
                "name": meta["name"],
                "uid": meta["uid"],
            },
        },
    }


def provision(api: Api, root: Path) -> None:
    for pvc in api.items("/api/v1/persistentvolumeclaims"):
        meta = pvc["metadata"]
        if (pvc.get("spec") or {}).get("volumeName") or meta.get("deletionTimestamp"):
            continue
        if (pvc.get("status") or {}).get("phase") != "Pending":
            continue
        directory = root / f"{meta['namespace']}_{meta['name']}_{meta['uid']}"
        directory.mkdir(parents=True, exist_ok=True)
        try:
            api.create("/api/v1/persistentvolumes", pv_for(pvc, directory))
            log.info("provisioned %s for %s/%s", directory, meta["namespace"], meta["name"])
        except ApiError as exc:
            if exc.status != 409:  # already provisioned; the PV controller is binding it
                raise


def _bytes(text: str) -> Decimal:
    return Decimal(parse_quantity(text))


def expansion(pvc: Obj, pv: Obj | None, storage_class: Obj | None) -> str | None:
    """The size to grow `pvc` (and its PV) to, or None when nothing is to be done or allowed."""
    requested = ((pvc.get("spec") or {}).get("resources") or {}).get("requests", {}).get("storage")
    capacity = ((pvc.get("status") or {}).get("capacity") or {}).get("storage")
    if pv is None or storage_class is None or requested is None or capacity is None:
        return None
    if (pv["metadata"].get("annotations") or {}).get(OURS) != PROVISIONER:
        return None
    if not storage_class.get("allowVolumeExpansion"):
        return None
    return str(requested) if _bytes(str(requested)) > _bytes(str(capacity)) else None


def expand(api: Api) -> None:
    for pvc in api.items("/api/v1/persistentvolumeclaims"):
        meta, spec = pvc["metadata"], pvc.get("spec") or {}
        if (pvc.get("status") or {}).get("phase") != "Bound" or not spec.get("volumeName"):
            continue
        if (
            expansion(pvc, {"metadata": {"annotations": {OURS: PROVISIONER}}}, {"allowVolumeExpansion": True})
            is None
        ):
            continue  # not asked to grow: no further reads
        pv = api.get(f"/api/v1/persistentvolumes/{spec['volumeName']}")
        cls = spec.get("storageClassName")
        sc = api.get(f"/apis/storage.k8s.io/v1/storageclasses/{cls}") if cls else None
        size = expansion(pvc, pv, sc)
        if size is None:
            continue
        api.patch(
            f"/api/v1/persistentvolumes/{spec['volumeName']}", {"spec": {"capacity": {"storage": size}}}
        )
        api.patch(
            f"/api/v1/namespaces/{meta['namespace']}/persistentvolumeclaims/{meta['name']}/status",
            {"status": {"capacity": {"storage": size}}},
        )
        log.info("expanded %s/%s to %s", meta["namespace"], meta["name"], size)
