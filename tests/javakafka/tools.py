"""Run Apache Kafka's Java command-line tools (and our small Java test clients) with ``java -cp``."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from tests.javakafka.fetch import KAFKA_VERSION, cache_root, classpath, jars_key

# Kafka 4.x main classes; the shell scripts of the binary distribution wrap exactly these.
TOPIC_COMMAND = "org.apache.kafka.tools.TopicCommand"
CONSOLE_PRODUCER = "org.apache.kafka.tools.ConsoleProducer"
CONSOLE_CONSUMER = "org.apache.kafka.tools.consumer.ConsoleConsumer"
CONSUMER_GROUPS = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand"
DELETE_RECORDS = "org.apache.kafka.tools.DeleteRecordsCommand"
LOG_DIRS = "org.apache.kafka.tools.LogDirsCommand"
LEADER_ELECTION = "org.apache.kafka.tools.LeaderElectionCommand"
PRODUCER_PERF = "org.apache.kafka.tools.ProducerPerformance"
CONSUMER_PERF = "org.apache.kafka.tools.ConsumerPerformance"
END_TO_END_LATENCY = "org.apache.kafka.tools.EndToEndLatency"
METADATA_QUORUM = "org.apache.kafka.tools.MetadataQuorumCommand"
STORAGE_TOOL = "kafka.tools.StorageTool"
CONFIG_COMMAND = "kafka.admin.ConfigCommand"
"""kafka-configs.sh: topic, broker and client-quota (users, clients, ips) configs."""
KAFKA_MAIN = "kafka.Kafka"

# Tools are short-lived clients: a small heap and no JIT tiers beyond C1 start them faster.
TOOL_JVM_OPTS = ("-Xmx512m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true")

_JAVA_SRC = Path(__file__).resolve().parent.parent / "compat" / "java"


class ToolError(RuntimeError):
    """A Java tool exited non-zero or timed out; the message carries its output tail."""


def java_cmd(
    main_class: str, args: Sequence[str], extra_cp: Sequence[str] = (), fast: bool = True
) -> list[str]:
    java = shutil.which("java")
    if java is None:
        raise ToolError("`java` is not on PATH; a JDK 17+ is needed for the Kafka tools")
    cp = classpath()
    if extra_cp:
        cp = ":".join([*extra_cp, cp])
    opts = list(TOOL_JVM_OPTS) if fast else ["-Xmx512m", "-Djava.awt.headless=true"]
    return [java, *opts, "-cp", cp, main_class, *args]


def run_tool(
    main_class: str,
    args: Sequence[str],
    *,
    timeout_s: float = 120.0,
    stdin: str | None = None,
    check: bool = True,
    extra_cp: Sequence[str] = (),
    fast: bool = True,
) -> subprocess.CompletedProcess[str]:
    cmd = java_cmd(main_class, args, extra_cp, fast)
    try:
        proc = subprocess.run(
            cmd, input=stdin, capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        raise ToolError(
            f"{main_class.rsplit('.', 1)[-1]} {' '.join(args)} timed out after {timeout_s}s\n"
            f"stdout tail:\n{out[-2000:]}\nstderr tail:\n{err[-2000:]}"
        ) from exc
    if check and proc.returncode != 0:
        raise ToolError(
            f"{main_class.rsplit('.', 1)[-1]} {' '.join(args)} exited {proc.returncode}\n"
            f"stdout tail:\n{proc.stdout[-2000:]}\nstderr tail:\n{proc.stderr[-3000:]}"
        )
    return proc


def compiled_test_clients() -> Path:
    """Compile tests/compat/java/*.java against kafka-clients into the cache, keyed by source hash."""
    sources = sorted(_JAVA_SRC.glob("*.java"))
    assert sources, f"no Java sources in {_JAVA_SRC}"
    # Keyed by the jar set too: classes compiled against another jar list are stale.
    digest = hashlib.sha256(jars_key().encode())
    for src in sources:
        digest.update(src.name.encode())
        digest.update(src.read_bytes())
    out = cache_root() / f"compat-classes-{KAFKA_VERSION}-{digest.hexdigest()[:16]}"
    stamp = out / "compiled.stamp"
    if stamp.is_file():
        return out
    javac = shutil.which("javac")
    if javac is None:
        raise ToolError("`javac` is not on PATH; a JDK 17+ is needed to compile the Java test clients")
    out.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [javac, "-d", str(out), "-cp", classpath(), *map(str, sources)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if proc.returncode != 0:
        raise ToolError(f"javac failed on {_JAVA_SRC}:\n{proc.stderr[-3000:]}")
    stamp.write_text("ok\n")
    return out
