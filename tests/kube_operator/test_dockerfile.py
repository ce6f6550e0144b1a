"""The Dockerfile cannot be built here (no container engine); check what can be checked statically."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _instructions() -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            op, _, rest = line.partition(" ")
            out.append((op.upper(), rest.strip()))
    return out


def test_runtime_stage_is_slim_non_root_with_streamraft_entrypoint() -> None:
    ins = _instructions()
    froms = [rest for op, rest in ins if op == "FROM"]
    assert froms[-1] == "python:3.11-slim"
    runtime = ins[max(i for i, (op, _) in enumerate(ins) if op == "FROM") :]
    users = [rest for op, rest in runtime if op == "USER"]
    assert users and not users[-1].startswith(("0", "root"))
    assert ("ENTRYPOINT", '["streamraft"]') in runtime


def test_copied_paths_exist_and_are_not_docker_ignored() -> None:
    ignore = (ROOT / ".dockerignore").read_text()
    for op, rest in _instructions():
        if op == "COPY" and not rest.startswith("--from"):
            src = rest.split()[0]
            assert (ROOT / src).exists(), src
            assert f"!{src}" in ignore or any(f"!{src}/" in line for line in ignore.splitlines()), src
