"""The control-plane CLI end to end: `up` starts real processes and a node, `status` reports them,
`down` stops every one of them, including pod processes, and leaves no pod network behind."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from tests.k8s import controlplane, network


def _cli(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tests.k8s.controlplane", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=controlplane.REPO_ROOT,
    )


def _kubectl(kubeconfig: Path, *args: str) -> str:
    argv = [str(controlplane.binary("kubectl")), "--kubeconfig", str(kubeconfig), *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True).stdout


def test_up_status_down(tmp_path: Path) -> None:
    directory = tmp_path / "cp"
    up = _cli("up", "--dir", str(directory), "--nodes", "1")
    state = controlplane.State.load(directory)
    try:
        assert up.returncode == 0, up.stderr
        assert state is not None
        assert f"export KUBECONFIG={state.kubeconfig}" in up.stdout

        status = json.loads(_cli("status", "--dir", str(directory)).stdout)
        assert status["running"] is True
        procs = status["processes"]
        assert set(procs) == {
            "etcd",
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
            "nodeagent",
        }
        assert all(v.startswith("up ") for v in procs.values()), procs

        assert _kubectl(state.kubeconfig, "get", "nodes", "-o", "name").split() == ["node/node-0"]
        _kubectl(state.kubeconfig, "run", "idle", "--image=ignored", "--command", "--", "sleep", "300")
        deadline = time.monotonic() + 60
        while _kubectl(state.kubeconfig, "get", "pod", "idle", "-o", "jsonpath={.status.phase}") != "Running":
            assert time.monotonic() < deadline, "pod idle never ran"
            time.sleep(0.25)
    finally:
        down = _cli("down", "--dir", str(directory))
    assert down.returncode == 0, down.stderr
    assert not any(controlplane.alive(pid) for pid in state.pids.values())
    leftovers = network.ip("netns", "list").stdout + network.ip("-o", "link", "show").stdout
    assert state.subnet.netns_prefix not in leftovers
    assert state.subnet.bridge not in leftovers
    assert not (network.RESERVATIONS / f"subnet-{state.subnet.octet}").exists()
    assert json.loads(_cli("status", "--dir", str(directory)).stdout)["running"] is False
