"""A local Kubernetes control plane made of real binaries built from source by .ci/prepare-k8s.

    python -m tests.k8s.controlplane up [--dir D] [--nodes N]   # etcd, apiserver, controller-manager,
                                                                 # scheduler (+ the process node agent)
    python -m tests.k8s.controlplane status [--dir D]
    python -m tests.k8s.controlplane down [--dir D]

Everything listens on 127.0.0.1 at free ports; pods live on a private bridge subnet (see network.py).
`up` writes D/kubeconfig and D/state.json; `down` stops every process it started and removes the pod
network, even if the agent died without cleaning up.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tests.k8s import hostsfile, network, pki

K8S_VERSION = os.environ.get("STREAMRAFT_K8S_VERSION", "v1.36.3")
DEFAULT_DIR = Path(os.environ.get("STREAMRAFT_K8S_DIR", "/tmp/streamraft-k8s"))
REPO_ROOT = Path(__file__).resolve().parents[2]
SERVICE_CIDR = "10.96.0.0/16"
_START_TIMEOUT_S = 120.0
_STOP_GRACE_S = 10.0


def bin_dir() -> Path:
    cache = Path(os.environ.get("STREAMRAFT_CACHE", str(Path.home() / ".cache" / "streamraft")))
    return cache / f"k8s-{K8S_VERSION}" / "bin"


def binary(name: str) -> Path:
    path = bin_dir() / name
    if not path.is_file():
        raise FileNotFoundError(f"{path} missing: run .ci/prepare-k8s first to build the Kubernetes binaries")
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class State:
    """What `up` started; `down` and `status` work from this file alone."""

    directory: str
    apiserver_port: int
    subnet_octet: int
    pids: dict[str, int] = field(default_factory=dict)
    nodes: int = 0
    tied_to_parent: bool = False

    @property
    def kubeconfig(self) -> Path:
        return Path(self.directory) / "kubeconfig"

    @property
    def subnet(self) -> network.Subnet:
        return network.Subnet(self.subnet_octet)

    def save(self) -> None:
        (Path(self.directory) / "state.json").write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, directory: Path) -> State | None:
        path = directory / "state.json"
        if not path.exists():
            return None
        data = json.loads(path.read_text())
        return cls(**data)


def _kubeconfig(state: State, ca: Path, crt: Path, key: Path) -> str:
    # JSON is valid YAML, and saves us formatting YAML by hand.
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "streamraft",
                "cluster": {
                    "server": f"https://127.0.0.1:{state.apiserver_port}",
                    "certificate-authority": str(ca),
                },
            }
        ],
        "users": [{"name": "admin", "user": {"client-certificate": str(crt), "client-key": str(key)}}],
        "contexts": [{"name": "streamraft", "context": {"cluster": "streamraft", "user": "admin"}}],
        "current-context": "streamraft",
    }
    return json.dumps(config, indent=2)


def _clean_env() -> dict[str, str]:
    # etcd turns every ETCD_* variable into a flag, and a stray KUBECONFIG would mislead the components.
    return {k: v for k, v in os.environ.items() if not k.startswith(("ETCD_", "KUBE"))}


def _spawn(state: State, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
    if state.tied_to_parent:
        # The component gets a signal when the process that started it dies, so a test session killed
        # with SIGKILL leaves no control plane behind; the agent gets SIGTERM to still clean up its pods.
        argv = ["setpriv", "--pdeathsig", "TERM" if name == "nodeagent" else "KILL", "--", *argv]
    logs = Path(state.directory) / "logs"
    logs.mkdir(exist_ok=True)
    with open(logs / f"{name}.log", "ab") as log:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env if env is not None else _clean_env(),
            start_new_session=True,
            cwd=state.directory,
        )
    state.pids[name] = proc.pid
    state.save()


def _wait(
    what: str, predicate: object, state: State, log_name: str, timeout: float = _START_TIMEOUT_S
) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        pid = state.pids.get(log_name)
        if pid is not None and not alive(pid):
            break
        time.sleep(0.2)
    log = Path(state.directory) / "logs" / f"{log_name}.log"
    tail = log.read_text(errors="replace")[-3000:] if log.exists() else "(no log)"
    raise RuntimeError(f"{what} did not become ready within {timeout:.0f}s; last log lines:\n{tail}")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); read its state to tell.
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    return True


def _tcp_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _https_ok(url: str, keys: pki.Pki) -> bool:
    ctx = ssl.create_default_context(cafile=str(keys.ca_crt))
    ctx.load_cert_chain(str(keys.crt("admin")), str(keys.key("admin")))
    try:
        with urllib.request.urlopen(url, context=ctx, timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def up(
    directory: Path, nodes: int, agent_args: list[str] | None = None, tie_to_parent: bool = False
) -> State:
    """Starts the control plane (and `nodes` process nodes if > 0); returns its state. With
    `tie_to_parent`, every component dies with the calling process (for test sessions)."""
    existing = State.load(directory)
    if existing is not None and any(alive(p) for p in existing.pids.values()):
        raise RuntimeError(f"a control plane already runs from {directory}; run `down` first")
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    subnet = network.reserve_subnet(os.getpid())
    state = State(
        directory=str(directory),
        apiserver_port=free_port(),
        subnet_octet=subnet.octet,
        tied_to_parent=tie_to_parent,
    )
    state.save()
    try:
        _start(state, nodes, agent_args or [])
    except BaseException:
        down(directory)
        raise
    return state


def _start(state: State, nodes: int, agent_args: list[str]) -> None:
    d = Path(state.directory)
    keys = pki.generate(d / "pki", ["127.0.0.1", state.subnet.gateway])
    state.kubeconfig.write_text(_kubeconfig(state, keys.ca_crt, keys.crt("admin"), keys.key("admin")))

    etcd_client, etcd_peer = free_port(), free_port()
    _spawn(state, "etcd", [
        str(binary("etcd")), "--name", "etcd0", "--data-dir", str(d / "etcd"),
        "--listen-client-urls", f"http://127.0.0.1:{etcd_client}",
        "--advertise-client-urls", f"http://127.0.0.1:{etcd_client}",
        "--listen-peer-urls", f"http://127.0.0.1:{etcd_peer}",
        "--initial-advertise-peer-urls", f"http://127.0.0.1:{etcd_peer}",
        "--initial-cluster", f"etcd0=http://127.0.0.1:{etcd_peer}",
        # A throwaway test cluster: durability of the control plane's own store is not under test.
        "--unsafe-no-fsync", "--log-level", "warn",
    ])  # fmt: skip
    _wait("etcd", lambda: _tcp_open(etcd_client), state, "etcd")

    port = state.apiserver_port
    _spawn(state, "kube-apiserver", [
        str(binary("kube-apiserver")),
        "--etcd-servers", f"http://127.0.0.1:{etcd_client}",
        "--bind-address", "127.0.0.1", "--secure-port", str(port), "--advertise-address", "127.0.0.1",
        # The default reconciler would publish 127.0.0.1 as the `kubernetes` Service endpoint, which
        # Endpoints validation rejects, and it loops on the error.
        "--endpoint-reconciler-type", "none",
        # Reach process nodes' log endpoint by their bridge address; never look node names up in DNS.
        "--kubelet-preferred-address-types", "InternalIP",
        "--service-cluster-ip-range", SERVICE_CIDR,
        "--tls-cert-file", str(keys.crt("apiserver")), "--tls-private-key-file", str(keys.key("apiserver")),
        "--client-ca-file", str(keys.ca_crt),
        "--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
        "--service-account-key-file", str(keys.sa_pub),
        "--service-account-signing-key-file", str(keys.sa_key),
        "--authorization-mode", "Node,RBAC", "--allow-privileged=true",
        # Without the front-proxy settings the aggregated-API controllers error-loop.
        "--requestheader-client-ca-file", str(keys.front_proxy_ca_crt),
        "--requestheader-allowed-names", "front-proxy-client",
        "--requestheader-username-headers", "X-Remote-User",
        "--requestheader-group-headers", "X-Remote-Group",
        "--requestheader-extra-headers-prefix", "X-Remote-Extra-",
        "--proxy-client-cert-file", str(keys.crt("front-proxy-client")),
        "--proxy-client-key-file", str(keys.key("front-proxy-client")),
        "--profiling=false", "--v", "1",
    ])  # fmt: skip
    _wait(
        "kube-apiserver", lambda: _https_ok(f"https://127.0.0.1:{port}/readyz", keys), state, "kube-apiserver"
    )

    kubeconfig = str(state.kubeconfig)
    common = ["--kubeconfig", kubeconfig, "--authentication-kubeconfig", kubeconfig]
    common += [
        "--authorization-kubeconfig",
        kubeconfig,
        "--bind-address",
        "127.0.0.1",
        "--leader-elect=false",
    ]
    cm_port = free_port()
    _spawn(state, "kube-controller-manager", [
        str(binary("kube-controller-manager")), *common, "--secure-port", str(cm_port),
        "--service-account-private-key-file", str(keys.sa_key), "--root-ca-file", str(keys.ca_crt),
        "--cluster-signing-cert-file", str(keys.ca_crt), "--cluster-signing-key-file", str(keys.key("ca")),
        "--use-service-account-credentials=false", "--profiling=false", "--v", "1",
    ])  # fmt: skip
    sched_port = free_port()
    _spawn(state, "kube-scheduler", [
        str(binary("kube-scheduler")), *common, "--secure-port", str(sched_port), "--profiling=false",
    ])  # fmt: skip
    _wait("kube-controller-manager", lambda: _tcp_open(cm_port), state, "kube-controller-manager")
    _wait("kube-scheduler", lambda: _tcp_open(sched_port), state, "kube-scheduler")

    if nodes > 0:
        state.nodes = nodes
        agent_env = _clean_env()
        agent_env["PYTHONPATH"] = str(REPO_ROOT)
        _spawn(state, "nodeagent", [
            sys.executable, "-m", "tests.k8s.nodeagent", "--kubeconfig", kubeconfig,
            "--state-dir", str(d / "nodes"), "--nodes", str(nodes), "--subnet", str(state.subnet_octet),
            "--apiserver-port", str(port), *agent_args,
        ], env=agent_env)  # fmt: skip
        ready_file = d / "nodes" / "ready"
        _wait("node agent", ready_file.exists, state, "nodeagent")
    network.set_subnet_owner(state.subnet, state.pids.get("nodeagent", state.pids["kube-apiserver"]))
    state.save()


def _stop(pids: dict[str, int]) -> None:
    for pid in pids.values():
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + _STOP_GRACE_S
    while time.monotonic() < deadline and any(alive(p) for p in pids.values()):
        time.sleep(0.1)
    for pid in pids.values():
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


def down(directory: Path, keep_logs: bool = False) -> None:
    """Stops everything `up` started (agent first, so it can stop its pods) and removes the network;
    with `keep_logs`, only etcd's data and pod volumes are removed and the logs stay for inspection."""
    state = State.load(directory)
    if state is None:
        return
    order = ["nodeagent", "kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd"]
    for name in order:
        if name in state.pids:
            _stop({name: state.pids[name]})
    _stop({k: v for k, v in state.pids.items() if k not in order})
    _kill_pod_processes(Path(state.directory) / "nodes")
    network.teardown_subnet(state.subnet)
    hostsfile.remove_block(str(state.subnet_octet))
    if keep_logs:
        for bulky in ("etcd", "nodes/volumes"):
            shutil.rmtree(directory / bulky, ignore_errors=True)
        (directory / "state.json").unlink(missing_ok=True)
    else:
        shutil.rmtree(directory, ignore_errors=True)


def _kill_pod_processes(nodes_dir: Path) -> None:
    # The agent records each container's process group; if the agent was SIGKILLed they still run.
    for pidfile in nodes_dir.glob("pods/*/pids/*"):
        with contextlib.suppress(ValueError, OSError):
            os.killpg(int(pidfile.read_text()), signal.SIGKILL)


def status(directory: Path) -> dict[str, object]:
    state = State.load(directory)
    if state is None:
        return {"running": False, "directory": str(directory)}
    return {
        "running": True,
        "directory": state.directory,
        "kubeconfig": str(state.kubeconfig),
        "apiserver": f"https://127.0.0.1:{state.apiserver_port}",
        "pod_subnet": f"10.244.{state.subnet_octet}.0/24",
        "processes": {
            name: ("up" if alive(pid) else "DEAD") + f" pid={pid}" for name, pid in state.pids.items()
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.k8s.controlplane", description=__doc__.split("\n")[0]
    )
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument(
        "--dir", type=Path, default=DEFAULT_DIR, help=f"state directory (default {DEFAULT_DIR})"
    )
    parser.add_argument("--nodes", type=int, default=1, help="process nodes to run (0: control plane only)")
    parser.add_argument("--host-dns", action="store_true", help="publish cluster DNS names in /etc/hosts too")
    args = parser.parse_args(argv)
    directory: Path = args.dir.resolve()
    if args.command == "up":
        t0 = time.monotonic()
        state = up(directory, args.nodes, ["--host-dns"] if args.host_dns else [])
        print(f"control plane up in {time.monotonic() - t0:.1f}s")
        print(f"export KUBECONFIG={state.kubeconfig}")
        print(f"kubectl: {binary('kubectl')}")
    elif args.command == "down":
        down(directory)
        print("control plane down")
    else:
        print(json.dumps(status(directory), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
