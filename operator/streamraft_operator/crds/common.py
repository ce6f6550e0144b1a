"""Schema pieces shared by both CRDs and the CustomResourceDefinition envelope."""

from typing import Any

from streamraft_operator.constants import CONDITION_TYPES, GROUP, REASONS, VERSION

Schema = dict[str, Any]


def string(description: str, **extra: Any) -> Schema:
    return {"type": "string", "description": description, **extra}


def integer(description: str, **extra: Any) -> Schema:
    return {"type": "integer", "description": description, **extra}


def boolean(description: str, default: bool | None = None) -> Schema:
    out: Schema = {"type": "boolean", "description": description}
    if default is not None:
        out["default"] = default
    return out


def obj(description: str, properties: Schema, **extra: Any) -> Schema:
    return {"type": "object", "description": description, "properties": properties, **extra}


def cel(rule: str, message: str, **extra: Any) -> Schema:
    return {"rule": rule, "message": message, **extra}


def free_form(description: str) -> Schema:
    """A Kubernetes sub-object we pass through unchanged (affinity, tolerations, securityContext)."""
    return {"type": "object", "description": description, "x-kubernetes-preserve-unknown-fields": True}


def string_map(description: str) -> Schema:
    return {
        "type": "object",
        "description": description,
        "maxProperties": 64,
        "additionalProperties": {"type": "string", "maxLength": 4096},
    }


def conditions_schema() -> Schema:
    return {
        "type": "array",
        "description": "Ready, Progressing and Degraded; reasons are CamelCase from a fixed list.",
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"],
        "items": obj(
            "One condition.",
            {
                "type": string("Condition type.", enum=list(CONDITION_TYPES)),
                "status": string("True, False or Unknown.", enum=["True", "False", "Unknown"]),
                "reason": string("Why, in one CamelCase word.", enum=sorted(REASONS)),
                "message": string("What blocks or what happened, for humans."),
                "observedGeneration": integer("Generation this condition was computed for."),
                "lastTransitionTime": string("When status last changed.", format="date-time"),
            },
            required=["type", "status", "reason"],
        ),
    }


def printer(name: str, json_path: str, kind: str = "string", **extra: Any) -> Schema:
    return {"name": name, "type": kind, "jsonPath": json_path, **extra}


def crd(
    *,
    kind: str,
    plural: str,
    short: str,
    description: str,
    spec: Schema,
    status: Schema,
    columns: list[Schema],
    scale: bool,
) -> dict[str, object]:
    subresources: Schema = {"status": {}}
    if scale:
        subresources["scale"] = {
            "specReplicasPath": ".spec.replicas",
            "statusReplicasPath": ".status.readyReplicas",
            "labelSelectorPath": ".status.selector",
        }
    schema = obj(description, {"apiVersion": {"type": "string"}, "kind": {"type": "string"}})
    schema["properties"]["metadata"] = {"type": "object"}
    schema["properties"]["spec"] = spec
    schema["properties"]["status"] = status
    schema["required"] = ["spec"]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": [short],
                "categories": ["streamraft"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": schema},
                    "subresources": subresources,
                    "additionalPrinterColumns": columns,
                }
            ],
        },
    }
