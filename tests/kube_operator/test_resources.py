"""Desired objects of a StreamCluster, built without a cluster."""

import subprocess
from typing import Any

import yaml
from streamraft_operator.constants import CONFIG_HASH_ANNOTATION
from streamraft_operator.resources import (
    cluster_members,
    config_hash,
    config_map,
    desired_objects,
    stateful_set,
)
from streamraft_operator.spec import parse_cluster


def _cluster(**spec: Any) -> Any:
    return parse_cluster("demo", "team-a", {"replicas": 3, **spec})


def test_objects_in_apply_order_and_service_monitor_only_with_its_crd() -> None:
    c = _cluster(metrics={"enabled": True, "serviceMonitor": True})
    kinds = [o["kind"] for o in desired_objects(c, service_monitor_crd=False)]
    assert kinds == ["ConfigMap", "Service", "Service", "StatefulSet", "PodDisruptionBudget", "NetworkPolicy"]
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
    assert '--node-id "$(( ${POD_NAME##*-} + 1 ))"' in script
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["STREAMRAFT_REPLICATION"] == "raft"
    assert env["STREAMRAFT_CLUSTER_MEMBERS"] == cluster_members(_cluster())
    assert env["STREAMRAFT_RAFT_LISTEN"] == "0.0.0.0:9093"


def test_start_script_node_id_is_ordinal_plus_one_in_a_real_shell() -> None:
    script = stateful_set(_cluster())["spec"]["template"]["spec"]["containers"][0]["command"][2]
    assert script.startswith("exec streamraft broker ")
    # The real script through a real shell, with the broker swapped for echo: what would the broker get?
    echoed = "exec echo " + script.removeprefix("exec streamraft broker ")
    out = subprocess.run(
        ["sh", "-c", echoed], env={"POD_NAME": "demo-7"}, capture_output=True, text=True, check=True
    )
    args = out.stdout.split()
    assert args[args.index("--node-id") + 1] == "8", out


def test_headless_service_publishes_not_ready_pods() -> None:
    objs = desired_objects(_cluster(), service_monitor_crd=False)
    headless = next(o for o in objs if o["metadata"]["name"] == "demo-headless")
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["publishNotReadyAddresses"] is True


def test_config_hash_changes_with_config_and_with_the_member_list() -> None:
    base = _cluster(config={"num.partitions": 3})
    assert config_hash(base) == config_hash(_cluster(config={"num.partitions": 3}, image="other:1"))
    # Static membership: every broker must be restarted (one at a time) to learn a scaled member list.
    assert config_hash(base) != config_hash(
        parse_cluster("demo", "team-a", {"replicas": 5, "config": {"num.partitions": 3}})
    )
    changed = _cluster(config={"num.partitions": 4})
    assert config_hash(base) != config_hash(changed)
    annotations = stateful_set(changed)["spec"]["template"]["metadata"]["annotations"]
    assert annotations[CONFIG_HASH_ANNOTATION] == config_hash(changed)


def test_cluster_members_name_every_ordinal_by_pod_dns_with_node_id_ordinal_plus_one() -> None:
    dns = "demo-{}.demo-headless.team-a.svc.cluster.local"
    assert cluster_members(_cluster()).split(",") == [
        f"{i + 1}={dns.format(i)}:9092/{dns.format(i)}:9093" for i in range(3)
    ]
    custom = parse_cluster("demo", "team-a", {"replicas": 1, "listeners": {"kafka": {"port": 19092}}})
    assert cluster_members(custom) == f"1={dns.format(0)}:19092/{dns.format(0)}:9093"


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
