"""StreamTopic: one Kafka topic of a StreamCluster, managed through the Kafka Admin API."""

from streamraft_operator.configkeys import TOPIC_KEYS, config_schema
from streamraft_operator.constants import TOPIC_KIND, TOPIC_PLURAL
from streamraft_operator.crds.common import Schema, cel, conditions_schema, crd, integer, obj, printer, string

# Kafka's own rule for topic names.
_TOPIC_NAME = r"^[a-zA-Z0-9._-]{1,249}$"


def _spec() -> Schema:
    cluster_ref = string("Name of the StreamCluster (same namespace). Immutable.", minLength=1, maxLength=253)
    cluster_ref["x-kubernetes-validations"] = [cel("self == oldSelf", "clusterRef is immutable")]
    partitions = integer("Number of partitions; may only grow.", minimum=1, maximum=10_000, default=1)
    partitions["x-kubernetes-validations"] = [
        cel("self >= oldSelf", "partitions may only grow (Kafka cannot remove partitions)")
    ]
    return obj(
        "Desired topic.",
        {
            "clusterRef": cluster_ref,
            "topicName": string(
                "Kafka topic name; defaults to metadata.name. Immutable.", pattern=_TOPIC_NAME, maxLength=249
            ),
            "partitions": partitions,
            "replicas": {
                **integer("Replication factor; odd so a Raft majority is clear.", minimum=1, maximum=7),
                "default": 3,
                "x-kubernetes-validations": [cel("self % 2 == 1", "replicas must be odd (1, 3, 5 or 7)")],
            },
            "config": config_schema(TOPIC_KEYS, "Topic configuration; only the listed keys are accepted."),
        },
        required=["clusterRef"],
        **{
            "x-kubernetes-validations": [
                cel(
                    "has(self.topicName) == has(oldSelf.topicName) && "
                    "(!has(self.topicName) || self.topicName == oldSelf.topicName)",
                    "topicName is immutable",
                )
            ]
        },
    )


def _status() -> Schema:
    return obj(
        "Observed state.",
        {
            "observedGeneration": integer("Generation last reconciled."),
            "topicName": string("Kafka topic name in use."),
            "partitions": integer("Partitions observed on the brokers."),
            "replicas": integer("Replication factor observed on the brokers."),
            "conditions": conditions_schema(),
        },
    )


def stream_topic_crd() -> dict[str, object]:
    return crd(
        kind=TOPIC_KIND,
        plural=TOPIC_PLURAL,
        short="srtopic",
        description="A topic of a StreamCluster.",
        spec=_spec(),
        status=_status(),
        columns=[
            printer("Cluster", ".spec.clusterRef"),
            printer("Ready", '.status.conditions[?(@.type=="Ready")].status'),
            printer("Partitions", ".spec.partitions", "integer"),
            printer("Replicas", ".spec.replicas", "integer"),
            printer("Age", ".metadata.creationTimestamp", "date"),
        ],
        scale=False,
    )
