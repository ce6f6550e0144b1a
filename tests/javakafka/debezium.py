"""Fetch Debezium's PostgreSQL connector from Maven Central into ~/.cache/streamraft/debezium-postgres-<v>/,
laid out as a Kafka Connect plugin directory (``plugin.path``): the connector, its Debezium modules and the
PostgreSQL JDBC driver, without the Kafka and slf4j jars the worker itself provides.

Run as ``python -m tests.javakafka.debezium``. Idempotent: a stamp naming the pom's digest short-circuits
later runs; a cache filled from another pom counts as missing and is fetched again.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import time
from pathlib import Path

from tests.javakafka.fetch import FetchError, cache_root

# The release whose modules resolve together on Maven Central (3.6.1 is built against Kafka 4.3.0).
DEBEZIUM_VERSION = "3.6.1.Final"
_STAMP = "complete.stamp"
_MVN_TIMEOUT_S = 900


def plugin_home(version: str = DEBEZIUM_VERSION) -> Path:
    return cache_root() / f"debezium-postgres-{version}"


def plugin_path(version: str = DEBEZIUM_VERSION) -> Path:
    """The directory to name in the worker's ``plugin.path``; the connector's jars are one level below."""
    return plugin_home(version) / "plugins"


def _pom(version: str) -> str:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>io.streamraft.tests</groupId>
  <artifactId>debezium-postgres</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>io.debezium</groupId><artifactId>debezium-connector-postgres</artifactId>
      <version>{version}</version></dependency>
  </dependencies>
</project>
"""


def _key(version: str) -> str:
    return hashlib.sha256(_pom(version).encode()).hexdigest()[:16]


def is_fetched(version: str = DEBEZIUM_VERSION) -> bool:
    try:
        words = (plugin_home(version) / _STAMP).read_text().split()
    except OSError:
        return False
    return words[:2] == [version, _key(version)]


def fetch(version: str = DEBEZIUM_VERSION) -> Path:
    """Download the plugin unless present; returns the ``plugin.path`` directory."""
    home = plugin_home(version)
    if is_fetched(version):
        return plugin_path(version)
    if shutil.which("mvn") is None:
        raise FetchError("`mvn` is not on PATH; install Maven (bash .ci/prepare-kafka does) first")
    home.mkdir(parents=True, exist_ok=True)
    (home / "pom.xml").write_text(_pom(version))
    staging = home / "plugins.partial"
    if staging.exists():
        shutil.rmtree(staging)
    connector = staging / "debezium-connector-postgres"
    started = time.monotonic()
    cmd = [
        "mvn", "-B", "--no-transfer-progress", "-f", str(home / "pom.xml"),
        "dependency:copy-dependencies", f"-DoutputDirectory={connector}", "-DincludeScope=runtime",
        # The worker's own copies: a plugin must not bring a second Kafka API or logging facade.
        "-DexcludeGroupIds=org.apache.kafka,org.slf4j",
    ]  # fmt: skip
    try:
        proc = subprocess.run(
            cmd, cwd=home, capture_output=True, text=True, timeout=_MVN_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise FetchError(f"mvn did not finish within {_MVN_TIMEOUT_S}s fetching Debezium {version}") from exc
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.splitlines()[-25:])
        raise FetchError(f"mvn failed fetching Debezium {version}:\n{tail}")
    if not (connector / f"debezium-connector-postgres-{version}.jar").is_file():
        raise FetchError(f"mvn succeeded but {connector} holds no debezium-connector-postgres jar")
    final = plugin_path(version)
    if final.exists():
        shutil.rmtree(final)
    staging.rename(final)
    jars = len(list((final / "debezium-connector-postgres").glob("*.jar")))
    (home / _STAMP).write_text(f"{version} {_key(version)} {jars} jars\n")
    print(f"[debezium] fetched {jars} jars in {time.monotonic() - started:.0f}s", file=sys.stderr)
    return final


def main() -> int:
    try:
        print(fetch())
    except FetchError as exc:
        print(f"[debezium] ERROR: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
