"""Readiness, liveness and startup probes (httpGet, tcpSocket, grpc, exec), run from a thread that
lives in the pod's network namespace."""

from __future__ import annotations

import http.client
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tests.k8s.nodeagent.api import Obj
from tests.k8s.nodeagent.netns import enter_netns

_GRPC_PROBE = Path(__file__).with_name("grpcprobe.py")


def resolve_port(port: object, container: Obj) -> int:
    if isinstance(port, int):
        return port
    if isinstance(port, str) and port.isdigit():
        return int(port)
    for p in container.get("ports") or []:
        if p.get("name") == port:
            return int(p["containerPort"])
    raise ValueError(f"probe port {port!r} is not a number nor a named port of container {container['name']}")


def http_probe(host: str, port: int, action: Obj, timeout: float) -> bool:
    scheme = str(action.get("scheme", "HTTP")).upper()
    conn: http.client.HTTPConnection
    if scheme == "HTTPS":
        # Like the kubelet: probes do not verify the serving certificate.
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=ctx)
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    headers = {h["name"]: h["value"] for h in action.get("httpHeaders") or []}
    try:
        conn.request("GET", action.get("path") or "/", headers=headers)
        status = conn.getresponse().status
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()
    return 200 <= status < 400


def tcp_probe(host: str, port: int, timeout: float) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def grpc_probe(host: str, port: int, service: str, timeout: float) -> bool:
    argv = [sys.executable, str(_GRPC_PROBE), host, str(port), service, str(timeout)]
    try:
        return subprocess.run(argv, capture_output=True, timeout=timeout + 5, check=False).returncode == 0
    except subprocess.TimeoutExpired:
        return False


@dataclass
class ProbeState:
    """Schedule and result of one probe of one container incarnation."""

    kind: str
    spec: Obj
    started_at: float
    successes: int = 0
    failures: int = 0
    result: bool | None = None  # None: not decided yet
    next_at: float = 0.0
    pending: Future[bool] | None = None
    history: list[bool] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.next_at = self.started_at + float(self.spec.get("initialDelaySeconds", 0))

    @property
    def period(self) -> float:
        return float(self.spec.get("periodSeconds", 10))

    @property
    def timeout(self) -> float:
        return float(self.spec.get("timeoutSeconds", 1))


class Prober:
    """One thread in the pod's netns runs every probe of the pod, one at a time."""

    def __init__(self, netns: str, pod_ip: str, run_exec: Callable[[Obj, list[str], float], bool]) -> None:
        self.pod_ip = pod_ip
        self._run_exec = run_exec
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"probe-{netns}",
                                        initializer=enter_netns, initargs=(netns,))  # fmt: skip

    def check(self, probe: Obj, container: Obj, timeout: float) -> bool:
        """Runs one probe attempt synchronously (call from the pool)."""
        if "exec" in probe:
            return self._run_exec(container, list(probe["exec"]["command"]), timeout)
        if "httpGet" in probe:
            action = probe["httpGet"]
            host = action.get("host") or self.pod_ip
            return http_probe(host, resolve_port(action["port"], container), action, timeout)
        if "tcpSocket" in probe:
            action = probe["tcpSocket"]
            return tcp_probe(
                action.get("host") or self.pod_ip, resolve_port(action["port"], container), timeout
            )
        if "grpc" in probe:
            action = probe["grpc"]
            return grpc_probe(self.pod_ip, int(action["port"]), str(action.get("service") or ""), timeout)
        raise ValueError(f"probe with no handler: {sorted(probe)}")

    def step(self, state: ProbeState, container: Obj) -> bool:
        """Advances one probe's schedule; returns True when its result changed."""
        now = time.monotonic()
        if state.pending is not None:
            if not state.pending.done():
                return False
            try:
                ok = state.pending.result()
            except (OSError, ValueError):
                ok = False
            state.pending = None
            state.history = [*state.history[-9:], ok]
            return self._record(state, ok)
        if now >= state.next_at:
            state.next_at = now + state.period
            state.pending = self._pool.submit(self.check, state.spec, container, state.timeout)
        return False

    @staticmethod
    def _record(state: ProbeState, ok: bool) -> bool:
        before = state.result
        if ok:
            state.successes += 1
            state.failures = 0
            if state.successes >= int(state.spec.get("successThreshold", 1)):
                state.result = True
        else:
            state.failures += 1
            state.successes = 0
            if state.failures >= int(state.spec.get("failureThreshold", 3)):
                state.result = False
        return state.result != before

    def submit(self, fn: Callable[..., bool], *args: object) -> Future[bool]:
        """Runs `fn` on the thread that lives in the pod's network namespace."""
        return self._pool.submit(fn, *args)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
