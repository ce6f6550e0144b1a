"""Shape of the CRDs: names, subresources, printer columns, CEL rules and their messages."""

from typing import Any

from streamraft_operator.constants import REASONS
from streamraft_operator.crds import stream_cluster_crd, stream_topic_crd


def _version(crd: dict[str, Any]) -> dict[str, Any]:
    versions = crd["spec"]["versions"]
    assert len(versions) == 1
    out: dict[str, Any] = versions[0]
    return out


def _rules(schema: dict[str, Any]) -> dict[str, str]:
    return {v["rule"]: v["message"] for v in schema.get("x-kubernetes-validations", [])}


def test_cluster_names_scale_and_columns() -> None:
    crd: dict[str, Any] = stream_cluster_crd()
    assert crd["metadata"]["name"] == "streamclusters.streamraft.io"
    assert crd["spec"]["names"]["shortNames"] == ["srcluster"]
    v = _version(crd)
    assert v["name"] == "v1alpha1"
    assert v["subresources"]["scale"]["specReplicasPath"] == ".spec.replicas"
    assert "status" in v["subresources"]
    assert [c["name"] for c in v["additionalPrinterColumns"]] == [
        "Ready",
        "Replicas",
        "ReadyReplicas",
        "Bootstrap",
        "Age",
    ]


def test_cluster_config_is_an_allow_list_with_types() -> None:
    spec = _version(stream_cluster_crd())["schema"]["openAPIV3Schema"]["properties"]["spec"]
    config = spec["properties"]["config"]
    # Structural schemas forbid additionalProperties beside properties; unknown keys are rejected by the
    # API server's strict field validation instead (checked end to end in tests/k8s).
    assert "additionalProperties" not in config
    assert "x-kubernetes-preserve-unknown-fields" not in config
    assert config["properties"]["auto.create.topics.enable"]["type"] == "boolean"
    assert config["properties"]["socket.request.max.bytes"]["minimum"] == 1024
    assert "x-kubernetes-preserve-unknown-fields" not in spec


def test_topic_cel_rules_and_messages() -> None:
    crd: dict[str, Any] = stream_topic_crd()
    assert crd["spec"]["names"]["shortNames"] == ["srtopic"]
    v = _version(crd)
    assert "scale" not in v["subresources"]
    spec = v["schema"]["openAPIV3Schema"]["properties"]["spec"]
    props = spec["properties"]
    assert _rules(props["clusterRef"]) == {"self == oldSelf": "clusterRef is immutable"}
    assert _rules(props["partitions"]) == {
        "self >= oldSelf": "partitions may only grow (Kafka cannot remove partitions)"
    }
    assert _rules(props["replicas"]) == {"self % 2 == 1": "replicas must be odd (1, 3, 5 or 7)"}
    assert props["partitions"]["minimum"] == 1
    assert spec["required"] == ["clusterRef"]
    assert [c["name"] for c in v["additionalPrinterColumns"]] == [
        "Cluster",
        "Ready",
        "Partitions",
        "Replicas",
        "Age",
    ]


def test_status_conditions_reasons_are_the_fixed_camel_case_list() -> None:
    for crd in (stream_cluster_crd(), stream_topic_crd()):
        status: Any = _version(crd)["schema"]["openAPIV3Schema"]["properties"]["status"]
        cond = status["properties"]["conditions"]["items"]["properties"]
        assert cond["type"]["enum"] == ["Ready", "Progressing", "Degraded"]
        assert cond["reason"]["enum"] == sorted(REASONS)
        for reason in REASONS:
            assert reason[0].isupper() and reason.isalnum(), reason


def test_cluster_status_has_per_broker_fields() -> None:
    status: Any = _version(stream_cluster_crd())["schema"]["openAPIV3Schema"]["properties"]["status"]
    broker = status["properties"]["brokers"]["items"]["properties"]
    assert set(broker) == {"id", "pod", "ready", "partitionsLed", "raftLag", "storage"}
    assert {"observedGeneration", "readyReplicas", "bootstrap", "conditions"} <= set(status["properties"])
