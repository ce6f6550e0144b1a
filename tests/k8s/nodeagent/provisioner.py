"""A local-path provisioner: every unbound PVC gets a hostPath PV pre-bound to it (claimRef), backed
by a directory under the agent's state dir. The controller-manager's PV controller then completes the
binding. Reclaim policy Retain: the directory outlives pods (and claims), as a disk would."""

from __future__ import annotations

import logging
from pathlib import Path

from tests.k8s.nodeagent.api import Api, ApiError, Obj

log = logging.getLogger("nodeagent.provisioner")

PROVISIONER = "streamraft.io/process-node-local-path"


def pv_for(pvc: Obj, directory: Path) -> Obj:
    meta = pvc["metadata"]
    spec = pvc.get("spec") or {}
    size = ((spec.get("resources") or {}).get("requests") or {}).get("storage", "1Gi")
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {
            "name": f"pvc-{meta['uid']}",
            "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER},
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
