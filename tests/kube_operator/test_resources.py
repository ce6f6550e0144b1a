"""Desired objects of a StreamCluster, built without a cluster."""

from typing import Any

import yaml
from streamraft_operator.constants import CONFIG_HASH_ANNOTATION
from streamraft_operator.resources import config_hash, config_map, desired_objects, peers, stateful_set
from streamraft_operator.spec import parse_cluster


def _cluster(**spec: Any) -> Any:
    return parse_cluster("demo", "team-a", {"replicas": 3, **spec})


def test_objects_in_apply_order_and_service_monitor_only_with_its_crd() -> None:
    c = _cluster(metrics={"enabled": True, "serviceMonitor": True})
    kinds = [o["kind"] for o in desired_objects(c, service_monitor_crd=False)]
    assert kinds == ["ConfigMap", "Service", "Service", "StatefulSet", "PodDisruptionBudget"]
    with_sm = [o["kind"] for o in desired_objects(c, service_monitor_crd=True)]
    assert with_sm[-1] == "ServiceMonitor"
    for obj in desired_objects(c, service_monitor_crd=True):
        assert obj["metadata"]["namespace"] == "team-a"
        assert obj["metadata"]["labels"]["app.kubernetes.io/instance"] == "demo"


def test_statefulset_policies_probes_and_hardening() -> None:
    sts = stateful_set(_cluster(storage={"size": "5Gi", "storageClass": "fast"}))
    spec = sts["spec"]
    assert spec["podManagementPolicy"] == "Parallel"
    assert spec["updateStrategy"] == {"type": "OnDelete"}
    assert spec["serviceName"] == "demo-headless"
    claim = spec["volumeClaimTemplates"][0]["spec"]
    assert claim["resources"]["requests"]["storage"] == "5Gi"
    assert claim["storageClassName"] == "fast"
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert probe in container
    assert container["lifecycle"]["preStop"]["exec"]["command"][:3] == [
        "python",
        "-m",
        "streamraft_operator.prestop",
    ]
    script = container["command"][2]
    assert '--node-id "${POD_NAME##*-}"' in script
    assert '--advertise "${POD_IP}:9092"' in script


def test_headless_service_publishes_not_ready_pods() -> None:
    objs = desired_objects(_cluster(), service_monitor_crd=False)
    headless = next(o for o in objs if o["metadata"]["name"] == "demo-headless")
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["publishNotReadyAddresses"] is True


def test_config_hash_changes_with_config_not_with_replicas() -> None:
    base = _cluster(config={"num.partitions": 3})
    assert config_hash(base) == config_hash(
        parse_cluster("demo", "team-a", {"replicas": 5, "config": {"num.partitions": 3}})
    )
    changed = _cluster(config={"num.partitions": 4})
    assert config_hash(base) != config_hash(changed)
    annotations = stateful_set(changed)["spec"]["template"]["metadata"]["annotations"]
    assert annotations[CONFIG_HASH_ANNOTATION] == config_hash(changed)


def test_peers_list_every_ordinal() -> None:
    assert peers(_cluster()).splitlines() == [
        f"{i}@demo-{i}.demo-headless.team-a.svc.cluster.local:9093" for i in range(3)
    ]


def test_rack_spreads_pods_and_user_template_is_applied() -> None:
    c = _cluster(
        rack={"topologyKey": "topology.kubernetes.io/zone"},
        template={
            "pod": {"labels": {"team": "a"}, "tolerations": [{"key": "dedicated", "operator": "Exists"}]}
        },
    )
    pod = stateful_set(c)["spec"]["template"]
    term = pod["spec"]["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]
    assert term["podAffinityTerm"]["topologyKey"] == "topology.kubernetes.io/zone"
    assert pod["metadata"]["labels"]["team"] == "a"
    assert pod["spec"]["tolerations"] == [{"key": "dedicated", "operator": "Exists"}]


def test_broker_config_file_uses_the_brokers_setting_names() -> None:
    text = config_map(_cluster(config={"num.partitions": 3, "auto.create.topics.enable": True}))["data"][
        "broker.yaml"
    ]
    assert yaml.safe_load(text) == {"auto_create_topics": True, "default_partitions": 3}
    assert yaml.safe_load(config_map(_cluster())["data"]["broker.yaml"]) == {}
