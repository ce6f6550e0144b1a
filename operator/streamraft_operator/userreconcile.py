"""One StreamUser reconcile: its credentials Secret, then ACLs and SCRAM credential through the Kafka Admin
API and client quotas through AlterClientQuotas (all decided by `userplan.plan_user`), then status; and the
clean-up when the StreamUser is deleted."""

import asyncio
import datetime
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from streamraft_operator import certs, clustersecrets, quotaadmin, useradmin
from streamraft_operator.brokers import BrokersUnreachable
from streamraft_operator.clusterreconcile import (
    Emit,
    cluster_addresses,
    conditions_status,
    fetch_cluster,
    is_paused,
    write_status,
)
from streamraft_operator.constants import EVENT_USER_UPDATED, PAUSED_ANNOTATION
from streamraft_operator.kube import Kube, with_owner
from streamraft_operator.spec import ClusterSpec, SpecError, parse_cluster
from streamraft_operator.status import Condition
from streamraft_operator.topicadmin import AdminFailed
from streamraft_operator.userplan import ObservedUser, UserPlan, plan_user
from streamraft_operator.userspec import UserSpec, parse_user

PASSWORD = "password"
USERNAME = "username"
MECHANISM = "sasl.mechanism"
JAAS = "sasl.jaas.config"


def user_secret_name(u: UserSpec) -> str:
    return f"{u.name}-streamuser"


@dataclass(frozen=True)
class Credentials:
    secret: dict[str, Any] | None
    """The Secret to write, or None when the stored one is still right."""
    password: bytes | None
    password_new: bool
    change: str | None
    problem: str | None = None


def jaas_config(user: str, password: str) -> str:
    return (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{user}" password="{password}";'
    )


def plan_credentials(
    u: UserSpec,
    c: ClusterSpec,
    existing: Mapping[str, bytes],
    ca: certs.KeyPair | None,
    now: datetime.datetime,
    *,
    labels: Mapping[str, str],
) -> Credentials:
    """The user's Secret: a generated password (SCRAM) kept once made, or a client certificate from the
    cluster CA (TLS) renewed like the brokers' ones."""
    name = user_secret_name(u)
    if u.auth == "scram-sha-512":
        password = existing.get(PASSWORD, b"").strip()
        if password and existing.get(USERNAME) == u.name.encode():
            return Credentials(None, password, False, None)
        password = secrets.token_urlsafe(24).encode()
        data = {
            USERNAME: u.name.encode(),
            PASSWORD: password,
            MECHANISM: b"SCRAM-SHA-512",
            JAAS: jaas_config(u.name, password.decode()).encode(),
        }
        obj = clustersecrets.secret(c, name, data, labels)
        return Credentials(obj, password, True, f"generated the password of {u.principal} ({name})")
    if ca is None:
        return Credentials(
            None,
            None,
            False,
            None,
            f"StreamCluster {c.name} has no CA (spec.security.raftTls and spec.listeners.tls are off)",
        )
    why = clustersecrets.leaf_renewal(existing, ca.cert_pem, (), (), now)
    if why is None:
        return Credentials(None, None, False, None)
    leaf = certs.issue(ca, u.name, now, server=False, organization=None)
    data = {
        clustersecrets.TLS_CERT: leaf.cert_pem,
        clustersecrets.TLS_KEY: leaf.key_pem,
        clustersecrets.CA_CERT: ca.cert_pem,
    }
    obj = clustersecrets.secret(c, name, data, labels)
    return Credentials(obj, None, False, f"issued the client certificate of {u.principal} ({why})")


def _failed(reason: str, message: str) -> list[Condition]:
    return [
        Condition("Ready", False, reason, message),
        Condition("Progressing", False, reason, message),
        Condition("Degraded", True, reason, message),
    ]


def _cluster_ca(kube: Kube, c: ClusterSpec) -> certs.KeyPair | None:
    data = clustersecrets.secret_data(kube.get("v1", "Secret", c.namespace, clustersecrets.ca_secret_name(c)))
    if clustersecrets.ca_renewal(data, datetime.datetime.now(datetime.UTC)) is not None:
        return None  # the cluster's reconcile makes (or renews) it; issue with it next time
    return certs.KeyPair(data[clustersecrets.CA_CERT], data[clustersecrets.CA_KEY])


@dataclass(frozen=True)
class Synced:
    conditions: list[Condition]
    acls: int = 0
    quotas: dict[str, int | float] | None = None
    """The spec's quota fields the brokers now hold; None when they were not (all) applied."""


def apply_user(
    addresses: Sequence[str], u: UserSpec, password: bytes | None, *, password_new: bool
) -> UserPlan:
    """Makes the brokers' view of the user match its spec: observes its ACLs, SCRAM credentials and
    quotas, plans (`plan_user`), acts, and returns what it did. ``password`` (the user's Secret) is needed
    for a SCRAM user; AdminFailed or BrokersUnreachable name a call that failed (retried next time: every
    step is idempotent)."""
    observed = ObservedUser(
        acls=useradmin.describe_acls(addresses, u.principal),
        scram_mechanisms=useradmin.scram_mechanisms(addresses, u.name),
        password_new=password_new,
        quotas=quotaadmin.describe_user_quotas(addresses, u.quota_name),
    )
    plan = plan_user(u, observed)
    useradmin.delete_acls(addresses, u.principal, plan.remove_acls)
    useradmin.create_acls(addresses, u.principal, plan.add_acls)
    if plan.delete_scram:
        useradmin.delete_scram(addresses, u.name, plan.delete_scram)
    if plan.upsert_scram:
        if password is None:
            raise AdminFailed(f"no password for {u.principal} to set its SCRAM credential with")
        useradmin.upsert_scram(addresses, u.name, password)
    quotaadmin.alter_user_quotas(addresses, u.quota_name, dict(plan.quota_ops))
    return plan


def remove_user(addresses: Sequence[str], u: UserSpec) -> str:
    """Removes everything the brokers hold for the user (ACLs, SCRAM credentials, quotas); says what."""
    acls = useradmin.describe_acls(addresses, u.principal)
    useradmin.delete_acls(addresses, u.principal, sorted(acls))
    mechanisms = useradmin.scram_mechanisms(addresses, u.name)
    useradmin.delete_scram(addresses, u.name, sorted(mechanisms))
    quotas = quotaadmin.describe_user_quotas(addresses, u.quota_name)
    quotaadmin.alter_user_quotas(addresses, u.quota_name, dict.fromkeys(quotas))
    return (
        f"removed {len(acls)} ACL(s), {len(mechanisms)} SCRAM credential(s) and {len(quotas)} quota(s) "
        f"of {u.principal}"
    )


def _sync_user(kube: Kube, body: Mapping[str, Any], u: UserSpec, emit: Emit) -> Synced:
    cluster = fetch_cluster(kube, u.namespace, u.cluster)
    if cluster is None:
        return Synced(
            _failed("ClusterNotFound", f"StreamCluster {u.cluster} not found in namespace {u.namespace}")
        )
    try:
        c = parse_cluster(u.cluster, u.namespace, cluster.get("spec") or {})
        addresses = cluster_addresses(kube, cluster)
    except SpecError as exc:
        return Synced(_failed("ClusterNotReady", f"StreamCluster {u.cluster} is invalid: {exc}"))
    existing = clustersecrets.secret_data(kube.get("v1", "Secret", u.namespace, user_secret_name(u)))
    ca = _cluster_ca(kube, c) if u.auth == "tls" else None
    labels = {"app.kubernetes.io/managed-by": "streamraft-operator", "streamraft.io/cluster": c.name}
    creds = plan_credentials(u, c, existing, ca, datetime.datetime.now(datetime.UTC), labels=labels)
    if creds.problem is not None:
        return Synced(_failed("ClusterNotReady", creds.problem))
    if creds.secret is not None:
        kube.apply(with_owner(creds.secret, body))
        assert creds.change is not None
        emit(EVENT_USER_UPDATED, creds.change)
    if not addresses:
        return Synced(
            _failed("ClusterNotReady", f"StreamCluster {u.cluster} has no broker with an address yet")
        )
    try:
        plan = apply_user(addresses, u, creds.password, password_new=creds.password_new)
    except (AdminFailed, BrokersUnreachable) as exc:
        return Synced(_failed("AdminFailed", str(exc)))
    if not plan.noop:
        emit(
            EVENT_USER_UPDATED,
            f"{u.principal}: {len(plan.add_acls)} ACL(s) added, {len(plan.remove_acls)} removed"
            + (", SCRAM credential set" if plan.upsert_scram else "")
            + (f", {', '.join(plan.delete_scram)} credential(s) removed" if plan.delete_scram else "")
            + (f", quotas {_quota_text(plan.quota_ops)}" if plan.quota_ops else ""),
        )
    reason = "UserUpdated" if not plan.noop else "UserInSync"
    conds = [
        Condition("Ready", True, reason, f"{u.principal} matches the spec"),
        Condition("Progressing", False, reason, "nothing left to do"),
        Condition("Degraded", False, "AsExpected", "no problems seen"),
    ]
    return Synced(conds, len(u.acls), u.quotas.status())


def _quota_text(ops: tuple[tuple[str, float | None], ...]) -> str:
    return ", ".join(f"{k}={v:.15g}" if v is not None else f"{k} removed" for k, v in ops)


def quotas_status(body: Mapping[str, Any], applied: dict[str, int | float]) -> dict[str, int | float | None]:
    """status.quotas as a merge patch: a field applied before and not now is sent as null (a merge patch
    merges objects key by key), and only such a field, so an unchanged status compares equal."""
    before = (body.get("status") or {}).get("quotas") or {}
    return {**{k: None for k in before if k not in applied}, **applied}


def reconcile_user_sync(kube: Kube, body: Mapping[str, Any], emit: Emit) -> dict[str, Any]:
    meta = body["metadata"]
    if is_paused(body):
        conds = [Condition("Progressing", False, "Paused", f"{PAUSED_ANNOTATION} is set; not reconciling")]
        return write_status(kube, body, conditions_status(body, conds))
    try:
        u = parse_user(meta["name"], meta["namespace"], body.get("spec") or {})
    except SpecError as exc:
        return write_status(kube, body, conditions_status(body, _failed("InvalidSpec", str(exc))))
    synced = _sync_user(kube, body, u, emit)
    desired = {
        **conditions_status(body, synced.conditions),
        "username": u.principal,
        "secret": user_secret_name(u),
        "acls": synced.acls,
    }
    if synced.quotas is not None:  # else the field keeps the quotas last applied
        desired["quotas"] = quotas_status(body, synced.quotas)
    return write_status(kube, body, desired)


def delete_user_sync(kube: Kube, body: Mapping[str, Any]) -> str:
    """Removes the user's ACLs, SCRAM credentials and client quotas (its Secret goes with the owner
    reference)."""
    meta = body["metadata"]
    try:
        u = parse_user(meta["name"], meta["namespace"], body.get("spec") or {})
    except SpecError:
        return "invalid spec: nothing was ever created on the brokers"
    cluster = fetch_cluster(kube, u.namespace, u.cluster)
    if cluster is None or cluster["metadata"].get("deletionTimestamp"):
        return f"StreamCluster {u.cluster} is gone (or going), and its users with it"
    addresses = cluster_addresses(kube, cluster)
    if not addresses:
        raise BrokersUnreachable(f"StreamCluster {u.cluster} has no broker with an address")
    try:
        return remove_user(addresses, u)
    except AdminFailed as exc:
        raise BrokersUnreachable(str(exc)) from exc


async def reconcile_user(kube: Kube, body: Mapping[str, Any], emit: Emit) -> dict[str, Any]:
    return await asyncio.to_thread(reconcile_user_sync, kube, body, emit)


async def delete_user(kube: Kube, body: Mapping[str, Any]) -> str:
    return await asyncio.to_thread(delete_user_sync, kube, body)
