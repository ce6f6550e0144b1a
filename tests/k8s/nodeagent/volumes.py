"""Pod volumes as host directories: emptyDir, hostPath, configMap, secret, downwardAPI, projected
(including service-account tokens) and persistentVolumeClaim (the PV's host directory, which outlives
the pod). Container volumeMounts become bind mounts done by the launcher inside the pod's mount namespace.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from tests.k8s.nodeagent.api import Api, Obj
from tests.k8s.nodeagent.envvars import decoded_data, field_value


class VolumePending(RuntimeError):
    """The volume cannot be set up yet (claim unbound, object missing); retried later."""


def _write_files(directory: Path, files: dict[str, bytes], mode: int | None) -> None:
    """Makes `directory` hold exactly `files`, in place: running containers have this very directory
    bind-mounted, so it must never be replaced, only its contents updated."""
    directory.mkdir(parents=True, exist_ok=True)
    wanted: set[Path] = set()
    for rel, content in files.items():
        path = directory / rel
        assert directory.resolve() in path.resolve().parents, f"volume item path escapes its volume: {rel!r}"
        wanted.add(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.is_file() or path.read_bytes() != content:
            path.write_bytes(content)
        path.chmod(mode if mode is not None else 0o644)
    for existing in sorted(directory.rglob("*"), reverse=True):
        if existing.is_file() and existing not in wanted:
            existing.unlink()
        elif existing.is_dir() and not any(existing.iterdir()):
            existing.rmdir()


def _object_files(api: Api, namespace: str, kind: str, source: Obj) -> dict[str, bytes]:
    name = source.get("name") if kind == "configMap" else source.get("secretName", source.get("name"))
    assert isinstance(name, str), f"{kind} volume without a name: {source}"
    obj = api.configmap(namespace, name) if kind == "configMap" else api.secret(namespace, name)
    if obj is None:
        if source.get("optional"):
            return {}
        raise VolumePending(f"{kind} {namespace}/{name} not found")
    data = decoded_data(obj, kind)
    items: list[Obj] | None = source.get("items")
    if not items:
        return data
    files: dict[str, bytes] = {}
    for item in items:
        if item["key"] not in data:
            if source.get("optional"):
                continue
            raise VolumePending(f"key {item['key']!r} missing from {kind} {namespace}/{name}")
        files[item["path"]] = data[item["key"]]
    return files


def _downward_files(pod: Obj, items: list[Obj], pod_ip: str, host_ip: str) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for item in items:
        if "fieldRef" in item:
            files[item["path"]] = field_value(pod, item["fieldRef"]["fieldPath"], pod_ip, host_ip).encode()
    return files


def _token(api: Api, pod: Obj, source: Obj) -> bytes:
    meta = pod["metadata"]
    spec: dict[str, Any] = {
        "expirationSeconds": int(source.get("expirationSeconds", 3607)),
        "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": meta["name"], "uid": meta["uid"]},
    }
    if source.get("audience"):
        spec["audiences"] = [source["audience"]]
    sa = pod["spec"].get("serviceAccountName") or "default"
    result = api.create(f"/api/v1/namespaces/{meta['namespace']}/serviceaccounts/{sa}/token", {"spec": spec})
    if result is None:
        raise VolumePending(f"service account {meta['namespace']}/{sa} not found")
    token: str = result["status"]["token"]
    return token.encode()


def _projected_files(api: Api, pod: Obj, projected: Obj, pod_ip: str, host_ip: str) -> dict[str, bytes]:
    namespace = pod["metadata"]["namespace"]
    files: dict[str, bytes] = {}
    for source in projected.get("sources") or []:
        if "configMap" in source:
            files.update(_object_files(api, namespace, "configMap", source["configMap"]))
        elif "secret" in source:
            files.update(_object_files(api, namespace, "secret", source["secret"]))
        elif "downwardAPI" in source:
            files.update(_downward_files(pod, source["downwardAPI"].get("items") or [], pod_ip, host_ip))
        elif "serviceAccountToken" in source:
            files[source["serviceAccountToken"]["path"]] = _token(api, pod, source["serviceAccountToken"])
    return files


def claim_directory(api: Api, namespace: str, claim: str) -> Path:
    """Host directory behind a bound PVC (hostPath or local PV)."""
    pvc = api.get(f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/{claim}")
    if pvc is None:
        raise VolumePending(f"persistentvolumeclaim {namespace}/{claim} not found")
    pv_name = (pvc.get("spec") or {}).get("volumeName")
    if not pv_name or (pvc.get("status") or {}).get("phase") != "Bound":
        raise VolumePending(f"persistentvolumeclaim {namespace}/{claim} is not bound yet")
    pv = api.get(f"/api/v1/persistentvolumes/{pv_name}")
    if pv is None:
        raise VolumePending(f"persistentvolume {pv_name} not found")
    spec = pv["spec"]
    path = (spec.get("hostPath") or spec.get("local") or {}).get("path")
    if not path:
        raise VolumePending(
            f"persistentvolume {pv_name} is neither hostPath nor local; a process node can't mount it"
        )
    directory = Path(path)
    directory.mkdir(parents=True, exist_ok=True)
    return directory


REFRESHED_KINDS = ("configMap", "secret", "downwardAPI")


def refreshed(volume: Obj) -> bool:
    """Volumes the kubelet keeps in sync with their sources: configMap, secret, downwardAPI, and projected
    ones made of those (rotated Secrets such as certificates reach running pods). A projection holding a
    service-account token is left alone: refreshing it would mint a token every few seconds."""
    if any(kind in volume for kind in REFRESHED_KINDS):
        return True
    sources = (volume.get("projected") or {}).get("sources")
    return bool(sources) and all(any(kind in s for kind in REFRESHED_KINDS) for s in sources)


def materialize(
    api: Api, pod: Obj, pod_dir: Path, pod_ip: str, host_ip: str, *, refresh: bool = False
) -> dict[str, Path]:
    """Creates every volume of `pod` on the host; returns volume name -> host path. With `refresh`,
    only rewrites the volumes the kubelet syncs periodically (see `refreshed`)."""
    namespace = pod["metadata"]["namespace"]
    paths: dict[str, Path] = {}
    for volume in pod["spec"].get("volumes") or []:
        name: str = volume["name"]
        target = pod_dir / "volumes" / name
        if refresh and not refreshed(volume):
            continue
        if "emptyDir" in volume:
            target.mkdir(parents=True, exist_ok=True)
            paths[name] = target
        elif "hostPath" in volume:
            host = Path(volume["hostPath"]["path"])
            if volume["hostPath"].get("type") in ("DirectoryOrCreate", None, "") and not host.exists():
                host.mkdir(parents=True, exist_ok=True)
            paths[name] = host
        elif "configMap" in volume:
            source = volume["configMap"]
            _write_files(
                target, _object_files(api, namespace, "configMap", source), source.get("defaultMode")
            )
            paths[name] = target
        elif "secret" in volume:
            source = volume["secret"]
            _write_files(target, _object_files(api, namespace, "secret", source), source.get("defaultMode"))
            paths[name] = target
        elif "downwardAPI" in volume:
            source = volume["downwardAPI"]
            files = _downward_files(pod, source.get("items") or [], pod_ip, host_ip)
            _write_files(target, files, source.get("defaultMode"))
            paths[name] = target
        elif "projected" in volume:
            source = volume["projected"]
            _write_files(
                target, _projected_files(api, pod, source, pod_ip, host_ip), source.get("defaultMode")
            )
            paths[name] = target
        elif "persistentVolumeClaim" in volume:
            paths[name] = claim_directory(api, namespace, volume["persistentVolumeClaim"]["claimName"])
        else:
            kinds = sorted(k for k in volume if k != "name")
            raise VolumePending(f"volume {name}: unsupported type {kinds} on a process node")
    return paths


def container_mounts(container: Obj, volumes: dict[str, Path]) -> list[dict[str, Any]]:
    mounts: list[dict[str, Any]] = []
    for vm in container.get("volumeMounts") or []:
        if vm["name"] not in volumes:
            raise VolumePending(f"volumeMount {vm['name']!r} names no volume of the pod")
        source = volumes[vm["name"]]
        sub = vm.get("subPath")
        if sub:
            source = source / sub
            if not source.exists():
                source.mkdir(parents=True)
        mounts.append(
            {"source": str(source), "target": vm["mountPath"], "readOnly": bool(vm.get("readOnly"))}
        )
    return mounts


def remove_pod_volumes(pod_dir: Path) -> None:
    """Removes emptyDir/configMap/... copies; PV directories live elsewhere and are kept."""
    shutil.rmtree(pod_dir / "volumes", ignore_errors=True)
