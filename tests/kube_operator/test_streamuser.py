"""StreamUser: spec parsing, the pure ACL/SCRAM/quota plan, credentials, and the CRD's shape."""

import base64
import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from streamraft_operator import certs
from streamraft_operator.clustersecrets import CA_CERT, TLS_CERT, TLS_KEY
from streamraft_operator.crds import stream_user_crd
from streamraft_operator.spec import SpecError, parse_cluster
from streamraft_operator.status import status_patch
from streamraft_operator.userplan import ObservedUser, UserPlan, plan_quotas, plan_user
from streamraft_operator.userreconcile import JAAS, PASSWORD, USERNAME, plan_credentials, quotas_status
from streamraft_operator.userspec import Acl, Quotas, parse_user

NOW = datetime.datetime.now(datetime.UTC)
READ_ORDERS = Acl("topic", "orders", "literal", "Read")
DESCRIBE_ORDERS = Acl("topic", "orders", "literal", "Describe")
GROUP_APP = Acl("group", "app-", "prefix", "Read")
STRAY = Acl("topic", "secret", "literal", "Write")


def _user(auth: str = "scram-sha-512", **spec: Any) -> Any:
    return parse_user("alice", "ns", {"cluster": "demo", "authentication": {"type": auth}, **spec})


def _acls_spec() -> dict[str, Any]:
    return {
        "authorization": {
            "acls": [
                {"resource": {"type": "topic", "name": "orders"}, "operations": ["Read", "Describe"]},
                {
                    "resource": {"type": "group", "name": "app-", "patternType": "prefix"},
                    "operations": ["Read"],
                },
            ]
        }
    }


def test_spec_expands_operations_and_defaults() -> None:
    u = _user(**_acls_spec())
    assert u.acls == {READ_ORDERS, DESCRIBE_ORDERS, GROUP_APP}
    assert u.principal == "User:alice"
    assert _user("tls").principal == "User:CN=alice"
    cluster = parse_user(
        "a",
        "ns",
        {
            "cluster": "demo",
            "authentication": {"type": "tls"},
            "authorization": {"acls": [{"resource": {"type": "cluster"}, "operations": ["IdempotentWrite"]}]},
        },
    )
    assert cluster.acls == {Acl("cluster", "kafka-cluster", "literal", "IdempotentWrite")}


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ({"authentication": {"type": "scram-sha-512"}}, "spec.cluster is required"),
        ({"cluster": "demo"}, "spec.authentication.type must be one of scram-sha-512, tls"),
        ({"cluster": "demo", "authentication": {"type": "plain"}}, "got 'plain'"),
        (
            {"authorization": {"acls": [{"resource": {"type": "topic"}, "operations": ["Read"]}]}},
            r"acls\[0\].resource.name is required",
        ),
        (
            {
                "authorization": {
                    "acls": [{"resource": {"type": "topic", "name": "t"}, "operations": ["Fly"]}]
                }
            },
            r"acls\[0\].operations\[0\] must be one of",
        ),
        (
            {
                "authorization": {
                    "acls": [{"resource": {"type": "cluster", "name": "x"}, "operations": ["All"]}]
                }
            },
            "must be kafka-cluster",
        ),
        ({"quotas": {"producerByteRate": -1}}, "producerByteRate must be a positive integer"),
        # Kafka refuses a quota of 0 (AlterClientQuotas answers INVALID_REQUEST): refused in the spec's terms.
        ({"quotas": {"consumerByteRate": 0}}, "consumerByteRate must be a positive integer"),
        ({"quotas": {"producerByteRate": 2**63}}, "producerByteRate must be a positive integer"),
        ({"quotas": {"producerByteRate": 1.5}}, "producerByteRate must be a positive integer"),
        ({"quotas": {"requestPercentage": "lots"}}, "requestPercentage must be a number above 0"),
        ({"quotas": {"requestPercentage": 0}}, "requestPercentage must be a number above 0"),
    ],
)
def test_invalid_specs_name_the_field(spec: dict[str, Any], problem: str) -> None:
    full = {"cluster": "demo", "authentication": {"type": "scram-sha-512"}, **spec}
    for key in ("cluster", "authentication"):
        if key not in spec and key in problem:
            full.pop(key)
    with pytest.raises(SpecError, match=problem):
        parse_user("alice", "ns", full)


S512 = frozenset({"SCRAM-SHA-512"})
S256 = frozenset({"SCRAM-SHA-256"})


@pytest.mark.parametrize(
    ("auth", "observed", "expected"),
    [
        # new user: every ACL added, password set
        (
            "scram-sha-512",
            ObservedUser(frozenset(), frozenset()),
            UserPlan(add_acls=(GROUP_APP, DESCRIBE_ORDERS, READ_ORDERS), upsert_scram=True),
        ),
        # in sync: nothing
        (
            "scram-sha-512",
            ObservedUser(frozenset({READ_ORDERS, DESCRIBE_ORDERS, GROUP_APP}), S512),
            UserPlan(),
        ),
        # drift: a stray ACL removed, a missing one added; credential kept
        (
            "scram-sha-512",
            ObservedUser(frozenset({READ_ORDERS, GROUP_APP, STRAY}), S512),
            UserPlan(add_acls=(DESCRIBE_ORDERS,), remove_acls=(STRAY,)),
        ),
        # the password was just generated: set it even though a credential exists
        (
            "scram-sha-512",
            ObservedUser(frozenset({READ_ORDERS, DESCRIBE_ORDERS, GROUP_APP}), S512, password_new=True),
            UserPlan(upsert_scram=True),
        ),
        # another mechanism left over: removed, ours set
        (
            "scram-sha-512",
            ObservedUser(frozenset({READ_ORDERS, DESCRIBE_ORDERS, GROUP_APP}), S256),
            UserPlan(upsert_scram=True, delete_scram=("SCRAM-SHA-256",)),
        ),
        # TLS user: any password is removed, never set
        (
            "tls",
            ObservedUser(frozenset({READ_ORDERS, DESCRIBE_ORDERS, GROUP_APP}), S512 | S256),
            UserPlan(delete_scram=("SCRAM-SHA-256", "SCRAM-SHA-512")),
        ),
        ("tls", ObservedUser(frozenset({READ_ORDERS, DESCRIBE_ORDERS, GROUP_APP}), frozenset()), UserPlan()),
    ],
)
def test_plan_table(auth: str, observed: ObservedUser, expected: UserPlan) -> None:
    assert plan_user(_user(auth, **_acls_spec()), observed) == expected


def _quotas(**fields: float) -> Quotas:
    return _user(quotas=fields).quotas


@pytest.mark.parametrize(
    ("desired", "observed", "ops"),
    [
        # nothing asked, nothing there
        ({}, {}, ()),
        # a new user: every value set, under Kafka's key names
        (
            {"producerByteRate": 102400, "consumerByteRate": 2048, "requestPercentage": 12.5},
            {},
            (("consumer_byte_rate", 2048.0), ("producer_byte_rate", 102400.0), ("request_percentage", 12.5)),
        ),
        # in sync (brokers hold doubles): nothing to do
        ({"producerByteRate": 1024}, {"producer_byte_rate": 1024.0}, ()),
        # a changed value is set again; one the spec no longer has is removed
        (
            {"producerByteRate": 2048},
            {"producer_byte_rate": 1024.0, "consumer_byte_rate": 4096.0},
            (("consumer_byte_rate", None), ("producer_byte_rate", 2048.0)),
        ),
        # quotas dropped from the spec, or set behind the operator's back (also keys the spec cannot
        # express): the entity is the StreamUser's, so they go
        (
            {},
            {"request_percentage": 50.0, "controller_mutation_rate": 10.0},
            (("controller_mutation_rate", None), ("request_percentage", None)),
        ),
    ],
)
def test_quota_plan(desired: dict[str, float], observed: dict[str, float], ops: tuple[Any, ...]) -> None:
    assert plan_quotas(_quotas(**desired), observed) == ops


def test_quota_ops_are_part_of_the_user_plan() -> None:
    u = _user(quotas={"producerByteRate": 1024})
    plan = plan_user(u, ObservedUser(frozenset(), S512))
    assert plan == UserPlan(quota_ops=(("producer_byte_rate", 1024.0),)) and not plan.noop
    assert plan_user(u, ObservedUser(frozenset(), S512, quotas={"producer_byte_rate": 1024.0})).noop
    assert u.quota_name == "alice" and _user("tls").quota_name == "CN=alice"
    assert u.quotas.status() == {"producerByteRate": 1024}
    assert _quotas(requestPercentage=12.5, consumerByteRate=7).status() == {
        "consumerByteRate": 7,
        "requestPercentage": 12.5,
    }


def test_status_quotas_are_written_as_a_merge_patch_that_drops_removed_fields() -> None:
    before = {"status": {"quotas": {"producerByteRate": 1024, "consumerByteRate": 2048}}}
    # A JSON merge patch merges objects key by key: a field no longer applied must be sent as null.
    assert quotas_status(before, {"producerByteRate": 1024}) == {
        "consumerByteRate": None,
        "producerByteRate": 1024,
    }
    # Unchanged: equal to the stored status, so nothing is written.
    same = quotas_status(before, {"producerByteRate": 1024, "consumerByteRate": 2048})
    assert status_patch(before["status"], {"quotas": same}) == {}
    assert quotas_status({}, {"requestPercentage": 12.5}) == {"requestPercentage": 12.5}


def _decoded(secret: dict[str, Any]) -> dict[str, bytes]:
    return {k: base64.b64decode(v) for k, v in secret["data"].items()}


def test_scram_password_is_generated_once_and_kept() -> None:
    c = parse_cluster("demo", "ns", {"replicas": 1})
    first = plan_credentials(_user(), c, {}, None, NOW, labels={})
    assert first.secret is not None and first.password_new
    assert first.secret["metadata"]["name"] == "alice-streamuser"
    data = _decoded(first.secret)
    assert data[USERNAME] == b"alice" and len(data[PASSWORD]) >= 32 and data[PASSWORD] == first.password
    assert f'password="{data[PASSWORD].decode()}"' in data[JAAS].decode()
    again = plan_credentials(_user(), c, data, None, NOW, labels={})
    assert again.secret is None and not again.password_new and again.password == data[PASSWORD]


def test_tls_user_gets_a_client_certificate_from_the_cluster_ca_that_cannot_join_raft() -> None:
    c = parse_cluster("demo", "ns", {"replicas": 1})
    ca = certs.create_ca("demo CA", NOW)
    creds = plan_credentials(_user("tls"), c, {}, ca, NOW, labels={})
    assert creds.secret is not None
    data = _decoded(creds.secret)
    cert = x509.load_pem_x509_certificate(data[TLS_CERT])
    assert cert.subject.rfc4514_string() == "CN=alice"  # Kafka's default principal: User:CN=alice
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(ca.cert_pem))
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]
    assert certs.info(data[TLS_CERT]).uris == frozenset()  # no spiffe node id: Raft refuses it
    assert data[CA_CERT] == ca.cert_pem
    assert plan_credentials(_user("tls"), c, data, ca, NOW, labels={}).secret is None
    renewed = plan_credentials(_user("tls"), c, data, ca, NOW + datetime.timedelta(days=80), labels={})
    assert renewed.secret is not None and renewed.change is not None and "expires" in renewed.change
    assert TLS_KEY in _decoded(renewed.secret)
    no_ca = plan_credentials(_user("tls"), c, {}, None, NOW, labels={})
    assert no_ca.problem is not None and "no CA" in no_ca.problem


def test_crd_shape_and_validation_rules() -> None:
    crd: dict[str, Any] = stream_user_crd()
    assert crd["metadata"]["name"] == "streamusers.streamraft.io"
    version = crd["spec"]["versions"][0]
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert spec["required"] == ["cluster", "authentication"]
    props = spec["properties"]
    assert props["authentication"]["properties"]["type"]["enum"] == ["scram-sha-512", "tls"]
    acl = props["authorization"]["properties"]["acls"]["items"]
    assert acl["required"] == ["resource", "operations"]
    assert acl["properties"]["type"]["enum"] == ["allow", "deny"]
    resource = acl["properties"]["resource"]
    assert resource["properties"]["patternType"]["enum"] == ["literal", "prefix"]
    messages = {v["message"] for v in resource["x-kubernetes-validations"]}
    assert "resource.name is required unless type is cluster" in messages
    assert {v["message"] for v in props["cluster"]["x-kubernetes-validations"]} == {"cluster is immutable"}
    quotas = props["quotas"]["properties"]
    assert set(quotas) == {"producerByteRate", "consumerByteRate", "requestPercentage"}
    assert quotas["producerByteRate"]["minimum"] == 1 and quotas["requestPercentage"]["exclusiveMinimum"]
    status = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    assert {"observedGeneration", "conditions", "username", "secret", "quotas"} <= set(status)
    assert set(status["quotas"]["properties"]) == set(quotas)


def test_the_generated_example_parses() -> None:
    example = Path(__file__).resolve().parents[2] / "manifests/examples/streamuser.yaml"
    docs = list(yaml.safe_load_all(example.read_text()))
    assert [d["kind"] for d in docs] == ["StreamUser"]
    u = parse_user(docs[0]["metadata"]["name"], "ns", docs[0]["spec"])
    assert u.principal == "User:CN=orders-app" and len(u.acls) == 4
