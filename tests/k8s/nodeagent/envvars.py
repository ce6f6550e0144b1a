"""Container environment as the kubelet builds it: env (value, fieldRef, resourceFieldRef,
configMapKeyRef, secretKeyRef), envFrom, and $(VAR) expansion in values, command and args."""

from __future__ import annotations

import base64
import re
from typing import Any

from tests.k8s.nodeagent.api import Api, Obj

_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.\-]*)\)")


class EnvError(RuntimeError):
    """A reference the container needs cannot be resolved yet (kubelet: CreateContainerConfigError)."""


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes $(VAR) expansion: known names are replaced, unknown ones left as is, $$ escapes."""

    def sub(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env.get(name, match.group(0))

    return _REF.sub(sub, text)


def field_value(pod: Obj, path: str, pod_ip: str, host_ip: str) -> str:
    meta: Obj = pod["metadata"]
    spec: Obj = pod["spec"]
    simple = {
        "metadata.name": meta["name"],
        "metadata.namespace": meta["namespace"],
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", "default"),
        "status.podIP": pod_ip,
        "status.podIPs": pod_ip,
        "status.hostIP": host_ip,
        "status.hostIPs": host_ip,
    }
    if path in simple:
        return str(simple[path])
    match = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
    if match:
        return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
    if path in ("metadata.labels", "metadata.annotations"):
        items = meta.get(path.split(".")[1]) or {}
        return "\n".join(f'{k}="{v}"' for k, v in sorted(items.items()))
    raise EnvError(f"unsupported fieldRef fieldPath {path!r}")


def _resource_value(container: Obj, ref: Obj) -> str:
    resource: str = ref["resource"]
    kind, _, name = resource.partition(".")
    value = ((container.get("resources") or {}).get(kind) or {}).get(name)
    if value is None:
        # Unset limits default to the node's allocatable, as on a real node.
        value = {"cpu": "16", "memory": str(64 * 2**30), "ephemeral-storage": str(100 * 2**30)}.get(name, "0")
    return str(value)


def _key_of(api: Api, kind: str, namespace: str, ref: Obj) -> str | None:
    obj = api.configmap(namespace, ref["name"]) if kind == "configMap" else api.secret(namespace, ref["name"])
    optional = bool(ref.get("optional"))
    if obj is None:
        if optional:
            return None
        raise EnvError(f"{kind} {namespace}/{ref['name']} not found")
    data = _decoded(obj, kind)
    if ref["key"] not in data:
        if optional:
            return None
        raise EnvError(f"key {ref['key']!r} not in {kind} {namespace}/{ref['name']}")
    return data[ref["key"]].decode("utf-8", errors="replace")


def _decoded(obj: Obj, kind: str) -> dict[str, bytes]:
    """Every key of a ConfigMap or Secret as bytes."""
    out: dict[str, bytes] = {}
    if kind == "configMap":
        for k, v in (obj.get("data") or {}).items():
            out[k] = str(v).encode()
        for k, v in (obj.get("binaryData") or {}).items():
            out[k] = base64.b64decode(v)
    else:
        for k, v in (obj.get("data") or {}).items():
            out[k] = base64.b64decode(v)
        for k, v in (obj.get("stringData") or {}).items():
            out[k] = str(v).encode()
    return out


def decoded_data(obj: Obj, kind: str) -> dict[str, bytes]:
    return _decoded(obj, kind)


def container_env(
    api: Api, pod: Obj, container: Obj, *, base: dict[str, str], pod_ip: str, host_ip: str
) -> dict[str, str]:
    """The container's full environment: `base` (PATH, service variables...) overridden by envFrom,
    then by env entries in order, each able to reference earlier ones with $(VAR)."""
    namespace: str = pod["metadata"]["namespace"]
    env = dict(base)
    for source in container.get("envFrom") or []:
        prefix: str = source.get("prefix", "")
        for kind, key in (("configMap", "configMapRef"), ("secret", "secretRef")):
            ref: Obj | None = source.get(key)
            if ref is None:
                continue
            obj = (
                api.configmap(namespace, ref["name"])
                if kind == "configMap"
                else api.secret(namespace, ref["name"])
            )
            if obj is None:
                if ref.get("optional"):
                    continue
                raise EnvError(f"{kind} {namespace}/{ref['name']} (envFrom) not found")
            for k, v in _decoded(obj, kind).items():
                env[prefix + k] = v.decode("utf-8", errors="replace")
    for var in container.get("env") or []:
        name: str = var["name"]
        value_from: Obj | None = var.get("valueFrom")
        if value_from is None:
            env[name] = expand(str(var.get("value", "")), env)
            continue
        value: Any = None
        if "fieldRef" in value_from:
            value = field_value(pod, value_from["fieldRef"]["fieldPath"], pod_ip, host_ip)
        elif "resourceFieldRef" in value_from:
            value = _resource_value(container, value_from["resourceFieldRef"])
        elif "configMapKeyRef" in value_from:
            value = _key_of(api, "configMap", namespace, value_from["configMapKeyRef"])
        elif "secretKeyRef" in value_from:
            value = _key_of(api, "secret", namespace, value_from["secretKeyRef"])
        else:
            raise EnvError(f"env {name}: unsupported valueFrom {sorted(value_from)}")
        if value is not None:
            env[name] = str(value)
    return env
