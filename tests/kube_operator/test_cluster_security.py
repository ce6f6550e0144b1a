"""The operator's generated security material: CA and Raft certificates, renewal, admin token, and how
broker pods and NetworkPolicies use them. Pure functions, no cluster."""

import datetime
import socket
import ssl
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from streamraft_operator import certs
from streamraft_operator.clustersecrets import (
    CA_CERT,
    CA_KEY,
    TLS_CERT,
    TLS_KEY,
    TOKEN_KEY,
    broker_dns,
    ca_renewal,
    leaf_renewal,
    plan_secrets,
    secret_data,
)
from streamraft_operator.resources import config_hash, desired_objects, network_policy, stateful_set
from streamraft_operator.spec import ClusterSpec, SpecError, parse_cluster

NOW = datetime.datetime(2026, 12, 7, 12, 0, tzinfo=datetime.UTC)
DAY = datetime.timedelta(days=1)


def _cluster(**spec: Any) -> ClusterSpec:
    return parse_cluster("demo", "team-a", {"replicas": 3, **spec})


def _existing(wanted: Any) -> dict[str, dict[str, bytes]]:
    return {s["metadata"]["name"]: secret_data(s) for s in wanted.secrets}


@pytest.mark.parametrize(
    ("not_after", "threshold", "due"),
    [
        (NOW + 90 * DAY, 30 * DAY, False),
        (NOW + 31 * DAY, 30 * DAY, False),
        (NOW + 30 * DAY, 30 * DAY, False),  # exactly the threshold left: still fine
        (NOW + 30 * DAY - datetime.timedelta(seconds=1), 30 * DAY, True),
        (NOW + DAY, 30 * DAY, True),
        (NOW, 30 * DAY, True),
        (NOW - DAY, 30 * DAY, True),  # already expired
        (NOW + 2 * DAY, DAY, False),
        (NOW + DAY / 2, DAY, True),
    ],
)
def test_renewal_due_table(not_after: datetime.datetime, threshold: datetime.timedelta, due: bool) -> None:
    assert certs.renewal_due(not_after, NOW, threshold) is due


def test_first_plan_makes_token_ca_and_one_certificate_per_broker_with_node_and_dns_sans() -> None:
    c = _cluster()
    wanted = plan_secrets(c, {}, NOW, {"l": "v"})
    names = [s["metadata"]["name"] for s in wanted.secrets]
    assert names == ["demo-admin-token", "demo-ca", "demo-0-raft-tls", "demo-1-raft-tls", "demo-2-raft-tls"]
    got = _existing(wanted)
    assert len(got["demo-admin-token"][TOKEN_KEY]) >= 40
    ca = got["demo-ca"]
    ca_cert = x509.load_pem_x509_certificate(ca[CA_CERT])
    assert ca_cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    for ordinal in range(3):
        leaf = got[f"demo-{ordinal}-raft-tls"]
        assert leaf[CA_CERT] == ca[CA_CERT]
        info = certs.info(leaf[TLS_CERT])
        assert info.uris == {f"spiffe://streamraft/node/{ordinal + 1}"}
        assert f"demo-{ordinal}.demo-headless.team-a.svc.cluster.local" in info.dns
        assert info.dns == set(broker_dns(c, ordinal))
        assert info.not_after <= NOW + 90 * DAY
        cert = x509.load_pem_x509_certificate(leaf[TLS_CERT])
        cert.verify_directly_issued_by(ca_cert)
    assert all(s["metadata"]["labels"] == {"l": "v"} for s in wanted.secrets)


def test_plan_is_idempotent_and_keeps_the_token() -> None:
    c = _cluster()
    existing = _existing(plan_secrets(c, {}, NOW, {}))
    again = plan_secrets(c, existing, NOW + 10 * DAY, {})
    assert again.secrets == () and again.changes == ()


def test_certificates_are_renewed_before_expiry_with_the_same_ca() -> None:
    c = _cluster()
    existing = _existing(plan_secrets(c, {}, NOW, {}))
    later = NOW + 61 * DAY  # 29 days left of 90
    renewed = plan_secrets(c, existing, later, {})
    assert [s["metadata"]["name"] for s in renewed.secrets] == [f"demo-{i}-raft-tls" for i in range(3)]
    assert all("expires" in change for change in renewed.changes)
    after = {**existing, **_existing(renewed)}
    assert after["demo-ca"] == existing["demo-ca"]
    assert certs.info(after["demo-0-raft-tls"][TLS_CERT]).not_after > later + 60 * DAY


def test_scale_up_issues_only_the_new_broker_and_a_new_ca_reissues_all() -> None:
    c = _cluster()
    existing = _existing(plan_secrets(c, {}, NOW, {}))
    bigger = parse_cluster("demo", "team-a", {"replicas": 4})
    assert [s["metadata"]["name"] for s in plan_secrets(bigger, existing, NOW, {}).secrets] == [
        "demo-3-raft-tls"
    ]
    without_ca = {k: v for k, v in existing.items() if k != "demo-ca"}
    again = plan_secrets(c, without_ca, NOW, {})
    assert [s["metadata"]["name"] for s in again.secrets] == ["demo-ca"] + [
        f"demo-{i}-raft-tls" for i in range(3)
    ]
    assert "signed by another CA" in again.changes[1]


def test_renewal_reasons_for_damaged_or_foreign_material() -> None:
    ca = certs.create_ca("x", NOW)
    other = certs.create_ca("y", NOW)
    dns, uris = ("a",), ("spiffe://streamraft/node/1",)
    good = certs.issue(ca, "a", NOW, dns=dns, uris=uris)
    data = {TLS_CERT: good.cert_pem, TLS_KEY: good.key_pem, CA_CERT: ca.cert_pem}
    assert leaf_renewal(data, ca.cert_pem, dns, uris, NOW) is None
    foreign = certs.issue(other, "a", NOW, dns=dns, uris=uris)
    table: list[tuple[dict[str, bytes], str]] = [
        ({}, "no certificate yet"),
        ({**data, TLS_CERT: b"garbage"}, "unusable"),
        ({**data, TLS_KEY: foreign.key_pem}, "does not belong"),
        ({**data, TLS_CERT: foreign.cert_pem, TLS_KEY: foreign.key_pem}, "another CA"),
    ]
    for broken, reason in table:
        why = leaf_renewal(broken, ca.cert_pem, dns, uris, NOW)
        assert why is not None and reason in why, (reason, why)
    assert leaf_renewal(data, ca.cert_pem, ("b",), uris, NOW) == "names changed"
    assert leaf_renewal(data, ca.cert_pem, dns, ("spiffe://streamraft/node/2",), NOW) == "names changed"
    assert ca_renewal({CA_CERT: ca.cert_pem, CA_KEY: ca.key_pem}, NOW) is None
    assert ca_renewal({CA_CERT: ca.cert_pem, CA_KEY: other.key_pem}, NOW) is not None
    why = ca_renewal({CA_CERT: ca.cert_pem, CA_KEY: ca.key_pem}, NOW + 3640 * DAY)
    assert why is not None and "expires" in why


def test_raft_tls_and_tls_listener_off_still_make_the_admin_token() -> None:
    c = _cluster(security={"raftTls": False}, listeners={"tls": {"enabled": False}})
    assert [s["metadata"]["name"] for s in plan_secrets(c, {}, NOW, {}).secrets] == ["demo-admin-token"]
    pod = stateful_set(c)["spec"]["template"]["spec"]
    script = pod["containers"][0]["command"][2]
    assert "--raft-tls" not in script and "--listeners" not in script and "--ssl-" not in script
    assert "--admin-token-file /etc/streamraft-admin/token" in script
    assert "raft-tls" not in {v["name"] for v in pod["volumes"]}


def test_raft_tls_off_keeps_the_certificates_the_tls_listener_serves() -> None:
    c = _cluster(security={"raftTls": False})
    names = [s["metadata"]["name"] for s in plan_secrets(c, {}, NOW, {}).secrets]
    assert names == ["demo-admin-token", "demo-ca", "demo-0-raft-tls", "demo-1-raft-tls", "demo-2-raft-tls"]
    script = stateful_set(c)["spec"]["template"]["spec"]["containers"][0]["command"][2]
    assert "--raft-tls" not in script and "--ssl-keystore-key" in script


def _started_as(c: ClusterSpec, pod: str) -> str:
    """The broker command line the pod's start script runs (the shell expands the pod's own names)."""
    script = stateful_set(c)["spec"]["template"]["spec"]["containers"][0]["command"][2]
    shown = script.replace("exec streamraft broker", "echo", 1)
    return subprocess.run(
        ["sh", "-c", shown], env={"POD_NAME": pod}, capture_output=True, text=True, check=True
    ).stdout


def test_a_tls_kafka_listener_is_on_by_default_with_the_brokers_own_certificate() -> None:
    c = _cluster()
    out = _started_as(c, "demo-2")
    assert "--listeners PLAINTEXT://0.0.0.0:9092,SSL://0.0.0.0:9094 " in out
    assert "--advertised-listeners SSL://demo-2.demo-headless.team-a.svc.cluster.local:9094 " in out
    assert "--ssl-keystore-certificate-chain /etc/streamraft-raft-tls/2/tls.crt" in out
    assert "--ssl-keystore-key /etc/streamraft-raft-tls/2/tls.key" in out
    assert "--ssl-truststore-location /etc/streamraft-raft-tls/ca.crt" in out
    assert "--ssl-client-auth" not in out
    by_kind = {(o["kind"], o["metadata"]["name"]): o for o in desired_objects(c, service_monitor_crd=False)}
    for service in ("demo-bootstrap", "demo-headless"):
        ports = {p["name"]: p["port"] for p in by_kind[("Service", service)]["spec"]["ports"]}
        assert ports["kafka"] == 9092 and ports["kafka-tls"] == 9094
    container = by_kind[("StatefulSet", "demo")]["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "kafka-tls", "containerPort": 9094, "protocol": "TCP"} in container["ports"]
    # Clients verify the name they dialled: the bootstrap Service's names are in every certificate.
    leaf = _existing(plan_secrets(c, {}, NOW, {}))["demo-1-raft-tls"]
    assert {"demo-bootstrap.team-a.svc", "demo-bootstrap.team-a.svc.cluster.local"} <= certs.info(
        leaf[TLS_CERT]
    ).dns


def test_tls_listener_port_authentication_and_invalid_settings() -> None:
    c = _cluster(listeners={"tls": {"port": 19094, "authentication": "tls"}})
    out = _started_as(c, "demo-0")
    assert "SSL://0.0.0.0:19094" in out and "--ssl-client-auth required" in out
    scram = _started_as(_cluster(listeners={"tls": {"authentication": "scram-sha-512"}}), "demo-1")
    assert "--listeners PLAINTEXT://0.0.0.0:9092,SASL_SSL://0.0.0.0:9094 " in scram
    assert "--advertised-listeners SASL_SSL://demo-1.demo-headless.team-a.svc.cluster.local:9094 " in scram
    assert "--sasl-enabled-mechanisms SCRAM-SHA-512" in scram and "--ssl-client-auth" not in scram
    off = _cluster(listeners={"tls": {"enabled": False}})
    assert "--listeners" not in _started_as(off, "demo-0")
    assert {p["name"] for p in stateful_set(off)["spec"]["template"]["spec"]["containers"][0]["ports"]} == {
        "kafka",
        "raft",
        "metrics",
        "admin",
    }
    # Turning TLS on, off or moving it changes the listeners a broker reads at start: a restart.
    assert len({config_hash(c), config_hash(off), config_hash(_cluster())}) == 3
    for bad, problem in [
        ({"port": 9092}, "spec.listeners.tls.port must not be 9092"),
        ({"port": 9093}, "spec.listeners.tls.port must not be 9093"),
        ({"authentication": "scram"}, "must be one of none, tls, scram-sha-512"),
        ({"enabled": "yes"}, "must be true or false"),
    ]:
        with pytest.raises(SpecError, match=problem):
            _cluster(listeners={"tls": bad})


def test_issued_certificates_make_a_real_mutual_tls_handshake(tmp_path: Path) -> None:
    """OpenSSL accepts the operator's chain both ways: each side verifies the other against the CA, and
    the server sees the client's node id."""
    c = _cluster(replicas=2)
    got = _existing(plan_secrets(c, {}, datetime.datetime.now(datetime.UTC), {}))
    ca_file = tmp_path / "ca.crt"
    ca_file.write_bytes(got["demo-ca"][CA_CERT])
    for i in range(2):
        (tmp_path / f"{i}.crt").write_bytes(got[f"demo-{i}-raft-tls"][TLS_CERT])
        (tmp_path / f"{i}.key").write_bytes(got[f"demo-{i}-raft-tls"][TLS_KEY])
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(tmp_path / "0.crt", tmp_path / "0.key")
    server.load_verify_locations(ca_file)
    server.verify_mode = ssl.CERT_REQUIRED
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.load_cert_chain(tmp_path / "1.crt", tmp_path / "1.key")
    client.load_verify_locations(ca_file)
    a, b = socket.socketpair()
    a.settimeout(10)
    b.settimeout(10)
    seen: list[bytes | None] = []

    def serve() -> None:
        with server.wrap_socket(a, server_side=True) as conn:
            seen.append(conn.getpeercert(binary_form=True))

    thread = threading.Thread(target=serve)
    thread.start()
    host = "demo-0.demo-headless.team-a.svc.cluster.local"  # what a Raft peer dials
    with client.wrap_socket(b, server_hostname=host) as conn:
        assert conn.version() is not None
    thread.join(10)
    assert seen and seen[0] is not None
    peer = x509.load_der_x509_certificate(seen[0])
    uris = peer.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert uris.get_values_for_type(x509.UniformResourceIdentifier) == ["spiffe://streamraft/node/2"]


def test_broker_pods_mount_certificates_and_token_and_pass_the_flags() -> None:
    c = _cluster()
    pod = stateful_set(c)["spec"]["template"]["spec"]
    container = pod["containers"][0]
    script = container["command"][2]
    assert '--raft-tls-cert /etc/streamraft-raft-tls/"${POD_NAME##*-}"/tls.crt' in script
    assert '--raft-tls-key /etc/streamraft-raft-tls/"${POD_NAME##*-}"/tls.key' in script
    assert "--raft-tls-ca /etc/streamraft-raft-tls/ca.crt" in script
    assert "--admin-token-file /etc/streamraft-admin/token" in script
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["STREAMRAFT_ADMIN_TOKEN_FILE"] == "/etc/streamraft-admin/token"  # the preStop hook reads it
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert mounts["raft-tls"]["readOnly"] and mounts["admin-token"]["readOnly"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["admin-token"]["secret"]["secretName"] == "demo-admin-token"
    sources = volumes["raft-tls"]["projected"]["sources"]
    assert [s["secret"]["name"] for s in sources] == [f"demo-{i}-raft-tls" for i in range(3)]
    paths = [item["path"] for s in sources for item in s["secret"]["items"]]
    assert paths == ["0/tls.crt", "0/tls.key", "ca.crt", "1/tls.crt", "1/tls.key", "2/tls.crt", "2/tls.key"]


def test_the_start_script_picks_this_brokers_own_certificate() -> None:
    c = _cluster()
    script = stateful_set(c)["spec"]["template"]["spec"]["containers"][0]["command"][2]
    shown = script.replace("exec streamraft broker", "echo", 1)
    out = subprocess.run(
        ["sh", "-c", shown], env={"POD_NAME": "demo-2"}, capture_output=True, text=True, check=True
    ).stdout
    assert "--node-id 3 " in out
    assert "--raft-tls-cert /etc/streamraft-raft-tls/2/tls.crt" in out
    assert "--raft-tls-key /etc/streamraft-raft-tls/2/tls.key" in out


def test_network_policy_keeps_raft_and_admin_to_the_brokers() -> None:
    c = _cluster(listeners={"kafka": {"port": 19092}})
    np = network_policy(c)
    assert np["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/instance"] == "demo"
    assert np["spec"]["policyTypes"] == ["Ingress"]
    by_port = {p["port"]: r.get("from") for r in np["spec"]["ingress"] for p in r["ports"]}
    assert set(by_port) == {19092, 9094, 9644, 9093, 9645}
    assert by_port[19092] is None and by_port[9094] is None and by_port[9644] is None  # open to any source
    brokers = {"podSelector": {"matchLabels": np["spec"]["podSelector"]["matchLabels"]}}
    assert by_port[9093] == [brokers]
    operator = {
        "namespaceSelector": {},
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "streamraft-operator"}},
    }
    assert by_port[9645] == [brokers, operator]
    no_metrics = network_policy(_cluster(metrics={"enabled": False}))
    assert {p["port"] for r in no_metrics["spec"]["ingress"] for p in r["ports"]} == {9092, 9094, 9093, 9645}
    kinds = [o["kind"] for o in desired_objects(c, service_monitor_crd=False)]
    assert kinds[-1] == "NetworkPolicy"
    off = _cluster(security={"networkPolicy": False})
    assert "NetworkPolicy" not in [o["kind"] for o in desired_objects(off, service_monitor_crd=False)]


@pytest.mark.parametrize(
    ("context", "problem"),
    [
        ({"runAsNonRoot": False}, "runAsNonRoot may not be false"),
        ({"runAsUser": 0}, "runAsUser may not be 0"),
        ({"runAsGroup": 0}, "runAsGroup may not be 0"),
        ({"seccompProfile": {"type": "Unconfined"}}, "seccompProfile may not be Unconfined"),
    ],
)
def test_a_cluster_may_not_weaken_the_broker_security_context(context: dict[str, Any], problem: str) -> None:
    spec = {"replicas": 1, "template": {"pod": {"securityContext": context}}}
    with pytest.raises(SpecError, match=problem) as err:
        parse_cluster("demo", "ns", spec)
    assert "allowSecurityContextOverride" in str(err.value)
    allowed = parse_cluster("demo", "ns", spec, allow_security_context_override=True)
    assert dict(allowed.security_context) == context


def test_stricter_security_context_is_accepted() -> None:
    spec = {"replicas": 1, "template": {"pod": {"securityContext": {"runAsUser": 2000, "fsGroup": 2000}}}}
    assert parse_cluster("demo", "ns", spec).security_context["runAsUser"] == 2000


def test_security_flags_must_be_booleans() -> None:
    with pytest.raises(SpecError, match=r"spec.security.raftTls must be true or false"):
        parse_cluster("demo", "ns", {"replicas": 1, "security": {"raftTls": "yes"}})
