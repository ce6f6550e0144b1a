"""Test-side handle on a running local cluster: kubectl/helm runners, polling, pod inspection.

The `k8s` fixture (conftest.py) yields a `Cluster`; other suites (the operator's) build on it.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from tests.k8s import controlplane, network
from tests.k8s.nodeagent.api import Api

T = TypeVar("T")
_POLL_S = 0.25


class WaitTimeout(AssertionError):
    pass


@dataclass
class Cluster:
    state: controlplane.State
    api: Api

    @property
    def kubeconfig(self) -> Path:
        return self.state.kubeconfig

    @property
    def subnet(self) -> network.Subnet:
        return self.state.subnet

    @property
    def nodes(self) -> list[str]:
        return [f"node-{i}" for i in range(self.state.nodes)]

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KUBE")}
        env["KUBECONFIG"] = str(self.kubeconfig)
        env["PATH"] = f"{controlplane.bin_dir()}:{env.get('PATH', '')}"
        # helm keeps caches and config per user; keep them inside the cluster's directory.
        for var, sub in (
            ("HELM_CACHE_HOME", "cache"),
            ("HELM_CONFIG_HOME", "config"),
            ("HELM_DATA_HOME", "data"),
        ):
            env[var] = str(Path(self.state.directory) / "helm" / sub)
        return env

    def _run(
        self, tool: str, args: tuple[str, ...], stdin: str | None, check: bool, timeout: float
    ) -> subprocess.CompletedProcess[str]:
        argv = [str(controlplane.binary(tool)), *args]
        result = subprocess.run(
            argv, input=stdin, capture_output=True, text=True, env=self.env(), timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            raise AssertionError(f"{tool} {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
        return result

    def kubectl(
        self, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        return self._run("kubectl", args, stdin, check, timeout)

    def helm(
        self,
        *args: str,
        stdin: str | None = None,
        check: bool = True,
        timeout: float = 300,
        binary: str = "helm",
    ) -> subprocess.CompletedProcess[str]:
        """`binary` is "helm" (Helm 3) or "helm4" (Helm 4), both built by .ci/prepare-k8s."""
        assert binary in ("helm", "helm4"), binary
        return self._run(binary, args, stdin, check, timeout)

    def apply(self, *manifests: dict[str, Any], namespace: str | None = None) -> None:
        body = json.dumps({"apiVersion": "v1", "kind": "List", "items": list(manifests)})
        args = ["apply", "-f", "-"] + (["-n", namespace] if namespace else [])
        self.kubectl(*args, stdin=body)

    def get(self, *args: str) -> dict[str, Any]:
        out: dict[str, Any] = json.loads(self.kubectl("get", *args, "-o", "json").stdout)
        return out

    def wait_for(self, predicate: Callable[[], T | None], timeout: float, what: str = "condition") -> T:
        """Polls `predicate` until it returns something truthy (returned) or `timeout` passes."""
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while True:
            try:
                value = predicate()
                if value:
                    return value
            except (AssertionError, subprocess.SubprocessError, OSError, KeyError) as exc:
                last_error = exc
            if time.monotonic() >= deadline:
                raise WaitTimeout(
                    f"timed out after {timeout:.0f}s waiting for {what}; last error: {last_error}"
                )
            time.sleep(_POLL_S)

    @contextmanager
    def namespace(self, prefix: str = "t") -> Iterator[str]:
        """A fresh namespace, deleted (without waiting) afterwards."""
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        self.kubectl("create", "namespace", name)
        try:
            yield name
        finally:
            self.kubectl("delete", "namespace", name, "--wait=false", check=False)

    # --- pods
    def pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.api.get(f"/api/v1/namespaces/{namespace}/pods/{name}")

    def pod_ready(self, namespace: str, name: str) -> dict[str, Any] | None:
        pod = self.pod(namespace, name)
        if pod is None or pod["metadata"].get("deletionTimestamp"):
            return None
        for cond in (pod.get("status") or {}).get("conditions") or []:
            if cond["type"] == "Ready" and cond["status"] == "True":
                return pod
        return None

    def netns_of(self, pod: dict[str, Any]) -> str:
        ip = pod["status"]["podIP"]
        prefix = f"10.244.{self.subnet.octet}."
        assert ip.startswith(prefix), f"pod IP {ip} is not in this cluster's subnet"
        return network.netns_name(self.subnet, int(ip.rsplit(".", 1)[1]))

    def run_in_pod(
        self, namespace: str, name: str, argv: list[str], timeout: float = 30
    ) -> subprocess.CompletedProcess[str]:
        """Runs argv in the pod's network namespace with its /etc/hosts and resolv.conf (a lightweight
        `kubectl exec`: no kubelet API exists on process nodes)."""
        pod = self.pod(namespace, name)
        assert pod is not None, f"pod {namespace}/{name} not found"
        netns = self.netns_of(pod)
        return subprocess.run(
            ["ip", "netns", "exec", netns, *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def pod_log(self, namespace: str, name: str, container: str) -> str:
        """The container's output (stdout+stderr, every restart) from the agent's log files."""
        pods = Path(self.state.directory) / "nodes" / "pods"
        texts = [
            p.read_text(errors="replace")
            for p in sorted(pods.glob(f"{namespace}_{name}_*/logs/{container}.log"))
        ]
        return "".join(texts)
