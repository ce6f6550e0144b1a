"""One pod on a process node: its network namespace, volumes, container processes, probes, status
reports, restarts and graceful deletion. Each pod runs in its own thread (PodWorker)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from tests.k8s import network
from tests.k8s.nodeagent.api import ApiError, Obj, now_rfc3339
from tests.k8s.nodeagent.envvars import EnvError, container_env, expand
from tests.k8s.nodeagent.probes import Prober, ProbeState, http_probe, resolve_port
from tests.k8s.nodeagent.volumes import VolumePending, container_mounts, materialize, remove_pod_volumes

if TYPE_CHECKING:
    from tests.k8s.nodeagent.agent import Agent

log = logging.getLogger("nodeagent.pod")

LAUNCHER = Path(__file__).with_name("launcher.py")
_TICK_S = 0.2
# Kubernetes starts at 10 s and caps at 5 min; tests want crash loops to recover quickly.
_BACKOFF_INITIAL_S = 1.0
_BACKOFF_MAX_S = 20.0
_BACKOFF_RESET_AFTER_S = 60.0
_VOLUME_REFRESH_S = 5.0


@dataclass
class Container:
    spec: Obj
    init: bool
    proc: subprocess.Popen[bytes] | None = None
    restart_count: int = 0
    started_at: str | None = None
    started_mono: float = 0.0
    last_terminated: Obj | None = None
    terminated: Obj | None = None
    waiting_reason: str = "ContainerCreating"
    waiting_message: str = ""
    next_start: float = 0.0
    probes: dict[str, ProbeState] = field(default_factory=dict)
    done: bool = False  # terminated and will not be restarted
    kill_reason: str | None = None

    @property
    def name(self) -> str:
        name: str = self.spec["name"]
        return name

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def started(self) -> bool:
        startup = self.probes.get("startup")
        return self.running and (startup is None or startup.result is True)

    @property
    def ready(self) -> bool:
        if not self.started:
            return False
        readiness = self.probes.get("readiness")
        return readiness is None or readiness.result is True


def _hosts_header(pod_ip: str, names: list[str]) -> str:
    return (
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n" + f"{pod_ip}\t{' '.join(names)}\n"
    )


class PodWorker(threading.Thread):
    def __init__(self, agent: Agent, pod: Obj) -> None:
        meta = pod["metadata"]
        super().__init__(name=f"pod-{meta['namespace']}/{meta['name']}", daemon=True)
        self.agent = agent
        self.uid: str = meta["uid"]
        self.namespace: str = meta["namespace"]
        self.pod_name: str = meta["name"]
        self.path = f"/api/v1/namespaces/{self.namespace}/pods/{self.pod_name}"
        self.dir = agent.state_dir / "pods" / f"{self.namespace}_{self.pod_name}_{self.uid}"
        self._pod: Obj | None = pod
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self.stop_requested = False  # agent shutdown: stop processes, keep the pod object
        self.finished = threading.Event()
        self.host: int | None = None
        self.pod_ip = ""
        self.netns = ""
        self.prober: Prober | None = None
        self.volumes: dict[str, Path] | None = None
        self.containers = [Container(c, True) for c in pod["spec"].get("initContainers") or []]
        self.containers += [Container(c, False) for c in pod["spec"]["containers"]]
        self.message = ""
        self.start_time = now_rfc3339()
        self._reported: str = ""
        self._hosts_text = ""
        self._volumes_refreshed = 0.0

    # --- called from the agent thread
    def update(self, pod: Obj | None) -> None:
        with self._lock:
            self._pod = pod
        self._wake.set()

    def set_hosts(self, extra: str) -> None:
        if not self.netns:
            return
        text = _hosts_header(self.pod_ip, self._own_names()) + extra
        if text != self._hosts_text:
            # Rewrite in place: `ip netns exec` bind-mounted this very inode over each process's /etc/hosts.
            with open(network.NETNS_ETC / self.netns / "hosts", "w") as f:
                f.write(text)
            self._hosts_text = text

    def request_stop(self) -> None:
        self.stop_requested = True
        self._wake.set()

    # --- pod thread
    @property
    def pod(self) -> Obj | None:
        with self._lock:
            return self._pod

    def _own_names(self) -> list[str]:
        pod = self.pod or {}
        spec = pod.get("spec") or {}
        hostname: str = spec.get("hostname") or self.pod_name
        sub = spec.get("subdomain")
        if sub:
            fqdn = f"{hostname}.{sub}.{self.namespace}.svc.cluster.local"
            return [fqdn, hostname]
        return [hostname]

    def run(self) -> None:
        try:
            self._setup_network()
            self._loop()
        except Exception:
            log.exception("pod %s/%s worker crashed", self.namespace, self.pod_name)
            self._kill_all(0.0)
        finally:
            self._teardown()
            self.finished.set()

    def _setup_network(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "pids").mkdir(exist_ok=True)
        (self.dir / "logs").mkdir(exist_ok=True)
        self.host = self.agent.allocate_host()
        self.pod_ip = self.agent.subnet.address(self.host)
        self.netns = network.create_pod_netns(self.agent.subnet, self.host)
        # A nameserver nobody serves inside the pod netns: names not in /etc/hosts fail at once, and
        # no DNS query ever leaves the machine.
        (network.NETNS_ETC / self.netns / "resolv.conf").write_text(
            "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n"
        )
        self.set_hosts("")
        self.prober = Prober(self.netns, self.pod_ip, self._exec_probe)
        self.agent.refresh_hosts_soon()

    def _teardown(self) -> None:
        if self.prober is not None:
            self.prober.shutdown()
        if self.host is not None:
            network.delete_pod_netns(self.agent.subnet, self.host)
            self.agent.release_host(self.host)
        remove_pod_volumes(self.dir)

    def _loop(self) -> None:
        while True:
            pod = self.pod
            if self.stop_requested:
                self._kill_all(2.0)
                return
            if pod is None:
                # Removed from the API without us (force delete): nothing to wait for.
                self._kill_all(0.0)
                return
            if pod["metadata"].get("deletionTimestamp"):
                self._terminate(pod)
                return
            if self.volumes is None:
                try:
                    self.volumes = materialize(self.agent.api, pod, self.dir, self.pod_ip, self.agent.host_ip)
                    self.message = ""
                except (VolumePending, ApiError) as exc:
                    self.message = str(exc)
            elif time.monotonic() - self._volumes_refreshed > _VOLUME_REFRESH_S:
                self._volumes_refreshed = time.monotonic()
                try:
                    materialize(self.agent.api, pod, self.dir, self.pod_ip, self.agent.host_ip, refresh=True)
                except (VolumePending, ApiError, OSError) as exc:
                    log.info("volumes of %s/%s keep their content: %s", self.namespace, self.pod_name, exc)
            if self.volumes is not None:
                self._drive_containers(pod)
            try:
                self._report(pod)
            except (ApiError, OSError) as exc:
                # The apiserver may be briefly unreachable or reject one report; the next tick retries.
                log.warning("status of %s/%s not reported: %s", self.namespace, self.pod_name, exc)
            self._wake.wait(_TICK_S)
            self._wake.clear()

    # --- containers
    def _base_env(self) -> dict[str, str]:
        venv_bin = str(Path(sys.executable).parent)
        return {
            "PATH": f"{venv_bin}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": os.environ.get("HOME", "/root"),
            "HOSTNAME": self._own_names()[-1],
            "KUBERNETES_SERVICE_HOST": self.agent.subnet.gateway,
            "KUBERNETES_SERVICE_PORT": str(self.agent.apiproxy_port),
            "KUBERNETES_SERVICE_PORT_HTTPS": str(self.agent.apiproxy_port),
            "KUBERNETES_PORT": f"tcp://{self.agent.subnet.gateway}:{self.agent.apiproxy_port}",
        }

    def _launch_spec(self, c: Container, argv: list[str], env: dict[str, str]) -> Obj:
        assert self.volumes is not None
        pod = self.pod or {}
        return {
            "hostname": self._own_names()[-1][:63],
            "mounts": container_mounts(c.spec, self.volumes),
            "cwd": c.spec.get("workingDir") or str(self.agent.workdir),
            "argv": argv,
            "env": env,
            "pod": f"{pod.get('metadata', {}).get('namespace')}/{self.pod_name}",
        }

    def _container_env(self, c: Container) -> dict[str, str]:
        pod = self.pod
        assert pod is not None
        return container_env(
            self.agent.api, pod, c.spec, base=self._base_env(), pod_ip=self.pod_ip, host_ip=self.agent.host_ip
        )

    def _start(self, c: Container) -> None:
        try:
            env = self._container_env(c)
            command = [expand(a, env) for a in c.spec.get("command") or []]
            command += [expand(a, env) for a in c.spec.get("args") or []]
            if not c.spec.get("command"):
                # There is no image to supply an entrypoint: a process node runs commands only.
                raise EnvError("container has no command; process nodes ignore the image and need one")
            spec = self._launch_spec(c, command, env)
        except (EnvError, VolumePending, ApiError) as exc:
            c.waiting_reason, c.waiting_message = "CreateContainerConfigError", str(exc)
            c.next_start = time.monotonic() + 2.0
            return
        spec_file = self.dir / f"{c.name}.launch.json"
        spec_file.write_text(json.dumps(spec))
        with open(self.dir / "logs" / f"{c.name}.log", "ab") as out:
            out.write(f"--- start {now_rfc3339()} restart={c.restart_count}\n".encode())
            out.flush()
            c.proc = subprocess.Popen(
                ["ip", "netns", "exec", self.netns, sys.executable, str(LAUNCHER), str(spec_file)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        (self.dir / "pids" / c.name).write_text(str(c.proc.pid))
        c.started_at = now_rfc3339()
        c.started_mono = time.monotonic()
        c.terminated = None
        c.kill_reason = None
        c.waiting_reason = c.waiting_message = ""
        assert self.prober is not None
        c.probes = {}
        for kind in ("startup", "liveness", "readiness"):
            probe = c.spec.get(f"{kind}Probe")
            if probe and not c.init:
                c.probes[kind] = ProbeState(kind, probe, c.started_mono)
        log.info("started %s/%s[%s] pid %d", self.namespace, self.pod_name, c.name, c.proc.pid)

    def _on_exit(self, c: Container, policy: str) -> None:
        assert c.proc is not None
        code = c.proc.returncode
        # Negative codes are signals; report them as a shell would (128 + signal).
        exit_code = 128 - code if code < 0 else code
        reason = c.kill_reason or ("Completed" if exit_code == 0 else "Error")
        c.terminated = {
            "exitCode": exit_code,
            "reason": reason,
            "startedAt": c.started_at,
            "finishedAt": now_rfc3339(),
            "containerID": f"process://{c.proc.pid}",
        }
        with contextlib.suppress(FileNotFoundError):
            (self.dir / "pids" / c.name).unlink()
        ran = time.monotonic() - c.started_mono
        c.proc = None
        c.probes = {}
        restart = policy == "Always" or (policy == "OnFailure" and exit_code != 0)
        if c.init:
            restart = exit_code != 0 and policy != "Never"
        if not restart:
            c.done = True
            return
        if ran > _BACKOFF_RESET_AFTER_S:
            delay = _BACKOFF_INITIAL_S
        else:
            delay = min(_BACKOFF_MAX_S, _BACKOFF_INITIAL_S * 2 ** min(c.restart_count, 10))
        c.restart_count += 1
        c.last_terminated = c.terminated
        c.next_start = time.monotonic() + delay
        c.waiting_reason, c.waiting_message = (
            "CrashLoopBackOff",
            f"back-off {delay:.0f}s restarting failed container",
        )
        log.info(
            "%s/%s[%s] exited %d; restart in %.0fs", self.namespace, self.pod_name, c.name, exit_code, delay
        )

    def _drive_containers(self, pod: Obj) -> None:
        policy: str = pod["spec"].get("restartPolicy") or "Always"
        now = time.monotonic()
        for c in self.containers:
            if c.proc is not None and c.proc.poll() is not None:
                self._on_exit(c, policy)
        # Init containers run one at a time, in order, each to successful completion.
        for c in self.containers:
            if not c.init:
                continue
            if c.done and c.terminated is not None and c.terminated["exitCode"] == 0:
                continue
            if c.done:
                return  # failed for good: pod Failed
            if c.proc is None and now >= c.next_start:
                self._start(c)
            return
        for c in self.containers:
            if c.init or c.done:
                continue
            if c.proc is None and now >= c.next_start:
                self._start(c)
            elif c.running:
                self._drive_probes(c)

    def _drive_probes(self, c: Container) -> None:
        assert self.prober is not None
        startup = c.probes.get("startup")
        if startup is not None and startup.result is not True:
            self.prober.step(startup, c.spec)
            if startup.result is False:
                self._kill(c, "StartupProbeFailed")
            return
        liveness = c.probes.get("liveness")
        if liveness is not None:
            self.prober.step(liveness, c.spec)
            if liveness.result is False:
                self._kill(c, "LivenessProbeFailed")
                return
        readiness = c.probes.get("readiness")
        if readiness is not None:
            self.prober.step(readiness, c.spec)

    def _kill(self, c: Container, reason: str) -> None:
        pod = self.pod or {}
        grace = float((pod.get("spec") or {}).get("terminationGracePeriodSeconds", 30))
        c.kill_reason = reason
        log.info("killing %s/%s[%s]: %s", self.namespace, self.pod_name, c.name, reason)
        self._stop_processes([c], grace)

    def _stop_processes(self, containers: list[Container], grace: float) -> None:
        """SIGTERM each process group, SIGKILL whatever is left after `grace` seconds."""
        live = [c for c in containers if c.running]
        for c in live:
            assert c.proc is not None
            with contextlib.suppress(ProcessLookupError):
                os.killpg(c.proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(c.running for c in live):
            time.sleep(0.05)
        for c in live:
            assert c.proc is not None
            with contextlib.suppress(ProcessLookupError):
                os.killpg(c.proc.pid, signal.SIGKILL)
            c.proc.wait()

    def _kill_all(self, grace: float) -> None:
        self._stop_processes(self.containers, grace)
        for c in self.containers:
            if c.proc is not None:
                self._on_exit(c, "Never")

    def _terminate(self, pod: Obj) -> None:
        """Graceful deletion: preStop hooks, SIGTERM, grace period, SIGKILL, then finalize with grace 0."""
        meta = pod["metadata"]
        grace = float(
            meta.get("deletionGracePeriodSeconds", pod["spec"].get("terminationGracePeriodSeconds", 30))
        )
        deadline = time.monotonic() + grace
        running = [c for c in self.containers if c.running]
        for c in running:
            pre_stop = ((c.spec.get("lifecycle") or {}).get("preStop")) or {}
            remaining = max(0.0, deadline - time.monotonic())
            if remaining > 0 and pre_stop:
                self._run_hook(c, pre_stop, remaining)
        self._stop_processes(running, max(0.0, deadline - time.monotonic()))
        for c in self.containers:
            if c.proc is not None:
                self._on_exit(c, "Never")
        with contextlib.suppress(ApiError):
            self._report(pod)
        try:
            self.agent.api.delete(self.path, {"gracePeriodSeconds": 0, "preconditions": {"uid": self.uid}})
        except ApiError as exc:
            if exc.status != 409:  # 409: uid changed, the object is already a new pod
                raise
        log.info("pod %s/%s deleted", self.namespace, self.pod_name)

    def _run_hook(self, c: Container, hook: Obj, timeout: float) -> None:
        if "exec" in hook:
            self._exec_in(c, list(hook["exec"]["command"]), timeout)
        elif "httpGet" in hook:
            action = hook["httpGet"]
            port = resolve_port(action["port"], c.spec)
            # Through the prober thread, which sits in the pod's network namespace; the hook's result
            # does not matter, as for the kubelet: termination proceeds either way.
            assert self.prober is not None
            host = action.get("host") or self.pod_ip
            with contextlib.suppress(Exception):
                self.prober.submit(http_probe, host, port, action, timeout).result(timeout=timeout + 1)
        elif "sleep" in hook:
            time.sleep(min(timeout, float(hook["sleep"].get("seconds", 0))))

    def _exec_in(self, c: Container, command: list[str], timeout: float) -> bool:
        """Runs `command` like `kubectl exec` would: same netns, mounts, env and working directory."""
        try:
            spec = self._launch_spec(c, command, self._container_env(c))
        except (EnvError, VolumePending, ApiError):
            return False
        spec_file = self.dir / f"{c.name}.exec-{threading.get_ident()}.json"
        spec_file.write_text(json.dumps(spec))
        argv = ["ip", "netns", "exec", self.netns, sys.executable, str(LAUNCHER), str(spec_file)]
        try:
            done = subprocess.run(
                argv, capture_output=True, timeout=timeout, check=False, start_new_session=True
            )
        except subprocess.TimeoutExpired:
            return False
        finally:
            spec_file.unlink(missing_ok=True)
        return done.returncode == 0

    def _exec_probe(self, container: Obj, command: list[str], timeout: float) -> bool:
        target = next((c for c in self.containers if c.name == container["name"] and c.running), None)
        if target is None:
            return False
        return self._exec_in(target, command, timeout)

    # --- status
    def _container_status(self, c: Container) -> Obj:
        state: Obj
        if c.running:
            state = {"running": {"startedAt": c.started_at}}
        elif c.terminated is not None and (c.done or not c.waiting_reason):
            state = {"terminated": c.terminated}
        else:
            waiting: Obj = {"reason": c.waiting_reason or "ContainerCreating"}
            if c.waiting_message:
                waiting["message"] = c.waiting_message
            state = {"waiting": waiting}
        status: Obj = {
            "name": c.name,
            "image": c.spec.get("image", ""),
            "imageID": "",
            "ready": c.ready,
            "started": c.started,
            "restartCount": c.restart_count,
            "state": state,
            "lastState": {"terminated": c.last_terminated} if c.last_terminated else {},
        }
        if c.proc is not None:
            status["containerID"] = f"process://{c.proc.pid}"
        return status

    def _phase(self, pod: Obj) -> str:
        regular = [c for c in self.containers if not c.init]
        inits = [c for c in self.containers if c.init]
        if any(c.done and (c.terminated or {}).get("exitCode") != 0 for c in inits):
            return "Failed"
        if all(c.done for c in regular):
            return (
                "Succeeded" if all((c.terminated or {}).get("exitCode") == 0 for c in regular) else "Failed"
            )
        if any(c.running or c.restart_count > 0 or c.done for c in regular):
            return "Running"
        return "Pending"

    def _report(self, pod: Obj) -> None:
        inits = [c for c in self.containers if c.init]
        regular = [c for c in self.containers if not c.init]
        initialized = all(c.done and (c.terminated or {}).get("exitCode") == 0 for c in inits)
        ready = initialized and all(c.ready for c in regular)

        def cond(kind: str, ok: bool, reason: str = "") -> Obj:
            entry: Obj = {"type": kind, "status": "True" if ok else "False"}
            if reason and not ok:
                entry["reason"] = reason
            return entry

        phase = self._phase(pod)
        status: Obj = {
            "phase": phase,
            "hostIP": self.agent.host_ip,
            "hostIPs": [{"ip": self.agent.host_ip}],
            "podIP": self.pod_ip,
            "podIPs": [{"ip": self.pod_ip}] if self.pod_ip else [],
            "startTime": self.start_time,
            "conditions": [
                cond("PodReadyToStartContainers", bool(self.netns)),
                cond("Initialized", initialized, "ContainersNotInitialized"),
                cond("ContainersReady", ready, "ContainersNotReady"),
                cond("Ready", ready, "ContainersNotReady"),
                cond("PodScheduled", True),
            ],
            "containerStatuses": [self._container_status(c) for c in regular],
            "initContainerStatuses": [self._container_status(c) for c in inits],
            "message": self.message or None,
        }
        key = json.dumps(status, sort_keys=True)
        if key == self._reported:
            return
        # Transition times only when something changed, so idle pods cost no API writes.
        stamp = now_rfc3339()
        previous = {c["type"]: c for c in ((pod.get("status") or {}).get("conditions") or [])}
        for entry in status["conditions"]:
            old = previous.get(entry["type"])
            same = old is not None and old.get("status") == entry["status"]
            entry["lastTransitionTime"] = old.get("lastTransitionTime") if same and old else stamp
        try:
            # The uid makes the patch a precondition (409 if the name now belongs to a newer pod), as the
            # kubelet does: a worker still finishing an old pod must never report onto its successor.
            result = self.agent.api.patch(
                self.path + "/status", {"metadata": {"uid": self.uid}, "status": status}
            )
        except ApiError as exc:
            if exc.status == 409:
                return
            raise
        if result is not None:
            with self._lock:
                if self._pod is not None and self._pod["metadata"]["uid"] == self.uid:
                    self._pod = {**self._pod, "status": result.get("status")}
        self._reported = key
        self.agent.refresh_hosts_soon()
