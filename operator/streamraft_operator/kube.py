"""A small, generic Kubernetes API client: server-side apply, get, list, delete, events.

Built on the `kubernetes` package's configuration and connection pool (kubeconfig or in-cluster service
account) but addressing objects by apiVersion/kind, so one code path serves every kind the operator owns.
Blocking; handlers call it through `asyncio.to_thread`.
"""

import datetime
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import urllib3
from kubernetes import client, config

from streamraft_operator.constants import FIELD_MANAGER

Obj = dict[str, Any]

PLURALS = {
    "ConfigMap": "configmaps",
    "Secret": "secrets",
    "NetworkPolicy": "networkpolicies",
    "Service": "services",
    "Pod": "pods",
    "PersistentVolumeClaim": "persistentvolumeclaims",
    "Event": "events",
    "StatefulSet": "statefulsets",
    "StorageClass": "storageclasses",
    "PodDisruptionBudget": "poddisruptionbudgets",
    "ServiceMonitor": "servicemonitors",
    "StreamCluster": "streamclusters",
    "StreamTopic": "streamtopics",
    "StreamUser": "streamusers",
    "CustomResourceDefinition": "customresourcedefinitions",
    "Lease": "leases",
}
_TIMEOUT_S = 30.0


class KubeError(RuntimeError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"Kubernetes API error {status}: {message}")
        self.status = status
        self.message = message


def load_api_client() -> Any:
    """In-cluster service account when running in a pod, else the kubeconfig ($KUBECONFIG)."""
    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    except config.ConfigException:
        config.load_kube_config()  # type: ignore[no-untyped-call]
    return client.ApiClient()


def path_for(api_version: str, kind: str, namespace: str | None, name: str | None = None) -> str:
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    plural = PLURALS[kind]
    out = f"{base}/namespaces/{quote(namespace)}/{plural}" if namespace else f"{base}/{plural}"
    return f"{out}/{quote(name)}" if name else out


class Kube:
    def __init__(self, api: Any) -> None:
        self._api = api

    def request(
        self,
        method: str,
        path: str,
        *,
        body: object = None,
        content_type: str = "application/json",
        query: list[tuple[str, str]] | None = None,
        timeout: float = _TIMEOUT_S,
    ) -> Obj | None:
        """The decoded response, or None for 404. Any other failure raises KubeError with the API's text."""
        headers = {"Accept": "application/json", "Content-Type": content_type}
        serialized = self._api.param_serialize(
            method=method,
            resource_path=path,
            query_params=query or [],
            header_params=headers,
            # The REST layer JSON-encodes bodies of JSON content types itself; YAML ones (server-side apply)
            # must arrive serialised (JSON is valid YAML).
            body=body if body is None or content_type.endswith("json") else json.dumps(body),
            auth_settings=["BearerToken"],
        )
        try:
            resp = self._api.call_api(*serialized, _request_timeout=timeout)
            data = resp.read()
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise KubeError(0, f"{method} {path}: {exc}") from exc
        if resp.status == 404:
            return None
        text = data.decode("utf-8", "replace") if data else ""
        if not 200 <= resp.status < 300:
            try:
                message = json.loads(text).get("message", text)
            except ValueError:
                message = text
            raise KubeError(resp.status, message)
        parsed: Obj = json.loads(text) if text else {}
        return parsed

    def apply(self, obj: Mapping[str, Any]) -> Obj:
        """Server-side apply: idempotent, and only the fields we set are ours."""
        meta = obj["metadata"]
        path = path_for(obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"])
        out = self.request(
            "PATCH",
            path,
            body=obj,
            content_type="application/apply-patch+yaml",
            query=[("fieldManager", FIELD_MANAGER), ("force", "true")],
        )
        if out is None:
            raise KubeError(404, f"{obj['kind']} {meta['name']}: resource type not served by the API server")
        return out

    def get(self, api_version: str, kind: str, namespace: str | None, name: str) -> Obj | None:
        return self.request("GET", path_for(api_version, kind, namespace, name))

    def list(self, api_version: str, kind: str, namespace: str | None, selector: str = "") -> list[Obj]:
        query = [("labelSelector", selector)] if selector else []
        out = self.request("GET", path_for(api_version, kind, namespace), query=query)
        return list((out or {}).get("items", []))

    def delete(
        self, api_version: str, kind: str, namespace: str | None, name: str, *, propagation: str | None = None
    ) -> bool:
        """True if something was deleted; a missing object is not an error (idempotent). `propagation`
        "Orphan" leaves the object's dependents (a StatefulSet's pods) running."""
        body = None if propagation is None else {"propagationPolicy": propagation}
        return self.request("DELETE", path_for(api_version, kind, namespace, name), body=body) is not None

    def merge_patch(
        self, api_version: str, kind: str, namespace: str | None, name: str, patch: Obj
    ) -> Obj | None:
        return self.request(
            "PATCH",
            path_for(api_version, kind, namespace, name),
            body=patch,
            content_type="application/merge-patch+json",
        )

    def crd_exists(self, name: str) -> bool:
        return self.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", None, name) is not None


def owner_reference(owner: Mapping[str, Any]) -> Obj:
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def with_owner(obj: Mapping[str, Any], owner: Mapping[str, Any]) -> Obj:
    out = dict(obj)
    out["metadata"] = {**obj["metadata"], "ownerReferences": [owner_reference(owner)]}
    return out


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
