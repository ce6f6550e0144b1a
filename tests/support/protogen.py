"""Regenerate the committed protobuf/gRPC modules from raft.proto (needs the grpcio-tools dev dependency,
which is why this lives with the tests and not in the installed package).

.venv/bin/python -m tests.support.protogen
"""

from __future__ import annotations

import sys
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parents[2] / "consensus"  # the folder holding streamraft_consensus/
PROTO = "streamraft_consensus/transport/raft.proto"
GENERATED = ("raft_pb2.py", "raft_pb2.pyi", "raft_pb2_grpc.py")


def generate(out_dir: Path) -> list[Path]:
    """Write the generated files under ``out_dir`` (mirroring the package path) and return their paths."""
    # Imported here: importing this module (for GENERATED) must not need grpcio-tools.
    from grpc_tools import protoc  # type: ignore[import-untyped]  # noqa: PLC0415

    out_dir.mkdir(parents=True, exist_ok=True)
    args = [
        "protoc",
        f"-I{PACKAGE_ROOT}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        str(PACKAGE_ROOT / PROTO),
    ]
    rc = protoc.main(args)
    if rc != 0:
        raise RuntimeError(f"protoc failed with exit code {rc}")
    return [out_dir / "streamraft_consensus" / "transport" / name for name in GENERATED]


def main() -> None:
    for path in generate(PACKAGE_ROOT):
        sys.stderr.write(f"wrote {path}\n")


if __name__ == "__main__":
    main()
