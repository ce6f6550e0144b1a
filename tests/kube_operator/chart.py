"""Helpers to render the Helm chart with the harness's helm binary (built by .ci/prepare-k8s)."""

import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "streamraft"
# `helm template` assumes an old cluster unless told; the chart requires >= 1.29.
KUBE_VERSION = "1.36.0"


def helm_binary() -> Path | None:
    try:
        from tests.k8s.controlplane import bin_dir  # noqa: PLC0415  (the harness may not be importable yet)

        candidate = bin_dir() / "helm"
        if candidate.is_file():
            return candidate
    except ImportError:
        pass
    found = shutil.which("helm")
    return Path(found) if found else None


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    binary = helm_binary()
    assert binary is not None
    return subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=120, check=False)


def render(*set_args: str, namespace: str = "streamraft-system") -> list[dict[str, Any]]:
    args = ["template", "rel", str(CHART), "--namespace", namespace, "--kube-version", KUBE_VERSION]
    for s in set_args:
        args += ["--set", s]
    out = helm(*args)
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]
