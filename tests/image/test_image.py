"""The container image, built from ./Dockerfile by .ci/prepare-image and run with podman the way the
chart runs it: as uid 10001, read-only root filesystem, data only on a volume.

A single broker runs in the container on the host's network; a real Kafka client (confluent-kafka) on
the host produces and consumes through it; SIGTERM (podman stop) stops it cleanly and a new container
on the same volume serves the same records.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from tests.image.podman import BROKER_UID, podman, prepare_image, unique_name
from tests.support.ports import free_port
from tests.support.wire import api_versions_ok

DATA_MOUNT = "/var/lib/streamraft"  # the operator's DATA_DIR and the image's WORKDIR
START_TIMEOUT_S = 30.0
# A graceful stop (leaderships, segment flush) takes well under this; podman stop SIGKILLs after it.
STOP_GRACE_S = 15
RECORDS = 200


@pytest.fixture(scope="module")
def image() -> str:
    return prepare_image()


@pytest.fixture
def volume() -> Iterator[str]:
    name = unique_name("streamraft-test-data")
    podman("volume", "create", name)
    yield name
    podman("volume", "rm", "-f", name, check=False)


class Container:
    """One `streamraft broker` container on the host network, stopped and removed on exit."""

    def __init__(self, image: str, volume: str, port: int) -> None:
        self.name = unique_name("streamraft-test-broker")
        self.port = port
        podman(
            "run", "--detach", "--name", self.name,
            "--read-only", "--user", str(BROKER_UID), "--network=host",
            "--volume", f"{volume}:{DATA_MOUNT}", "--tmpfs", "/tmp",
            image,
            "broker", "--node-id", "0", "--data-dir", f"{DATA_MOUNT}/data",
            "--listen", f"127.0.0.1:{port}", "--metrics-listen", "off",
        )  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT_S
        while not api_versions_ok("127.0.0.1", port, timeout=1.0):
            running = podman("inspect", "--format", "{{.State.Running}}", self.name).stdout.strip()
            assert running == "true", f"broker container exited during start:\n{self.logs()}"
            assert time.monotonic() < deadline, f"broker not ready in {START_TIMEOUT_S}s:\n{self.logs()}"
            time.sleep(0.1)  # polling a real ApiVersions round trip, bounded by the deadline

    def logs(self) -> str:
        done = podman("logs", self.name, check=False)
        return (done.stdout + done.stderr)[-4000:]

    def exec(self, *cmd: str, user: str | None = None) -> tuple[int, str]:
        as_user = ["--user", user] if user is not None else []
        done = podman("exec", *as_user, self.name, *cmd, check=False)
        return done.returncode, done.stdout + done.stderr

    def stop(self) -> tuple[float, int]:
        """podman stop (SIGTERM, SIGKILL after the grace period): seconds taken and the exit code."""
        started = time.monotonic()
        podman("stop", "--time", str(STOP_GRACE_S), self.name, timeout=STOP_GRACE_S + 30)
        took = time.monotonic() - started
        code = int(podman("inspect", "--format", "{{.State.ExitCode}}", self.name).stdout.strip())
        return took, code

    def remove(self) -> None:
        podman("rm", "--force", "--time", "0", self.name, check=False)


def _produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True})
    for v in values:
        producer.produce(topic, value=v)
    assert producer.flush(20) == 0, "records left unacknowledged"


def _consume_all(bootstrap: str, topic: str, count: int, timeout: float = 20.0) -> list[bytes]:
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": unique_name("g"), "enable.auto.commit": False}
    )
    consumer.assign([TopicPartition(topic, 0, 0)])
    got: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while len(got) < count and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=count, timeout=1.0):
                if msg.error() is not None:
                    raise KafkaException(msg.error())
                got.append(bytes(msg.value() or b""))
    finally:
        consumer.close()
    return got


def test_both_entrypoints_start_as_uid_10001_on_a_read_only_root(image: str) -> None:
    broker = podman("run", "--rm", "--read-only", "--user", str(BROKER_UID), image, "--help")
    assert "broker" in broker.stdout, broker.stdout
    operator = podman(
        "run", "--rm", "--read-only", "--user", str(BROKER_UID),
        "--entrypoint", "streamraft-operator", image, "--help",
    )  # fmt: skip
    assert "--namespace" in operator.stdout, operator.stdout
    # The image's defaults are the ones the chart relies on, without any --user flag.
    config = podman("image", "inspect", "--format", "{{.Config.User}} {{.Config.WorkingDir}}", image)
    assert config.stdout.split() == [f"{BROKER_UID}:{BROKER_UID}", DATA_MOUNT]


def test_broker_in_the_image_serves_kafka_clients_and_survives_a_graceful_restart(
    image: str, volume: str
) -> None:
    port = free_port()
    bootstrap = f"127.0.0.1:{port}"
    topic = "image-smoke"
    values = [f"record-{i}".encode() for i in range(RECORDS)]

    first = Container(image, volume, port)
    try:
        # Every process in the container runs as 10001 (tini and the broker), and / is read-only
        # even for root: the only writable places are the volume and the tmpfs.
        top = podman("top", first.name, "huser", "args").stdout.splitlines()[1:]
        assert top and all(line.split()[0] == str(BROKER_UID) for line in top), top
        code, out = first.exec("touch", "/probe", user="0")
        assert code != 0 and "Read-only file system" in out, (code, out)
        code, out = first.exec("touch", f"{DATA_MOUNT}/probe")
        assert code == 0, out

        admin = AdminClient({"bootstrap.servers": bootstrap})
        admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(20)
        _produce(bootstrap, topic, values)
        assert _consume_all(bootstrap, topic, RECORDS) == values

        took, exit_code = first.stop()
        assert exit_code == 0, f"broker did not exit cleanly on SIGTERM ({exit_code}):\n{first.logs()}"
        assert took < STOP_GRACE_S, f"stop took {took:.1f}s"
        assert "shutting down on signal" in first.logs()
    finally:
        first.remove()

    second = Container(image, volume, port)
    try:
        assert _consume_all(bootstrap, topic, RECORDS) == values
        _produce(bootstrap, topic, [b"after-restart"])
        assert _consume_all(bootstrap, topic, RECORDS + 1) == [*values, b"after-restart"]
    finally:
        second.stop()
        second.remove()
