"""Chart checks that need no helm binary: values.yaml and values.schema.json agree, files parse."""

import json
from typing import Any

import yaml
from streamraft_operator.install import rbac_rules

from tests.kube_operator.chart import CHART

_JSON_TYPES = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "integer": int,
    "number": (int, float),
}


def _check(value: Any, schema: dict[str, Any], path: str, problems: list[str]) -> None:
    """A small subset of JSON Schema: enough to catch a value missing from the schema or typed differently."""
    kind = schema.get("type")
    if kind is not None and not isinstance(value, _JSON_TYPES[kind]):
        problems.append(f"{path}: {value!r} is not {kind}")
        return
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{path}: {value!r} not in {schema['enum']}")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for key, sub in value.items():
            if key in props:
                _check(sub, props[key], f"{path}.{key}", problems)
            elif schema.get("additionalProperties") is False:
                problems.append(f"{path}.{key}: not in values.schema.json")


def test_values_conform_to_schema() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    schema = json.loads((CHART / "values.schema.json").read_text())
    problems: list[str] = []
    _check(values, schema, "values", problems)
    assert problems == []


def test_schema_check_catches_a_stray_key() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    problems: list[str] = []
    _check({"operator": {"metricPort": 1}, "image": {"pullPolicy": "Sometimes"}}, schema, "values", problems)
    assert problems == [
        "values.operator.metricPort: not in values.schema.json",
        "values.image.pullPolicy: 'Sometimes' not in ['Always', 'IfNotPresent', 'Never']",
    ]


def test_every_top_level_value_is_commented() -> None:
    lines = (CHART / "values.yaml").read_text().splitlines()
    for i, line in enumerate(lines):
        if line and not line.startswith((" ", "#")) and ":" in line:
            assert lines[i - 1].lstrip().startswith("#"), f"values.yaml: {line!r} has no comment above it"


def test_generated_rbac_rules_file_matches_source() -> None:
    assert yaml.safe_load((CHART / "files" / "rbac-rules.yaml").read_text()) == rbac_rules()


def test_chart_metadata_and_dashboard() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2" and chart["name"] == "streamraft"
    dashboard = json.loads((CHART / "files" / "dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert any("streamraft_operator_cluster_under_replicated_partitions" in e for e in exprs)
