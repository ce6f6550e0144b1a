"""Repository-level guarantees: the package layout does not shadow the standard library, and the
layering contracts (import-linter) hold."""

import importlib
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_operator_is_the_standard_library_module() -> None:
    # A bare `operator` package anywhere on sys.path would shadow the stdlib module.
    mod = importlib.import_module("operator")
    stdlib = Path(sysconfig.get_paths()["stdlib"]).resolve()
    assert Path(mod.__file__ or "").resolve().parent == stdlib
    assert callable(mod.itemgetter)


def test_packages_live_in_their_component_folders() -> None:
    for folder, pkg in [
        ("consensus", "streamraft_consensus"),
        ("broker", "streamraft_broker"),
        ("operator", "streamraft_operator"),
    ]:
        mod = importlib.import_module(pkg)
        assert Path(mod.__file__ or "").resolve().parent == ROOT / folder / pkg


def test_layering_contracts_hold() -> None:
    lint = Path(sys.executable).parent / "lint-imports"
    out = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
