"""Pure parts of the node agent: $(VAR) expansion, downward-API fields, DNS records."""

from __future__ import annotations

import pytest

from tests.k8s.nodeagent.api import Obj
from tests.k8s.nodeagent.dns import hosts_entries, hosts_for_namespace
from tests.k8s.nodeagent.envvars import EnvError, expand, field_value
from tests.k8s.nodeagent.kubeletapi import split_runs
from tests.k8s.nodeagent.provisioner import OURS, PROVISIONER, expansion
from tests.k8s.nodeagent.volumes import refreshed


def _pod(name: str, ns: str, ip: str, ready: bool, labels: dict[str, str], *, subdomain: str = "") -> Obj:
    spec: Obj = {"nodeName": "node-0", "containers": []}
    if subdomain:
        spec["subdomain"] = subdomain
        spec["hostname"] = name
    return {
        "metadata": {"name": name, "namespace": ns, "uid": f"uid-{name}", "labels": labels},
        "spec": spec,
        "status": {
            "podIP": ip,
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def _svc(name: str, ns: str, selector: dict[str, str], headless: bool, **spec: object) -> Obj:
    body: Obj = {"selector": selector, "clusterIP": "None" if headless else "10.96.0.10", **spec}
    return {"metadata": {"name": name, "namespace": ns}, "spec": body}


def test_expand_replaces_known_keeps_unknown_and_unescapes() -> None:
    env = {"A": "1", "B": "two"}
    assert expand("$(A)-$(B)-$(C)-$$(A)", env) == "1-two-$(C)-$(A)"


def test_field_value_paths() -> None:
    pod = _pod("web-0", "ns1", "10.244.9.5", True, {"app": "web"})
    assert field_value(pod, "metadata.name", "10.244.9.5", "10.244.9.1") == "web-0"
    assert field_value(pod, "status.podIP", "10.244.9.5", "10.244.9.1") == "10.244.9.5"
    assert field_value(pod, "spec.nodeName", "", "") == "node-0"
    assert field_value(pod, "metadata.labels['app']", "", "") == "web"
    with pytest.raises(EnvError, match="unsupported fieldRef"):
        field_value(pod, "status.nonsense", "", "")


def test_headless_service_records_follow_readiness() -> None:
    pods = [
        _pod("web-0", "ns1", "10.244.9.2", True, {"app": "web"}, subdomain="web"),
        _pod("web-1", "ns1", "10.244.9.3", False, {"app": "web"}, subdomain="web"),
        _pod("other", "ns2", "10.244.9.4", True, {"app": "web"}),
    ]
    hosts = hosts_for_namespace(hosts_entries(pods, [_svc("web", "ns1", {"app": "web"}, True)]), "ns1")
    assert "10.244.9.2\tweb-0.web.ns1.svc.cluster.local web-0.web web-0.web.ns1 web-0.web.ns1.svc" in hosts
    assert "10.244.9.2\tweb.ns1.svc.cluster.local web web.ns1 web.ns1.svc" in hosts
    assert "10.244.9.3" not in hosts  # not ready, and the service does not publish not-ready addresses
    assert "10.244.9.4" not in hosts  # other namespace, not selected


def test_publish_not_ready_and_cross_namespace_names() -> None:
    pods = [_pod("db-0", "ns1", "10.244.9.7", False, {"app": "db"}, subdomain="db")]
    svc = _svc("db", "ns1", {"app": "db"}, True, publishNotReadyAddresses=True)
    hosts = hosts_for_namespace(hosts_entries(pods, [svc]), "elsewhere")
    assert "10.244.9.7\tdb-0.db.ns1.svc.cluster.local db-0.db.ns1 db-0.db.ns1.svc" in hosts
    assert "\tdb-0.db " not in hosts  # short forms only within the namespace


def test_cluster_ip_service_only_without_port_translation() -> None:
    pods = [_pod("a", "ns1", "10.244.9.8", True, {"app": "a"})]
    plain = _svc("plain", "ns1", {"app": "a"}, False, ports=[{"port": 80, "targetPort": 80}])
    mapped = _svc("mapped", "ns1", {"app": "a"}, False, ports=[{"port": 80, "targetPort": 8080}])
    hosts = hosts_for_namespace(hosts_entries(pods, [plain, mapped]), "ns1")
    assert "plain.ns1.svc.cluster.local" in hosts
    assert "mapped" not in hosts
    assert "10.96." not in hosts  # a ClusterIP never appears: nothing would route it


def test_log_runs_split_on_start_markers() -> None:
    data = b"--- start t0 restart=0\nfirst\n--- start t1 restart=1\nsecond\nmore\n"
    assert split_runs(data) == [b"first\n", b"second\nmore\n"]
    assert split_runs(b"") == [b""]


def test_projected_secret_volumes_follow_updates_but_token_projections_do_not() -> None:
    secret = {"secret": {"name": "a"}}
    assert refreshed({"name": "v", "secret": {"secretName": "a"}})
    assert refreshed({"name": "v", "projected": {"sources": [secret, {"configMap": {"name": "b"}}]}})
    token = {"serviceAccountToken": {"path": "token"}}
    assert not refreshed({"name": "v", "projected": {"sources": [secret, token]}})
    assert not refreshed({"name": "v", "emptyDir": {}})


def _claim(requested: str, capacity: str) -> Obj:
    return {
        "metadata": {"name": "data-demo-0", "namespace": "ns"},
        "spec": {"resources": {"requests": {"storage": requested}}, "volumeName": "pv-1"},
        "status": {"phase": "Bound", "capacity": {"storage": capacity}},
    }


OUR_PV: Obj = {"metadata": {"annotations": {OURS: PROVISIONER}}}


@pytest.mark.parametrize(
    ("pvc", "pv", "sc", "grow_to"),
    [
        pytest.param(_claim("2Gi", "1Gi"), OUR_PV, {"allowVolumeExpansion": True}, "2Gi", id="grows"),
        pytest.param(_claim("2Gi", "1Gi"), OUR_PV, {"allowVolumeExpansion": False}, None, id="class forbids"),
        pytest.param(_claim("2Gi", "1Gi"), OUR_PV, {}, None, id="class silent: not allowed"),
        pytest.param(_claim("2Gi", "1Gi"), OUR_PV, None, None, id="no class"),
        pytest.param(_claim("2Gi", "1Gi"), {"metadata": {}}, {"allowVolumeExpansion": True}, None,
                     id="a PV we did not provision"),
        pytest.param(_claim("1024Mi", "1Gi"), OUR_PV, {"allowVolumeExpansion": True}, None,
                     id="already there"),
        pytest.param(_claim("1Gi", "2Gi"), OUR_PV, {"allowVolumeExpansion": True}, None, id="never shrinks"),
    ],
)  # fmt: skip
def test_volume_expansion_stand_in_acts_only_where_allowed(
    pvc: Obj, pv: Obj | None, sc: Obj | None, grow_to: str | None
) -> None:
    assert expansion(pvc, pv, sc) == grow_to
