"""The operator's StreamUser Admin calls against a real `streamraft broker` with ACL authorization on."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from streamraft_operator import useradmin
from streamraft_operator.topicadmin import AdminFailed
from streamraft_operator.userplan import ObservedUser, plan_user
from streamraft_operator.userspec import Acl, parse_user

from tests.support.broker_process import BrokerProcess

# The operator connects without credentials: it must be a super user where ACLs are enforced.
AUTHORIZER = ["--authorizer-class-name", "streamraft.acl", "--super-users", "User:ANONYMOUS"]


@pytest.fixture
def bootstrap(tmp_path: Path) -> Iterator[list[str]]:
    with BrokerProcess(tmp_path / "data", extra_args=AUTHORIZER) as broker:
        yield [broker.bootstrap]


def _spec(*acls: dict[str, object]) -> dict[str, object]:
    return {"cluster": "c", "authentication": {"type": "tls"}, "authorization": {"acls": list(acls)}}


def test_acls_are_created_drift_reverted_and_removed(bootstrap: list[str]) -> None:
    u = parse_user(
        "alice",
        "ns",
        _spec(
            {"resource": {"type": "topic", "name": "orders"}, "operations": ["Read", "Describe"]},
            {"resource": {"type": "group", "name": "app-", "patternType": "prefix"}, "operations": ["Read"]},
            {
                "resource": {"type": "cluster"},
                "operations": ["IdempotentWrite"],
                "type": "deny",
                "host": "10.0.0.1",
            },
        ),
    )
    assert useradmin.describe_acls(bootstrap, u.principal) == frozenset()
    plan = plan_user(u, ObservedUser(frozenset(), frozenset()))
    useradmin.create_acls(bootstrap, u.principal, plan.add_acls)
    assert useradmin.describe_acls(bootstrap, u.principal) == u.acls  # the model round-trips exactly

    # Someone grants alice more behind the operator's back; another principal's ACL is not ours.
    stray = Acl("topic", "payroll", "literal", "Write")
    useradmin.create_acls(bootstrap, u.principal, [stray])
    useradmin.create_acls(bootstrap, "User:CN=bob", [stray])
    smaller = parse_user(
        "alice",
        "ns",
        _spec({"resource": {"type": "topic", "name": "orders"}, "operations": ["Read", "Describe"]}),
    )
    plan = plan_user(smaller, ObservedUser(useradmin.describe_acls(bootstrap, u.principal), frozenset()))
    assert plan.add_acls == () and stray in plan.remove_acls and len(plan.remove_acls) == 3
    useradmin.delete_acls(bootstrap, u.principal, plan.remove_acls)
    assert useradmin.describe_acls(bootstrap, u.principal) == smaller.acls
    assert useradmin.describe_acls(bootstrap, "User:CN=bob") == {stray}


def test_scram_calls_fail_with_a_clear_message_or_work(bootstrap: list[str]) -> None:
    """SCRAM credentials need the broker's AlterUserScramCredentials (merged separately): either the call
    works and the credential is visible, or the failure names the call, for the StreamUser's status."""
    try:
        useradmin.upsert_scram(bootstrap, "carol", b"s3cret-password")
    except AdminFailed as exc:
        assert "set SCRAM" in str(exc)
        # Such a broker holds no credential: a TLS user's reconcile has nothing to remove.
        assert useradmin.scram_mechanisms(bootstrap, "carol") == frozenset()
        return
    assert useradmin.scram_mechanisms(bootstrap, "carol") == {"SCRAM-SHA-512"}
    useradmin.delete_scram(bootstrap, "carol", ["SCRAM-SHA-512"])
    assert useradmin.scram_mechanisms(bootstrap, "carol") == frozenset()
