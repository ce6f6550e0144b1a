"""A real Prometheus server (the Debian `prometheus` binary) run by a test against the local cluster.

Discovery is file-based (`file_sd_configs`): Debian builds Prometheus without the Kubernetes service
discovery (`kubernetes_sd_configs` is rejected as an unknown field by 2.42.0+ds), so `PodDiscovery`
plays its part. It lists pods of one namespace from the local API server every second and rewrites the
targets file atomically (Prometheus follows it through inotify): broker pods annotated
`prometheus.io/scrape=true`, not being deleted, with a pod IP inside the cluster's own
`10.244.<x>.0/24` subnet, at their container port named `metrics`. Nothing off the agent's bridge is scraped.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.k8s import controlplane
from tests.k8s.nodeagent.api import Api

SCRAPE_INTERVAL_S = 1
_HTTP_TIMEOUT_S = 5.0
_DISCOVERY_PERIOD_S = 1.0
BROKER_SELECTOR = "app.kubernetes.io/component=broker"


def binary() -> str:
    path = shutil.which("prometheus")
    if path is None:
        raise FileNotFoundError("prometheus not on PATH (Debian package `prometheus`, see .ci/bootstrap)")
    return path


def config(targets_file: Path) -> dict[str, Any]:
    """Scrape config: whatever `PodDiscovery` writes to `targets_file`."""
    return {
        "global": {"scrape_interval": f"{SCRAPE_INTERVAL_S}s", "scrape_timeout": f"{SCRAPE_INTERVAL_S}s"},
        "scrape_configs": [
            {
                "job_name": "streamraft-brokers",
                "file_sd_configs": [{"files": [str(targets_file)], "refresh_interval": "5s"}],
            }
        ],
    }


def broker_targets(pods: list[dict[str, Any]], subnet_octet: int) -> list[dict[str, Any]]:
    """file_sd target groups for the scrapable broker pods among `pods` (one group per pod)."""
    prefix = f"10.244.{subnet_octet}."
    groups = []
    for pod in pods:
        meta = pod["metadata"]
        ip = str((pod.get("status") or {}).get("podIP") or "")
        annotations = meta.get("annotations") or {}
        if meta.get("deletionTimestamp") or not ip.startswith(prefix):
            continue
        if annotations.get("prometheus.io/scrape") != "true":
            continue
        ports = [
            p["containerPort"]
            for c in pod["spec"]["containers"]
            for p in c.get("ports") or []
            if p.get("name") == "metrics"
        ]
        if len(ports) != 1:
            continue
        groups.append(
            {"targets": [f"{ip}:{ports[0]}"], "labels": {"pod": meta["name"], "namespace": meta["namespace"]}}
        )
    return sorted(groups, key=lambda g: str(g["labels"]["pod"]))


class PodDiscovery:
    """Keeps `path` (a file_sd targets file) in step with the broker pods of `namespace`."""

    def __init__(self, api: Api, namespace: str, subnet_octet: int, path: Path) -> None:
        self.api, self.namespace, self.subnet_octet, self.path = api, namespace, subnet_octet, path
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pod-discovery", daemon=True)
        self._last = ""
        self.error: Exception | None = None

    def refresh(self) -> None:
        selector = urllib.parse.quote(BROKER_SELECTOR)
        pods = self.api.items(f"/api/v1/namespaces/{self.namespace}/pods?labelSelector={selector}")
        text = json.dumps(broker_targets(pods, self.subnet_octet), indent=2)
        if text != self._last:
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(text)
            os.replace(tmp, self.path)  # Prometheus must never read a half-written file
            self._last = text

    def _run(self) -> None:
        while not self._stop.wait(_DISCOVERY_PERIOD_S):
            try:
                self.refresh()
            except Exception as exc:  # kept for the test to report; discovery must outlive API hiccups
                self.error = exc

    def __enter__(self) -> PodDiscovery:
        self.refresh()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


@dataclass
class Prometheus:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def api(self, path: str, **params: str) -> Any:
        """GETs /api/v1/<path>; returns `data`, raising AssertionError on an error status."""
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{query}", timeout=_HTTP_TIMEOUT_S) as resp:
            body = json.loads(resp.read())
        assert body.get("status") == "success", f"prometheus {path}: {body}"
        return body["data"]

    def query(self, expr: str) -> dict[str, float]:
        """An instant vector query: {pod label (or '' when absent): value}."""
        data = self.api("query", query=expr)
        assert data["resultType"] == "vector", f"{expr} is not an instant vector: {data['resultType']}"
        return {str(r["metric"].get("pod", "")): float(r["value"][1]) for r in data["result"]}

    def active_targets(self) -> list[dict[str, Any]]:
        return list(self.api("targets", state="active")["activeTargets"])

    def logs(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/-/ready", timeout=_HTTP_TIMEOUT_S) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@contextmanager
def running(workdir: Path, cfg: dict[str, Any], start_timeout: float = 60) -> Iterator[Prometheus]:
    """Starts Prometheus on a free 127.0.0.1 port with its own TSDB in `workdir`; stops it afterwards."""
    workdir.mkdir(parents=True, exist_ok=True)
    cfg_path = workdir / "prometheus.yml"
    cfg_path.write_text(json.dumps(cfg, indent=2))  # JSON is valid YAML
    port = controlplane.free_port()
    log = workdir / "prometheus.log"
    argv = [
        # Dies with the test process even if that is SIGKILLed, like the control plane's components.
        "setpriv", "--pdeathsig", "KILL", "--",
        binary(),
        f"--config.file={cfg_path}",
        f"--storage.tsdb.path={workdir / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--storage.tsdb.retention.time=1h",
    ]  # fmt: skip
    with open(log, "ab") as out:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    prom = Prometheus(f"http://127.0.0.1:{port}", process, log)
    try:
        deadline = time.monotonic() + start_timeout
        while not _ready(prom.url):
            if process.poll() is not None:
                raise AssertionError(f"prometheus exited with {process.returncode}:\n{prom.logs()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"prometheus not ready after {start_timeout:.0f}s:\n{prom.logs()}")
            time.sleep(0.2)  # polling readiness of a process we just started: nothing to block on
        yield prom
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@contextmanager
def scraping_brokers(api: Api, namespace: str, subnet_octet: int, workdir: Path) -> Iterator[Prometheus]:
    """Prometheus scraping the broker pods of `namespace`, found by `PodDiscovery`."""
    workdir.mkdir(parents=True, exist_ok=True)
    targets = workdir / "brokers.json"
    with PodDiscovery(api, namespace, subnet_octet, targets), running(workdir, config(targets)) as server:
        yield server
