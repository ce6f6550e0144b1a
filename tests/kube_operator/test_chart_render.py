"""`helm lint` and `helm template` of the chart with Helm 3 and Helm 4 (each skipped only while its binary is
not built yet)."""

import json
from typing import Any

import pytest
from streamraft_operator.install import (
    cluster_scoped_rules,
    deployment,
    leader_election_rules,
    namespaced_rules,
    rbac_rules,
)
from streamraft_operator.resources import network_policy
from streamraft_operator.spec import parse_cluster, parse_topic

from tests.kube_operator.chart import CHART, HELMS, KUBE_VERSION, helm, helm_binary, render


@pytest.fixture(params=HELMS)
def helm_name(request: pytest.FixtureRequest) -> str:
    name = str(request.param)
    if helm_binary(name) is None:
        pytest.skip(f"{name} not built yet: run .ci/prepare-k8s")
    return name


def test_the_two_helms_are_major_versions_3_and_4(helm_name: str) -> None:
    out = helm("version", "--short", binary=helm_name)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("v4." if helm_name == "helm4" else "v3."), out.stdout


def test_helm_lint(helm_name: str) -> None:
    out = helm("lint", str(CHART), "--strict", binary=helm_name)
    assert out.returncode == 0, out.stdout + out.stderr
    full = helm(
        "lint",
        str(CHART),
        "--strict",
        "--set",
        "exampleCluster.enabled=true,metrics.serviceMonitor.enabled=true,metrics.prometheusRule.enabled=true",
        binary=helm_name,
    )
    assert full.returncode == 0, full.stdout + full.stderr


def test_default_render(helm_name: str) -> None:
    docs = render(binary=helm_name)
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == [
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "Pod",
        "Role",
        "RoleBinding",
        "Service",
        "ServiceAccount",
    ]
    role = next(d for d in docs if d["kind"] == "ClusterRole")
    assert role["rules"] == rbac_rules()
    deploy = next(d for d in docs if d["kind"] == "Deployment")
    container = deploy["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == [
        "--all-namespaces",
        "--metrics-port=8080",
        "--health-port=8081",
        "--leader-elect",
        "--leader-elect-resource-name=rel-streamraft-operator",
    ]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    binding = next(d for d in docs if d["kind"] == "ClusterRoleBinding")
    assert binding["subjects"][0]["name"] == deploy["spec"]["template"]["spec"]["serviceAccountName"]


def test_everything_enabled_renders_valid_resources(helm_name: str) -> None:
    docs = render(
        "exampleCluster.enabled=true",
        "metrics.serviceMonitor.enabled=true",
        "metrics.prometheusRule.enabled=true",
        "metrics.grafanaDashboard.enabled=true",
        "operator.watchNamespaces={a,b}",
        namespace="demo",
        binary=helm_name,
    )
    by_kind = {d["kind"]: d for d in docs}
    for kind in ("StreamCluster", "StreamTopic", "ServiceMonitor", "PrometheusRule", "ConfigMap", "Pod"):
        assert kind in by_kind, kind
    cluster = by_kind["StreamCluster"]
    parse_cluster(cluster["metadata"]["name"], "demo", cluster["spec"])
    parse_topic(by_kind["StreamTopic"]["metadata"]["name"], "demo", by_kind["StreamTopic"]["spec"])
    alerts = {r["alert"] for g in by_kind["PrometheusRule"]["spec"]["groups"] for r in g["rules"]}
    assert {
        "StreamraftUnderReplicatedPartitions",
        "StreamraftLeaderlessPartitions",
        "StreamraftBrokerDown",
    } <= alerts
    assert {"StreamraftBrokerDiskFilling", "StreamraftOperatorErrors"} <= alerts
    json.loads(by_kind["ConfigMap"]["data"]["streamraft.json"])
    test_pod = by_kind["Pod"]
    assert test_pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    env = {e["name"]: e.get("value") for e in test_pod["spec"]["containers"][0]["env"]}
    assert env["BOOTSTRAP"] == "demo-headless.demo.svc.cluster.local:9092"
    args = by_kind["Deployment"]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[:2] == ["--namespace=a", "--namespace=b"]


def test_schema_rejects_bad_values(helm_name: str) -> None:
    out = helm(
        "template",
        "rel",
        str(CHART),
        "--kube-version",
        KUBE_VERSION,
        "--set",
        "exampleCluster.topic.replicas=2",
        binary=helm_name,
    )
    assert out.returncode != 0
    assert "replicas" in out.stderr
    out = helm(
        "template",
        "rel",
        str(CHART),
        "--kube-version",
        KUBE_VERSION,
        "--set",
        "operator.metricPort=1",
        binary=helm_name,
    )
    assert out.returncode != 0 and "metricPort" in out.stderr


def test_watching_namespaces_grants_roles_there_and_only_cluster_scoped_reads_cluster_wide(
    helm_name: str,
) -> None:
    docs = render("operator.watchNamespaces={team-a,team-b}", binary=helm_name)

    def watched(kind: str) -> dict[str, dict[str, Any]]:
        return {
            d["metadata"]["namespace"]: d
            for d in docs
            if d["kind"] == kind and not d["metadata"]["name"].endswith("-leader-election")
        }

    roles, bindings = watched("Role"), watched("RoleBinding")
    assert set(roles) == set(bindings) == {"team-a", "team-b"}
    assert roles["team-a"]["rules"] == namespaced_rules()
    assert any("secrets" in r["resources"] for r in roles["team-a"]["rules"])
    binding = bindings["team-b"]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": roles["team-b"]["metadata"]["name"],
    }
    assert binding["subjects"][0]["namespace"] == "streamraft-system"
    cluster_role = next(d for d in docs if d["kind"] == "ClusterRole")
    assert cluster_role["rules"] == cluster_scoped_rules()
    granted = {res for r in cluster_role["rules"] for res in r["resources"]}
    assert granted == {"namespaces", "customresourcedefinitions", "storageclasses"}
    # Opting out keeps the single ClusterRole.
    wide = render("operator.watchNamespaces={team-a}", "rbac.namespaced=false", binary=helm_name)
    assert [d["metadata"]["name"] for d in wide if d["kind"] == "Role"] == [
        "rel-streamraft-operator-leader-election"
    ]
    assert next(d for d in wide if d["kind"] == "ClusterRole")["rules"] == rbac_rules()


def test_two_replicas_elect_a_leader_over_a_lease_in_the_release_namespace_only(helm_name: str) -> None:
    docs = render("operator.watchNamespaces={team-a}", namespace="ops", binary=helm_name)
    deploy = next(d for d in docs if d["kind"] == "Deployment")
    assert deploy["spec"]["replicas"] == 2
    assert deploy["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    pod = deploy["spec"]["template"]["spec"]
    env = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in pod["containers"][0]["env"]}
    assert env == {"POD_NAME": "metadata.name", "POD_NAMESPACE": "metadata.namespace"}
    assert "--leader-elect" in pod["containers"][0]["args"]
    spread = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]
    assert spread["podAffinityTerm"]["labelSelector"]["matchLabels"].items() <= (
        deploy["spec"]["selector"]["matchLabels"].items()
    )
    lease_roles = [
        d for d in docs if d["kind"] == "Role" and d["metadata"]["name"].endswith("leader-election")
    ]
    assert [r["metadata"]["namespace"] for r in lease_roles] == ["ops"]
    assert lease_roles[0]["rules"] == leader_election_rules()
    # Leases appear in no other Role and not in the ClusterRole.
    for doc in docs:
        if doc["kind"] in ("Role", "ClusterRole") and doc not in lease_roles:
            assert all("leases" not in r["resources"] for r in doc["rules"]), doc["metadata"]
    binding = next(
        d for d in docs if d["kind"] == "RoleBinding" and d["metadata"]["name"].endswith("leader-election")
    )
    assert binding["metadata"]["namespace"] == "ops"
    assert binding["subjects"][0]["name"] == pod["serviceAccountName"]
    one = next(d for d in render("operator.replicas=1", binary=helm_name) if d["kind"] == "Deployment")
    assert one["spec"]["replicas"] == 1


def test_security_context_override_is_off_unless_the_chart_allows_it(helm_name: str) -> None:
    def args(*set_args: str) -> list[str]:
        docs = render(*set_args, binary=helm_name)
        deploy = next(d for d in docs if d["kind"] == "Deployment")
        out: list[str] = deploy["spec"]["template"]["spec"]["containers"][0]["args"]
        return out

    assert "--allow-security-context-override" not in args()
    assert "--allow-security-context-override" in args("operator.allowSecurityContextOverride=true")


def test_operator_pods_carry_the_labels_the_admin_port_admits(helm_name: str) -> None:
    """The NetworkPolicy lets the operator reach brokers' admin API by its pod labels: the chart's and the
    plain manifest's operator pods must carry them."""
    admitted = network_policy(parse_cluster("demo", "ns", {"replicas": 3}))["spec"]["ingress"]
    admin_rule = next(r for r in admitted if r["ports"][0]["port"] == 9645)
    wanted = next(p["podSelector"]["matchLabels"] for p in admin_rule["from"] if "namespaceSelector" in p)
    chart_pod = next(d for d in render(binary=helm_name) if d["kind"] == "Deployment")["spec"]["template"]
    manifest_pod = deployment()["spec"]["template"]
    for pod in (chart_pod, manifest_pod):
        assert wanted.items() <= pod["metadata"]["labels"].items(), pod["metadata"]["labels"]
