"""The node agent: registers N Node objects, keeps their status and Lease fresh, runs the pods the
scheduler binds to them (one PodWorker thread each), provisions host-directory PVs for unbound claims,
keeps each pod's /etc/hosts in step with pods and Services, and relays pod traffic for the apiserver.

Polling once a second (three LIST calls) rather than watching keeps the agent simple and robust to
apiserver restarts; a small test cluster has few objects.
"""

from __future__ import annotations

import contextlib
import logging
import platform
import threading
import time
from collections.abc import Callable
from pathlib import Path

from tests.k8s import hostsfile, network, pki
from tests.k8s.nodeagent.api import Api, ApiError, Obj, now_micro, now_rfc3339
from tests.k8s.nodeagent.apiproxy import TcpRelay
from tests.k8s.nodeagent.dns import host_lines, hosts_entries, hosts_for_namespace
from tests.k8s.nodeagent.kubeletapi import KubeletApi
from tests.k8s.nodeagent.pod import PodWorker
from tests.k8s.nodeagent.provisioner import expand, provision

log = logging.getLogger("nodeagent")

_POLL_S = 1.0
_HEARTBEAT_S = 10.0
_LEASE_S = 40
_STOP_JOIN_S = 15.0
NODE_CAPACITY = {"cpu": "16", "memory": "64Gi", "pods": "110", "ephemeral-storage": "100Gi"}


class Agent:
    def __init__(
        self,
        api: Api,
        *,
        state_dir: Path,
        node_names: list[str],
        subnet: network.Subnet,
        apiserver_port: int,
        workdir: Path,
        kubelet_version: str,
        host_dns: bool = False,
    ) -> None:
        assert node_names, "an agent needs at least one node"
        self.api = api
        self.state_dir = state_dir
        self.node_names = node_names
        self.subnet = subnet
        self.host_ip = subnet.gateway
        self.workdir = workdir
        self.kubelet_version = kubelet_version
        self.apiserver_port = apiserver_port
        self.apiproxy_port = 0
        self.workers: dict[str, PodWorker] = {}
        self._hosts_in_use: set[int] = set()
        self._last_host = 254
        self._alloc_lock = threading.Lock()
        self._stop = threading.Event()
        self._refresh = threading.Event()
        self._node_uids: dict[str, str] = {}
        self._relay: TcpRelay | None = None
        self._kubelet_api: KubeletApi | None = None
        self.host_dns = host_dns
        self._host_lines: list[str] = []

    # --- shared with pod workers
    def allocate_host(self) -> int:
        with self._alloc_lock:
            # Round robin, as real IPAM does: an address just freed is handed out last, so no client's
            # cached route or connection to a deleted pod reaches its successor.
            for step in range(1, 254):
                host = 2 + (self._last_host - 2 + step) % 253
                if host not in self._hosts_in_use:
                    self._hosts_in_use.add(host)
                    self._last_host = host
                    return host
        raise network.NetworkError(f"no free pod address left in {self.subnet.gateway}/24")

    def release_host(self, host: int) -> None:
        with self._alloc_lock:
            self._hosts_in_use.discard(host)

    def refresh_hosts_soon(self) -> None:
        self._refresh.set()

    def stop(self) -> None:
        self._stop.set()
        self._refresh.set()

    # --- nodes
    def _node_status(self) -> Obj:
        stamp = now_rfc3339()

        def condition(kind: str, ok: bool, reason: str) -> Obj:
            return {
                "type": kind,
                "status": "True" if ok else "False",
                "reason": reason,
                "lastHeartbeatTime": stamp,
                "lastTransitionTime": self._started_at,
            }

        return {
            "capacity": NODE_CAPACITY,
            "allocatable": NODE_CAPACITY,
            "conditions": [
                condition("Ready", True, "KubeletReady"),
                condition("MemoryPressure", False, "KubeletHasSufficientMemory"),
                condition("DiskPressure", False, "KubeletHasNoDiskPressure"),
                condition("PIDPressure", False, "KubeletHasSufficientPID"),
            ],
            "nodeInfo": {
                "kubeletVersion": self.kubelet_version,
                "kubeProxyVersion": "",
                "containerRuntimeVersion": "process://streamraft-nodeagent",
                "operatingSystem": "linux",
                "architecture": "amd64",
                "kernelVersion": platform.release(),
                "osImage": "streamraft process node",
                "machineID": "",
                "systemUUID": "",
                "bootID": "",
            },
            "daemonEndpoints": {
                "kubeletEndpoint": {"Port": self._kubelet_api.port if self._kubelet_api else 0}
            },
        }

    def _register(self, name: str, index: int) -> None:
        body: Obj = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "labels": {
                    "kubernetes.io/hostname": name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "topology.kubernetes.io/zone": f"zone-{index}",
                    "streamraft.io/process-node": "true",
                },
            },
        }
        try:
            created = self.api.create("/api/v1/nodes", body)
        except ApiError as exc:
            if exc.status != 409:
                raise
            created = self.api.get(f"/api/v1/nodes/{name}")
        assert created is not None
        self._node_uids[name] = created["metadata"]["uid"]
        status = self._node_status()
        status["addresses"] = [{"type": "InternalIP", "address": self.host_ip}]
        self.api.patch(f"/api/v1/nodes/{name}/status", {"status": status})
        lease: Obj = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": name,
                "namespace": "kube-node-lease",
                "ownerReferences": [
                    {"apiVersion": "v1", "kind": "Node", "name": name, "uid": self._node_uids[name]}
                ],
            },
            "spec": {"holderIdentity": name, "leaseDurationSeconds": _LEASE_S, "renewTime": now_micro()},
        }
        try:
            self.api.create("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases", lease)
        except ApiError as exc:
            if exc.status != 409:
                raise
            self._renew(name)

    def _renew(self, name: str) -> None:
        path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{name}"
        self.api.patch(path, {"spec": {"holderIdentity": name, "renewTime": now_micro()}})

    def _heartbeat_loop(self) -> None:
        while not self._stop.wait(_HEARTBEAT_S):
            for name in self.node_names:
                try:
                    self._renew(name)
                    self.api.patch(f"/api/v1/nodes/{name}/status", {"status": self._node_status()})
                except (ApiError, OSError) as exc:
                    log.warning("heartbeat for %s failed: %s", name, exc)

    # --- main loop
    def run(self) -> None:
        self._started_at = now_rfc3339()
        network.create_bridge(self.subnet)
        self._relay = TcpRelay(self.subnet.gateway, ("127.0.0.1", self.apiserver_port))
        self.apiproxy_port = self._relay.port
        cert, key = pki.self_signed(self.state_dir / "pki", "kubelet", [self.host_ip])
        self._kubelet_api = KubeletApi(self.host_ip, cert, key, self._container_log)
        for index, name in enumerate(self.node_names):
            self._register(name, index)
        threading.Thread(target=self._heartbeat_loop, name="heartbeat", daemon=True).start()
        (self.state_dir / "ready").write_text(",".join(self.node_names))
        log.info("nodes %s ready; pods on 10.244.%d.0/24", self.node_names, self.subnet.octet)
        try:
            while not self._stop.is_set():
                try:
                    self._poll()
                except (ApiError, OSError) as exc:
                    log.warning("poll failed: %s", exc)
                self._refresh.wait(_POLL_S)
                self._refresh.clear()
        finally:
            self._shutdown()

    def _poll(self) -> None:
        pods = self.api.items("/api/v1/pods")
        services = self.api.items("/api/v1/services")
        mine = {
            p["metadata"]["uid"]: p for p in pods if (p.get("spec") or {}).get("nodeName") in self.node_names
        }
        for uid, pod in mine.items():
            worker = self.workers.get(uid)
            if worker is not None:
                worker.update(pod)
                continue
            phase = (pod.get("status") or {}).get("phase")
            if pod["metadata"].get("deletionTimestamp"):
                # No worker means nothing of it runs here (finished, or never started): finalize at once.
                with contextlib.suppress(ApiError):
                    self.api.delete(
                        f"/api/v1/namespaces/{pod['metadata']['namespace']}/pods/{pod['metadata']['name']}",
                        {"gracePeriodSeconds": 0, "preconditions": {"uid": uid}},
                    )
                continue
            if phase in ("Succeeded", "Failed"):
                continue
            worker = PodWorker(self, pod)
            self.workers[uid] = worker
            worker.start()
        for uid, worker in list(self.workers.items()):
            if uid not in mine:
                worker.update(None)
            if worker.finished.is_set():
                del self.workers[uid]
        entries = hosts_entries(pods, services)
        for worker in self.workers.values():
            worker.set_hosts(hosts_for_namespace(entries, worker.namespace))
        if self.host_dns:
            lines = sorted(set(host_lines(entries)))
            if lines != self._host_lines:
                hostsfile.update_block(str(self.subnet.octet), lines)
                self._host_lines = lines
        provision(self.api, self.state_dir / "volumes")
        expand(self.api)

    def _container_log(
        self, namespace: str, pod: str, container: str
    ) -> tuple[Path, Callable[[], bool]] | None:
        """Where a container's output is, for `kubectl logs`: the live pod's, else the newest on disk."""
        for worker in self.workers.values():
            if worker.namespace == namespace and worker.pod_name == pod and not worker.finished.is_set():
                names = [c.name for c in worker.containers]
                if container not in names:
                    return None
                target = worker.containers[names.index(container)]
                return worker.dir / "logs" / f"{container}.log", lambda target=target: target.running
        files = sorted(
            (self.state_dir / "pods").glob(f"{namespace}_{pod}_*/logs/{container}.log"),
            key=lambda p: p.stat().st_mtime,
        )
        return (files[-1], lambda: False) if files else None

    def _shutdown(self) -> None:
        for worker in self.workers.values():
            worker.request_stop()
        deadline = time.monotonic() + _STOP_JOIN_S
        for worker in self.workers.values():
            worker.join(max(0.0, deadline - time.monotonic()))
        if self._relay is not None:
            self._relay.close()
        if self._kubelet_api is not None:
            self._kubelet_api.close()
        if self.host_dns:
            hostsfile.remove_block(str(self.subnet.octet))
        # The bridge goes with the agent; the subnet reservation stays until `down` (or reclaim).
        network.ip("link", "delete", self.subnet.bridge, check=False)
        log.info("agent stopped")
