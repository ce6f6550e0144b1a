"""Fetch Apache Kafka's jars from Maven Central into ~/.cache/streamraft/kafka-<version>/.

Run as ``python -m tests.javakafka.fetch``. Idempotent: a stamp file written after a complete copy
short-circuits later runs, so CI pays for the download once per machine.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

# Newest 4.x complete on Maven Central when pinned (4.4.0 lacks kafka-tools there); the cache key follows.
KAFKA_VERSION = "4.3.1"
SCALA_BINARY = "2.13"
LOG4J_VERSION = "2.24.3"
SLF4J_VERSION = "2.0.16"  # what log4j-slf4j2-impl 2.24.3 is built against

# The broker, its KRaft pieces, the command-line tools, Kafka Streams (the ecosystem test's topology) and
# Kafka Connect's runtime with its file connectors (the Connect ecosystem test); Maven resolves the rest
# transitively. Changing this list changes ``jars_key()``, which refreshes the cache.
_KAFKA_ARTIFACTS = (
    f"kafka_{SCALA_BINARY}",
    "kafka-clients",
    "kafka-tools",
    "kafka-server",
    "kafka-server-common",
    "kafka-storage",
    "kafka-metadata",
    "kafka-raft",
    "kafka-group-coordinator",
    "kafka-transaction-coordinator",
    "kafka-streams",
    "connect-runtime",
    "connect-file",
)

_STAMP = "complete.stamp"
_MVN_TIMEOUT_S = 1500


class FetchError(RuntimeError):
    """The jars could not be fetched; the message says why."""


def cache_root() -> Path:
    override = os.environ.get("STREAMRAFT_CACHE")
    base = Path(override) if override else Path.home() / ".cache" / "streamraft"
    return base


def kafka_home(version: str = KAFKA_VERSION) -> Path:
    return cache_root() / f"kafka-{version}"


def libs_dir(version: str = KAFKA_VERSION) -> Path:
    return kafka_home(version) / "libs"


def jars_key(version: str = KAFKA_VERSION) -> str:
    """A digest of what the pom asks for: a cache filled from another artifact list is stale."""
    return hashlib.sha256(_pom(version).encode()).hexdigest()[:16]


def _stamp_text(version: str, jars: int) -> str:
    return f"{version} {jars_key(version)} {jars} jars\n"


def is_fetched(version: str = KAFKA_VERSION) -> bool:
    """True when the cache holds a complete copy fetched from the current artifact list.

    The stamp names the list's digest; an older cache (another list, or a stamp from before the digest
    was recorded) counts as missing, so ``fetch()`` refreshes it in place.
    """
    try:
        words = (kafka_home(version) / _STAMP).read_text().split()
    except OSError:
        return False
    return words[:2] == [version, jars_key(version)]


def classpath(version: str = KAFKA_VERSION) -> str:
    """The classpath for ``java -cp``: every fetched jar plus the log4j2 config directory."""
    if not is_fetched(version):
        stale = (kafka_home(version) / _STAMP).is_file()
        what = "were fetched from another artifact list into" if stale else "are not in"
        raise FetchError(
            f"Apache Kafka {version} jars {what} {kafka_home(version)}; run "
            "`bash .ci/prepare-kafka` (or `python -m tests.javakafka.fetch`) first"
        )
    jars = sorted(str(p) for p in libs_dir(version).glob("*.jar"))
    return os.pathsep.join([str(kafka_home(version) / "config"), *jars])


def _pom(version: str) -> str:
    deps = "\n".join(
        f"    <dependency><groupId>org.apache.kafka</groupId><artifactId>{a}</artifactId>"
        f"<version>{version}</version></dependency>"
        for a in _KAFKA_ARTIFACTS
    )
    # Kafka 4 logs through slf4j; log4j2 is what its own distribution ships as the backend.
    log4j = "\n".join(
        f"    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>{a}</artifactId>"
        f"<version>{LOG4J_VERSION}</version></dependency>"
        for a in ("log4j-api", "log4j-core", "log4j-slf4j2-impl")
    )
    # kafka-clients asks for slf4j-api 1.7 at runtime, which Maven would pick; log4j-slf4j2-impl binds
    # only slf4j 2, and with 1.7 every Java process here logged nothing at all (slf4j's NOP fallback).
    slf4j = (
        "    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-api</artifactId>"
        f"<version>{SLF4J_VERSION}</version></dependency>"
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>io.streamraft.tests</groupId>
  <artifactId>kafka-jars</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
{deps}
{log4j}
{slf4j}
  </dependencies>
</project>
"""


# Quiet by default: brokers log WARN and above to stderr, which the harness sends to a file.
_LOG4J2_XML = """<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="WARN">
  <Appenders>
    <Console name="stderr" target="SYSTEM_ERR">
      <PatternLayout pattern="[%d] %p %c{1} %m%n"/>
    </Console>
  </Appenders>
  <Loggers>
    <Root level="WARN"><AppenderRef ref="stderr"/></Root>
  </Loggers>
</Configuration>
"""


def _progress(msg: str) -> None:
    print(f"[prepare-kafka] {msg}", file=sys.stderr, flush=True)


def fetch(version: str = KAFKA_VERSION) -> Path:
    """Download the jars unless already present; returns the kafka home directory."""
    home = kafka_home(version)
    if is_fetched(version):
        _progress(f"Apache Kafka {version} already in {home}")
        return home
    for tool in ("mvn", "java"):
        if shutil.which(tool) is None:
            raise FetchError(f"`{tool}` is not on PATH; install a JDK 17+ and Maven first")
    home.mkdir(parents=True, exist_ok=True)
    (home / "pom.xml").write_text(_pom(version))
    (home / "config").mkdir(exist_ok=True)
    (home / "config" / "log4j2.xml").write_text(_LOG4J2_XML)
    staging = home / "libs.partial"
    if staging.exists():
        shutil.rmtree(staging)
    _progress(f"fetching Apache Kafka {version} and its dependencies from Maven Central into {home}")
    started = time.monotonic()
    cmd = [
        "mvn",
        "-B",
        "--no-transfer-progress",
        "-f",
        str(home / "pom.xml"),
        "dependency:copy-dependencies",
        f"-DoutputDirectory={staging}",
        "-DincludeScope=runtime",
    ]
    try:
        proc = subprocess.run(
            cmd, cwd=home, capture_output=True, text=True, timeout=_MVN_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise FetchError(f"mvn did not finish within {_MVN_TIMEOUT_S}s fetching Kafka {version}") from exc
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.splitlines()[-25:])
        unreachable = any(
            s in proc.stdout
            for s in ("Could not transfer", "UnknownHost", "Connection refused", "connect timed out")
        )
        reason = "Maven Central could not be reached" if unreachable else "mvn failed"
        raise FetchError(f"{reason} while fetching Apache Kafka {version}:\n{tail}")
    jars = list(staging.glob("*.jar"))
    if not any(j.name.startswith(f"kafka_{SCALA_BINARY}-") for j in jars):
        raise FetchError(f"mvn succeeded but {staging} holds no kafka_{SCALA_BINARY} jar")
    final = libs_dir(version)
    # Swap by renames: a JVM started meanwhile from the old list still finds a libs/ directory.
    old = home / "libs.old"
    if old.exists():
        shutil.rmtree(old)
    if final.exists():
        final.rename(old)
    staging.rename(final)
    if old.exists():
        shutil.rmtree(old)
    (home / _STAMP).write_text(_stamp_text(version, len(jars)))
    _progress(f"fetched {len(jars)} jars in {time.monotonic() - started:.0f}s")
    return home


def main() -> int:
    try:
        fetch()
    except FetchError as exc:
        print(f"[prepare-kafka] ERROR: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
