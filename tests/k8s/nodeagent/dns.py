"""Cluster DNS names as /etc/hosts lines, computed from pods and Services the way CoreDNS answers:

- `<hostname>.<subdomain>.<ns>.svc.cluster.local` for a pod whose spec.subdomain names a headless
  Service selecting it (StatefulSet pods), while it is ready or the Service publishes not-ready addresses;
- `<svc>.<ns>.svc.cluster.local` -> the selected pods' IPs for headless Services, and also for ClusterIP
  Services whose ports need no translation (port == targetPort): no kube-proxy runs here, so a
  ClusterIP must never receive traffic, and the pod IPs are the honest stand-in.

/etc/hosts has no search domains, so same-namespace short forms (`svc`, `svc.ns`, `svc.ns.svc`) are
listed explicitly in each pod's file.
"""

from __future__ import annotations

from dataclasses import dataclass

from tests.k8s.nodeagent.api import Obj

DOMAIN = "svc.cluster.local"


@dataclass(frozen=True)
class Entry:
    ip: str
    namespace: str
    relative: str  # name relative to <ns>.svc.cluster.local, e.g. "web" or "web-0.web"


def _ready(pod: Obj) -> bool:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return bool(cond.get("status") == "True")
    return False


def _selects(selector: dict[str, str], pod: Obj) -> bool:
    labels = pod["metadata"].get("labels") or {}
    return all(labels.get(k) == v for k, v in selector.items())


def _plain_ports(service: Obj) -> bool:
    for port in (service.get("spec") or {}).get("ports") or []:
        target = port.get("targetPort", port.get("port"))
        if target != port.get("port"):
            return False
    return True


def hosts_entries(pods: list[Obj], services: list[Obj]) -> list[Entry]:
    entries: list[Entry] = []
    live = [
        p
        for p in pods
        if (p.get("status") or {}).get("podIP")
        and not p["metadata"].get("deletionTimestamp")
        and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
    ]
    for svc in services:
        spec = svc.get("spec") or {}
        selector: dict[str, str] | None = spec.get("selector")
        if not selector:
            continue
        namespace = svc["metadata"]["namespace"]
        name = svc["metadata"]["name"]
        headless = spec.get("clusterIP") == "None"
        if not headless and not _plain_ports(svc):
            continue
        publish_all = bool(spec.get("publishNotReadyAddresses"))
        for pod in live:
            if pod["metadata"]["namespace"] != namespace or not _selects(selector, pod):
                continue
            if not (publish_all or _ready(pod)):
                continue
            ip = pod["status"]["podIP"]
            entries.append(Entry(ip, namespace, name))
            pod_spec = pod.get("spec") or {}
            if headless and pod_spec.get("subdomain") == name:
                hostname = pod_spec.get("hostname") or pod["metadata"]["name"]
                entries.append(Entry(ip, namespace, f"{hostname}.{name}"))
    return entries


def host_lines(entries: list[Entry]) -> list[str]:
    """Fully qualified names only, for the host's /etc/hosts (no namespace to shorten against)."""
    return [f"{e.ip}\t{e.relative}.{e.namespace}.{DOMAIN}" for e in entries]


def hosts_for_namespace(entries: list[Entry], namespace: str) -> str:
    """The /etc/hosts lines (after the pod's own) for a pod in `namespace`."""
    lines: list[str] = []
    for e in entries:
        names = [f"{e.relative}.{e.namespace}.{DOMAIN}"]
        if e.namespace == namespace:
            names += [e.relative, f"{e.relative}.{e.namespace}", f"{e.relative}.{e.namespace}.svc"]
        else:
            names += [f"{e.relative}.{e.namespace}", f"{e.relative}.{e.namespace}.svc"]
        lines.append(f"{e.ip}\t{' '.join(names)}")
    return "\n".join(sorted(set(lines))) + ("\n" if lines else "")
