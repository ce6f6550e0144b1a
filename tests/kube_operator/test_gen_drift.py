"""Generated CRDs, RBAC rules and manifests must match their Python source."""

from pathlib import Path

import yaml
from streamraft_operator import gen

ROOT = Path(__file__).resolve().parents[2]


def test_generated_files_are_up_to_date() -> None:
    bad = gen.stale(ROOT)
    assert bad == [], f"stale generated files {bad}: run `.venv/bin/python -m streamraft_operator.gen`"


def test_drift_check_detects_a_hand_edit(tmp_path: Path) -> None:
    assert gen.main(["--root", str(tmp_path)]) == 0
    assert gen.main(["--root", str(tmp_path), "--check"]) == 0
    crd = tmp_path / "charts/streamraft/crds/streamtopics.streamraft.io.yaml"
    crd.write_text(crd.read_text().replace("replicas must be odd", "replicas should be odd"))
    assert gen.stale(tmp_path) == ["charts/streamraft/crds/streamtopics.streamraft.io.yaml"]
    assert gen.main(["--root", str(tmp_path), "--check"]) == 1


def test_chart_and_manifests_carry_identical_crds() -> None:
    chart = [yaml.safe_load(p.read_text()) for p in sorted((ROOT / "charts/streamraft/crds").glob("*.yaml"))]
    manifests = list(yaml.safe_load_all((ROOT / "manifests/crds.yaml").read_text()))
    assert sorted(c["metadata"]["name"] for c in chart) == [
        "streamclusters.streamraft.io",
        "streamtopics.streamraft.io",
        "streamusers.streamraft.io",
    ]
    assert sorted(chart, key=lambda c: c["metadata"]["name"]) == sorted(
        manifests, key=lambda c: c["metadata"]["name"]
    )


def test_install_manifest_kinds() -> None:
    docs = list(yaml.safe_load_all((ROOT / "manifests/install.yaml").read_text()))
    kinds = [d["kind"] for d in docs]
    assert kinds == [
        "Namespace",
        "CustomResourceDefinition",
        "CustomResourceDefinition",
        "CustomResourceDefinition",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "Deployment",
    ]
    rules = docs[5]["rules"]
    # Least privilege: never a wildcard. Secrets only because the operator generates each cluster's CA,
    # broker certificates and admin token (and reads them back to renew and to call the admin API).
    for rule in rules:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"], rule
    secret_rules = [r for r in rules if "secrets" in r["resources"]]
    assert len(secret_rules) == 1 and secret_rules[0]["apiGroups"] == [""]
    # The leader-election Lease: a Role in the operator's namespace, bound to its ServiceAccount.
    lease_role, lease_binding, deploy = docs[7], docs[8], docs[9]
    assert lease_role["metadata"]["namespace"] == deploy["metadata"]["namespace"] == "streamraft-system"
    assert lease_role["rules"] == [
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "verbs": ["get", "list", "watch", "create", "update"],
        }
    ]
    assert lease_binding["roleRef"]["name"] == lease_role["metadata"]["name"]
    assert all("leases" not in r["resources"] for r in rules)
    assert deploy["spec"]["replicas"] == 2
    assert "--leader-elect" in deploy["spec"]["template"]["spec"]["containers"][0]["args"]
