"""The Streamraft image as tests see it: built by `.ci/prepare-image`, run with podman.

Every podman call uses the project's containers.conf (the machine's ulimits and cgroups need it) and is
bounded in time. Nothing here is skipped when podman is missing: the image tests then fail.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CONTAINERS_CONF = Path(__file__).with_name("containers.conf")
PREPARE = REPO / ".ci" / "prepare-image"
# Warm it takes seconds; cold (base rootfs + pip install) a few minutes. CI runs it before pytest.
PREPARE_S = 900.0
PODMAN_TIMEOUT_S = 60.0
BROKER_UID = 10001

Completed = subprocess.CompletedProcess[str]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("CONTAINERS_CONF", str(CONTAINERS_CONF))
    return env


def prepare_image() -> str:
    """Runs .ci/prepare-image (a no-op when the image is current) and returns the tag it built."""
    cmd = ["bash", str(PREPARE)]
    done = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=PREPARE_S, env=_env())
    assert done.returncode == 0, f".ci/prepare-image failed ({done.returncode}):\n{done.stderr[-4000:]}"
    tag = done.stdout.strip().splitlines()[-1]
    assert tag.startswith("localhost/streamraft:"), f"unexpected prepare-image output {done.stdout!r}"
    return tag


def podman(*args: str, check: bool = True, timeout: float = PODMAN_TIMEOUT_S) -> Completed:
    cmd = ["podman", *args]
    done = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=timeout, env=_env())
    if check:
        assert done.returncode == 0, f"podman {' '.join(args)} -> {done.returncode}:\n{done.stderr}"
    return done


def unique_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"
