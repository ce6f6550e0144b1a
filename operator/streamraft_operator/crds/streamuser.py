"""StreamUser: a Kafka user of a StreamCluster (credentials, ACLs, quotas), managed through the Admin API."""

from streamraft_operator.constants import USER_KIND, USER_PLURAL
from streamraft_operator.crds.common import Schema, cel, conditions_schema, crd, integer, obj, printer, string
from streamraft_operator.userspec import (
    AUTH_TYPES,
    MAX_BYTE_RATE,
    OPERATIONS,
    PATTERN_TYPES,
    PERMISSIONS,
    RESOURCE_TYPES,
)


def _acl() -> Schema:
    resource = obj(
        "The resource the rule is about (Kafka's resource pattern).",
        {
            "type": string("Resource type.", enum=list(RESOURCE_TYPES)),
            "name": string(
                "Resource name (or prefix); a cluster's is always kafka-cluster.", minLength=1, maxLength=255
            ),
            "patternType": string(
                "literal: the name exactly; prefix: names starting with it.",
                enum=list(PATTERN_TYPES),
                default="literal",
            ),
        },
        required=["type"],
        **{
            "x-kubernetes-validations": [
                cel(
                    "self.type == 'cluster' || has(self.name)",
                    "resource.name is required unless type is cluster",
                ),
                cel(
                    "self.type != 'cluster' || !has(self.name) || self.name == 'kafka-cluster'",
                    "the cluster resource is named kafka-cluster",
                ),
            ]
        },
    )
    return obj(
        "One Kafka ACL rule for this user's principal.",
        {
            "resource": resource,
            "operations": {
                "type": "array",
                "description": "Operations the rule allows or denies.",
                "minItems": 1,
                "maxItems": len(OPERATIONS),
                "items": string("A Kafka ACL operation.", enum=list(OPERATIONS)),
            },
            "host": string(
                "Client host the rule applies to; * is any.", default="*", minLength=1, maxLength=255
            ),
            "type": string("allow or deny.", enum=list(PERMISSIONS), default="allow"),
        },
        required=["resource", "operations"],
    )


def _quota_fields() -> Schema:
    return {
        "producerByteRate": integer(
            "Produce bytes per second per broker (Kafka's producer_byte_rate).",
            minimum=1,
            maximum=MAX_BYTE_RATE,
        ),
        "consumerByteRate": integer(
            "Fetch bytes per second per broker (Kafka's consumer_byte_rate).",
            minimum=1,
            maximum=MAX_BYTE_RATE,
        ),
        "requestPercentage": {
            "type": "number",
            "description": "Percentage of one request handler thread's time (Kafka's request_percentage).",
            "minimum": 0,
            "exclusiveMinimum": True,
        },
    }


def _spec() -> Schema:
    cluster = string("Name of the StreamCluster (same namespace). Immutable.", minLength=1, maxLength=253)
    cluster["x-kubernetes-validations"] = [cel("self == oldSelf", "cluster is immutable")]
    return obj(
        "Desired user.",
        {
            "cluster": cluster,
            "authentication": obj(
                "How the user authenticates; the operator writes its credentials to the Secret "
                "<name>-streamuser (password and sasl.jaas.config, or a client certificate from the "
                "cluster CA).",
                {"type": string("scram-sha-512 or tls.", enum=list(AUTH_TYPES))},
                required=["type"],
            ),
            "authorization": obj(
                "Kafka ACLs of the user's principal; ACLs of that principal not listed here are removed.",
                {"acls": {"type": "array", "description": "ACL rules.", "maxItems": 256, "items": _acl()}},
            ),
            "quotas": obj(
                "Client quotas of the user: Kafka's quota entity user=<principal name> (alice, or CN=alice "
                "for a tls user) holds exactly these values; a value not set here is removed from it.",
                _quota_fields(),
            ),
        },
        required=["cluster", "authentication"],
    )


def _status() -> Schema:
    return obj(
        "Observed state.",
        {
            "observedGeneration": integer("Generation last reconciled."),
            "username": string("The principal brokers see, e.g. User:alice or User:CN=alice."),
            "secret": string("Secret holding the user's credentials."),
            "acls": integer("ACL bindings of the principal on the brokers."),
            "quotas": obj(
                "The client quotas the brokers hold for the user, as last applied (spec.quotas' fields).",
                {
                    k: {
                        key: v
                        for key, v in field.items()
                        if key not in ("minimum", "maximum", "exclusiveMinimum")
                    }
                    for k, field in _quota_fields().items()
                },
            ),
            "conditions": conditions_schema(),
        },
    )


def stream_user_crd() -> dict[str, object]:
    return crd(
        kind=USER_KIND,
        plural=USER_PLURAL,
        short="sruser",
        description="A Kafka user of a StreamCluster.",
        spec=_spec(),
        status=_status(),
        columns=[
            printer("Cluster", ".spec.cluster"),
            printer("Authentication", ".spec.authentication.type"),
            printer("Ready", '.status.conditions[?(@.type=="Ready")].status'),
            printer("Age", ".metadata.creationTimestamp", "date"),
        ],
        scale=False,
    )
