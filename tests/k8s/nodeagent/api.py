"""A small JSON REST client for the Kubernetes API, used by the node agent.

The agent reads a few fields of each object and writes small merge patches; plain dicts with the API's
own camelCase names are the most direct way to do that, without model classes or client-side
validation getting in the way. One HTTPS keep-alive connection per thread.
"""

from __future__ import annotations

import http.client
import json
import ssl
import threading
import urllib.parse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

Obj = dict[str, Any]
MERGE_PATCH = "application/merge-patch+json"


class ApiError(RuntimeError):
    def __init__(self, status: int, method: str, path: str, body: str) -> None:
        super().__init__(f"{method} {path} -> {status}: {body[:500]}")
        self.status = status


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_micro() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Api:
    def __init__(self, kubeconfig: str, timeout: float = 30.0) -> None:
        config = yaml.safe_load(Path(kubeconfig).read_text())
        context_name = config["current-context"]
        context = next(c["context"] for c in config["contexts"] if c["name"] == context_name)
        cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == context["cluster"])
        user = next(u["user"] for u in config["users"] if u["name"] == context["user"])
        server = urllib.parse.urlsplit(cluster["server"])
        assert server.scheme == "https" and server.hostname, f"unexpected server {cluster['server']!r}"
        self._host = server.hostname
        self._port = server.port or 443
        self._ssl = ssl.create_default_context(cafile=cluster["certificate-authority"])
        self._ssl.load_cert_chain(user["client-certificate"], user["client-key"])
        self._timeout = timeout
        self._local = threading.local()

    def _conn(self) -> http.client.HTTPSConnection:
        conn: http.client.HTTPSConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = http.client.HTTPSConnection(
                self._host, self._port, context=self._ssl, timeout=self._timeout
            )
            self._local.conn = conn
        return conn

    def request(
        self, method: str, path: str, body: Obj | None = None, content_type: str = "application/json"
    ) -> Obj | None:
        """Returns the decoded response, None on 404; raises ApiError on other failures."""
        payload = json.dumps(body).encode() if body is not None else None
        headers = {"Accept": "application/json"}
        if payload is not None:
            headers["Content-Type"] = content_type
        for attempt in range(2):
            conn = self._conn()
            try:
                conn.request(method, path, body=payload, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                break
            except (OSError, http.client.HTTPException):
                # A keep-alive connection the server closed: reconnect once.
                conn.close()
                self._local.conn = None
                if attempt == 1:
                    raise
        if resp.status == 404:
            return None
        if resp.status >= 300:
            raise ApiError(resp.status, method, path, data.decode(errors="replace"))
        result: Obj = json.loads(data) if data else {}
        return result

    def get(self, path: str) -> Obj | None:
        return self.request("GET", path)

    def items(self, path: str) -> list[Obj]:
        result = self.get(path)
        return list(result.get("items") or []) if result else []

    def create(self, path: str, body: Obj) -> Obj | None:
        return self.request("POST", path, body)

    def patch(self, path: str, body: Obj) -> Obj | None:
        return self.request("PATCH", path, body, MERGE_PATCH)

    def delete(self, path: str, body: Obj | None = None) -> Obj | None:
        return self.request("DELETE", path, body)

    def configmap(self, namespace: str, name: str) -> Obj | None:
        return self.get(f"/api/v1/namespaces/{namespace}/configmaps/{name}")

    def secret(self, namespace: str, name: str) -> Obj | None:
        return self.get(f"/api/v1/namespaces/{namespace}/secrets/{name}")
