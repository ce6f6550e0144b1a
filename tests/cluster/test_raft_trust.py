"""Inter-broker trust on real broker processes: forged Raft traffic on a plaintext cluster changes nothing;
over mutual TLS the cluster works and a peer is who its certificate says.

Regressions (measured on the old code): a forged PROPOSE on the Raft port created topic
``../../victim/x`` whose segments were written outside the data directory; one forged heartbeat raised
every replica's term by 1,000."""

from __future__ import annotations

import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

import grpc
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from streamraft_broker.controller.commands import CreateTopic, encode
from streamraft_broker.security import pki

from tests.support.launcher import Cluster, create_topic, wait_controller
from tests.support.raft_peer import envelope, raft_terms, send_stream

TRAVERSAL = "../../victim/x"
"""From ``<base>/b<n>/logs``, the partition directory ``<name>-0`` would be ``<base>/victim/x-0``."""
OUTSIDER = 99
HUGE = 1_000


def _wait(cond: Callable[[], bool], what: str, cluster: Cluster, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"{what} not seen within {timeout}s\n{cluster.logs()}"
        time.sleep(0.05)  # polling broker logs against a deadline


def _log(cluster: Cluster, n: int) -> str:
    return cluster.brokers[n].log_path.read_text(errors="replace")


def _logged(cluster: Cluster, n: int, text: str) -> Callable[[], bool]:
    return lambda: text in _log(cluster, n)


def _raft(cluster: Cluster, n: int) -> str:
    return f"127.0.0.1:{cluster.raft_ports[n]}"


def _produce_consume_acks_all(cluster: Cluster, topic: str, count: int = 20) -> None:
    create_topic(cluster, topic, 1, 3)
    producer = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all", "enable.idempotence": True})
    errors: list[object] = []
    for i in range(count):
        producer.produce(topic, b"v%d" % i, on_delivery=lambda err, _m: errors.append(err) if err else None)
    assert producer.flush(30) == 0 and not errors, errors
    consumer = Consumer(
        {"bootstrap.servers": cluster.bootstrap, "group.id": "trust", "enable.auto.commit": False}
    )
    consumer.assign([TopicPartition(topic, 0, 0)])
    got: list[bytes] = []
    deadline = time.monotonic() + 30
    while len(got) < count and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is not None and msg.error() is None:
            got.append(msg.value())
    consumer.close()
    assert got == [b"v%d" % i for i in range(count)]


def _metric(cluster: Cluster, n: int, name: str) -> float:
    text = urllib.request.urlopen(cluster.brokers[n].metrics_url, timeout=5).read().decode()
    values = [float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " ")]
    return values[0] if values else -1.0


def test_forged_raft_traffic_on_a_plaintext_cluster_changes_nothing(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path, 3)
    cluster.brokers[1].metrics = True
    with cluster:
        wait_controller(cluster)
        create_topic(cluster, "before", 1, 3)
        forged = encode(CreateTopic(TRAVERSAL, uuid.uuid4(), ((1, 2, 3),)))
        before = {n: raft_terms(tmp_path / f"b{n}" / "raft") for n in cluster.brokers}
        # 1. A node id no broker has: refused before any of its frames is delivered.
        for n in cluster.brokers:
            groups = sorted(before[n])
            frame = envelope(
                OUTSIDER,
                n,
                proposals=[(1, forged)],
                heartbeats=[(g, before[n][g] + HUGE) for g in groups],
                appends=[(g, before[n][g] + HUGE) for g in groups],
            )
            send_stream(_raft(cluster, n), [frame])
        for n in cluster.brokers:
            _wait(_logged(cluster, n, "reason=unknown_peer claimed=99"), "refusal", cluster)
        # 2. A member's id (plaintext cannot tell a forger from it): the entry may reach the controller log,
        # and every broker refuses it when applying it.
        for n in cluster.brokers:
            claimed = n % 3 + 1
            send_stream(_raft(cluster, n), [envelope(claimed, n, proposals=[(1, forged)])])
        for n in cluster.brokers:
            _wait(_logged(cluster, n, "controller_entry_rejected"), "rejection", cluster)
            assert "topic name '../../victim/x' may only hold" in _log(cluster, n)
        assert not (tmp_path / "victim").exists()
        topics = AdminClient({"bootstrap.servers": cluster.bootstrap}).list_topics(timeout=10).topics
        assert TRAVERSAL not in topics and "before" in topics
        after = {n: raft_terms(tmp_path / f"b{n}" / "raft") for n in cluster.brokers}
        for n in cluster.brokers:
            for group, term in before[n].items():
                assert after[n][group] < term + HUGE, (n, group, term, after[n][group])
        _produce_consume_acks_all(cluster, "after")
        # Sampled once a second: polled until it shows the refused stream and the rejected command.
        _wait(lambda: _metric(cluster, 1, "streamraft_raft_refused_streams_total") >= 1, "metric", cluster)
        _wait(
            lambda: _metric(cluster, 1, "streamraft_controller_commands_rejected_total") >= 1,
            "metric",
            cluster,
        )


def _tls_cluster(tmp_path: Path) -> tuple[Cluster, dict[int, pki.CertFiles], pki.CertFiles]:
    ca = pki.create_ca(tmp_path / "ca")
    certs = {n: pki.issue_broker(ca, tmp_path / "certs", n) for n in (1, 2, 3)}
    cluster = Cluster(tmp_path, 3)
    for n, broker in cluster.brokers.items():
        files = certs[n]
        broker.extra_args += [
            "--raft-tls-cert",
            str(files.cert),
            "--raft-tls-key",
            str(files.key),
            "--raft-tls-ca",
            str(files.ca),
        ]
    return cluster, certs, ca


def _creds(files: pki.CertFiles | None, ca: Path) -> grpc.ChannelCredentials:
    if files is None:
        return grpc.ssl_channel_credentials(root_certificates=ca.read_bytes())
    return grpc.ssl_channel_credentials(
        root_certificates=ca.read_bytes(),
        private_key=files.key.read_bytes(),
        certificate_chain=files.cert.read_bytes(),
    )


def test_mutual_tls_cluster_works_and_binds_node_ids_to_certificates(tmp_path: Path) -> None:
    cluster, certs, ca = _tls_cluster(tmp_path)
    other = pki.create_ca(tmp_path / "other-ca", common_name="other")
    foreign = pki.issue_broker(other, tmp_path / "foreign", 2)
    with cluster:
        wait_controller(cluster)
        _produce_consume_acks_all(cluster, "tls")
        for n in cluster.brokers:
            assert "tls=True" in _log(cluster, n)
        target = _raft(cluster, 1)
        hello = envelope(2, 1, heartbeats=[(1, HUGE)])
        # No certificate, or plaintext: the handshake fails, nothing is delivered.
        assert send_stream(target, [hello], None) != grpc.StatusCode.OK
        assert send_stream(target, [hello], _creds(None, ca.cert)) != grpc.StatusCode.OK
        # A broker certificate for node 2, but from another CA.
        assert send_stream(target, [hello], _creds(foreign, ca.cert)) != grpc.StatusCode.OK
        # Broker 2's genuine certificate, claiming to be node 3.
        send_stream(target, [envelope(3, 1, heartbeats=[(1, HUGE)])], _creds(certs[2], ca.cert))
        _wait(
            _logged(cluster, 1, "reason=identity_mismatch claimed=3 certificate=2"),
            "identity refusal",
            cluster,
        )
        terms = raft_terms(tmp_path / "b1" / "raft")
        assert all(t < HUGE for t in terms.values()), terms
        # The cluster still serves acks=all after all that.
        assert 1 in terms  # the controller group's state was read
        _produce_consume_acks_all(cluster, "tls-after")
