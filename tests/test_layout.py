"""Repository-level guarantees: the package layout does not shadow the standard library, and the
layering contracts (import-linter) hold."""

import ast
import importlib
import subprocess
import sys
import sysconfig
import tomllib
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


CORE_ALLOWED_IMPORTS = {
    "__future__",
    "typing",
    "dataclasses",
    "enum",
    "collections",
    "collections.abc",
    "random",  # only for the type of the Random the caller injects (checked below)
}


def test_raft_core_imports_no_io_clock_or_randomness() -> None:
    """The core decides, the shell does I/O: core/ may import only pure standard modules and itself, and
    uses ``random`` only as the type of the generator its caller injects (never the global one)."""
    for path in sorted((ROOT / "consensus" / "streamraft_consensus" / "core").glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                names = []
            for name in names:
                assert name in CORE_ALLOWED_IMPORTS or name.startswith("streamraft_consensus.core"), (
                    f"{path.name} imports {name}: the Raft core must stay free of I/O, clocks and randomness"
                )
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "random"
            ):
                assert node.attr == "Random", f"{path.name} calls random.{node.attr}: use the injected Random"


def test_test_modules_import_helpers_only_from_support() -> None:
    """Shared helpers live in tests/support (or a tool's own package), never in another test module."""
    for path in sorted((ROOT / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                last = node.module.rsplit(".", 1)[-1]
                assert not last.startswith("test_"), f"{path.relative_to(ROOT)} imports from {node.module}"


def test_examples_are_type_checked_but_not_shipped() -> None:
    """examples/ is importable from the repository (its tests import it) and checked by mypy strict in CI, but
    no wheel carries it: setuptools looks for packages only in the component folders."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert config["tool"]["setuptools"]["packages"]["find"]["where"] == ["consensus", "broker", "operator"]
    relaxed = [o["module"] for o in config["tool"]["mypy"]["overrides"]]
    assert not any("examples" in str(m) for m in relaxed), relaxed
    mypy_step = next(
        line for line in (ROOT / ".ci" / "test").read_text().splitlines() if "mypy (strict)" in line
    )
    assert mypy_step.split()[-1] == "examples" or " examples " in mypy_step, mypy_step
    mod = importlib.import_module("examples.event_sourcing")
    assert Path(mod.__file__ or "").resolve().parent == ROOT / "examples" / "event_sourcing"


def test_examples_are_plain_kafka_clients() -> None:
    """An example talks to the cluster only over the Kafka protocol: it imports none of our packages (so it
    runs unchanged against Apache Kafka) and nothing from the tests."""
    ours = ("streamraft_consensus", "streamraft_broker", "streamraft_operator", "tests")
    for path in sorted((ROOT / "examples").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                names = []
            for name in names:
                assert name.split(".")[0] not in ours, f"{path.relative_to(ROOT)} imports {name}"
