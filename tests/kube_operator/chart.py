"""Helpers to render the Helm chart with the harness's helm binaries (built by .ci/prepare-k8s): `helm` is
Helm 3, `helm4` is Helm 4. The chart is apiVersion v2, which both read the same way (Helm 4 keeps v2
charts as they are; its new v3 chart format is opt-in), so every chart test runs with both."""

import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "streamraft"
# `helm template` assumes an old cluster unless told; the chart requires >= 1.29.
KUBE_VERSION = "1.36.0"
HELMS = ("helm", "helm4")


def helm_binary(name: str = "helm") -> Path | None:
    assert name in HELMS, name
    try:
        from tests.k8s.controlplane import bin_dir  # noqa: PLC0415  (the harness may not be importable yet)

        candidate = bin_dir() / name
        if candidate.is_file():
            return candidate
    except ImportError:
        pass
    found = shutil.which(name)
    return Path(found) if found else None


def helm(*args: str, binary: str = "helm") -> subprocess.CompletedProcess[str]:
    path = helm_binary(binary)
    assert path is not None, f"{binary} not built: run .ci/prepare-k8s"
    return subprocess.run([str(path), *args], capture_output=True, text=True, timeout=120, check=False)


def render(
    *set_args: str, namespace: str = "streamraft-system", binary: str = "helm"
) -> list[dict[str, Any]]:
    args = ["template", "rel", str(CHART), "--namespace", namespace, "--kube-version", KUBE_VERSION]
    for s in set_args:
        args += ["--set", s]
    out = helm(*args, binary=binary)
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]
