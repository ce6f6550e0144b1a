"""Debian's kcat (librdkafka CLI) against a real broker: metadata, keyed produce, consume with headers."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from tests.support.broker_process import BrokerProcess
from tests.support.fixtures import module_broker

TIMEOUT_S = 60


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    yield from module_broker(tmp_path_factory, extra_args=["--auto-create-topics", "true"])


def _kcat(*args: str, stdin: str | None = None) -> str:
    exe = shutil.which("kcat")
    assert exe is not None, "kcat is not installed (apt-get install -y kcat; .ci/bootstrap installs it)"
    proc = subprocess.run(
        [exe, *args], input=stdin, capture_output=True, text=True, timeout=TIMEOUT_S, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_kcat_produce_consume_and_metadata(broker: BrokerProcess) -> None:
    bs = broker.bootstrap
    lines = "".join(f"key{i % 3}:value-{i}\n" for i in range(50))
    _kcat("-b", bs, "-P", "-t", "kc", "-K", ":", "-H", "src=kcat", "-X", "acks=all", stdin=lines)
    out = _kcat("-b", bs, "-C", "-t", "kc", "-o", "beginning", "-e", "-f", "%k|%s|%h|%o\n")
    rows = [line.split("|") for line in out.splitlines()]
    assert sorted(r[1] for r in rows) == sorted(f"value-{i}" for i in range(50))
    assert all(r[0] == f"key{int(r[1].split('-')[1]) % 3}" for r in rows)
    assert all(r[2] == "src=kcat" for r in rows)
    meta = json.loads(_kcat("-b", bs, "-L", "-J", "-t", "kc"))
    assert meta["brokers"][0]["name"].endswith(f":{broker.port}")
    (topic,) = [t for t in meta["topics"] if t["topic"] == "kc"]
    assert len(topic["partitions"]) == 1
    # The query mode asks ListOffsets by timestamp: far in the past gives the first offset.
    offsets = _kcat("-b", bs, "-Q", "-t", "kc:0:1")
    assert "kc [0] offset 0" in offsets
