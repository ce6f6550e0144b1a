"""The package installed from its wheel WITHOUT extras runs: both console scripts answer --help and every
module of the three packages imports. Catches a runtime import that only the dev extras happen to provide
(records/codec.py once imported cramjam, lz4 and zstandard that no runtime dependency pulled in)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("streamraft_consensus", "streamraft_broker", "streamraft_operator")
_IMPORT_ALL = textwrap.dedent(
    """
    import importlib, pkgutil, sys
    failed, count = [], 0
    for top in sys.argv[1:]:
        package = importlib.import_module(top)
        for info in pkgutil.walk_packages(package.__path__, top + "."):
            count += 1
            try:
                importlib.import_module(info.name)
            except Exception as exc:
                failed.append(f"{info.name}: {exc!r}")
    print(count)
    print("\\n".join(failed))
    sys.exit(1 if failed else 0)
    """
)


def _run(*cmd: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [str(c) for c in cmd], capture_output=True, text=True, timeout=600, cwd=cwd, check=False
    )
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def test_wheel_without_extras_runs_its_scripts_and_imports_every_module(tmp_path: Path) -> None:
    # Built from a copy: setuptools writes build/ and *.egg-info beside the sources it builds.
    source = tmp_path / "source"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "*.pyc")
    for folder in ("consensus", "broker", "operator"):
        shutil.copytree(ROOT / folder, source / folder, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    wheels = tmp_path / "wheels"
    # The test environment's own setuptools builds it (no build isolation: nothing to download).
    _run(
        sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", wheels, source
    )
    (wheel,) = wheels.glob("streamraft-*.whl")
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    # This environment's pip installs into the fresh one: only the wheel's runtime dependencies go in.
    _run(sys.executable, "-m", "pip", "--python", python, "install", "-q", wheel)
    installed = _run(
        python, "-c", "import importlib.metadata as m; print(sorted(d.name for d in m.distributions()))"
    )
    for dev_only in ("pytest", "hypothesis", "kafka-python", "aiokafka", "python-snappy", "mypy"):
        assert f"'{dev_only}'" not in installed.stdout, f"{dev_only} is in the runtime install"
    assert "usage: streamraft" in _run(venv / "bin" / "streamraft", "--help").stdout
    assert "usage: streamraft-operator" in _run(venv / "bin" / "streamraft-operator", "--help").stdout
    # Run from an empty folder so the checkout's sources cannot be imported instead of the installed ones.
    empty = tmp_path / "empty"
    empty.mkdir()
    walked = _run(python, "-c", _IMPORT_ALL, *PACKAGES, cwd=empty)
    assert int(walked.stdout.split()[0]) > 100, walked.stdout
