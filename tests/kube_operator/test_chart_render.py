"""`helm lint` and `helm template` of the chart (skipped only when the helm binary is not built yet)."""

import json

import pytest
from streamraft_operator.install import rbac_rules
from streamraft_operator.spec import parse_cluster, parse_topic

from tests.kube_operator.chart import CHART, KUBE_VERSION, helm, helm_binary, render

pytestmark = pytest.mark.skipif(helm_binary() is None, reason="helm not built yet: run .ci/prepare-k8s")


def test_helm_lint() -> None:
    out = helm("lint", str(CHART), "--strict")
    assert out.returncode == 0, out.stdout + out.stderr
    full = helm(
        "lint",
        str(CHART),
        "--strict",
        "--set",
        "exampleCluster.enabled=true,metrics.serviceMonitor.enabled=true,metrics.prometheusRule.enabled=true",
    )
    assert full.returncode == 0, full.stdout + full.stderr


def test_default_render() -> None:
    docs = render()
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == ["ClusterRole", "ClusterRoleBinding", "Deployment", "Pod", "Service", "ServiceAccount"]
    role = next(d for d in docs if d["kind"] == "ClusterRole")
    assert role["rules"] == rbac_rules()
    deploy = next(d for d in docs if d["kind"] == "Deployment")
    container = deploy["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["--all-namespaces", "--metrics-port=8080", "--health-port=8081"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    binding = next(d for d in docs if d["kind"] == "ClusterRoleBinding")
    assert binding["subjects"][0]["name"] == deploy["spec"]["template"]["spec"]["serviceAccountName"]


def test_everything_enabled_renders_valid_resources() -> None:
    docs = render(
        "exampleCluster.enabled=true",
        "metrics.serviceMonitor.enabled=true",
        "metrics.prometheusRule.enabled=true",
        "metrics.grafanaDashboard.enabled=true",
        "operator.watchNamespaces={a,b}",
        namespace="demo",
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


def test_schema_rejects_bad_values() -> None:
    out = helm(
        "template",
        "rel",
        str(CHART),
        "--kube-version",
        KUBE_VERSION,
        "--set",
        "exampleCluster.topic.replicas=2",
    )
    assert out.returncode != 0
    assert "replicas" in out.stderr
    out = helm(
        "template", "rel", str(CHART), "--kube-version", KUBE_VERSION, "--set", "operator.metricPort=1"
    )
    assert out.returncode != 0 and "metricPort" in out.stderr
