"""StreamCluster: a set of brokers run as one StatefulSet."""

from streamraft_operator.configkeys import BROKER_KEYS, config_schema
from streamraft_operator.constants import (
    CLUSTER_KIND,
    CLUSTER_PLURAL,
    KAFKA_PORT_DEFAULT,
    KAFKA_TLS_PORT_DEFAULT,
)
from streamraft_operator.crds.common import (
    Schema,
    boolean,
    cel,
    conditions_schema,
    crd,
    free_form,
    integer,
    obj,
    printer,
    string,
    string_map,
)
from streamraft_operator.spec import TLS_AUTHENTICATIONS

_QUANTITY = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|k|M|G|T|P|m)?$"


def _resources() -> Schema:
    pair = obj(
        "CPU and memory.",
        {
            "cpu": string("CPU quantity, e.g. 500m.", pattern=_QUANTITY),
            "memory": string("Memory quantity, e.g. 1Gi.", pattern=_QUANTITY),
        },
    )
    return obj("Broker container resources.", {"requests": pair, "limits": pair})


def _spec() -> Schema:
    return obj(
        "Desired state of the broker cluster.",
        {
            "replicas": integer("Number of brokers.", minimum=1, maximum=99, default=3),
            "image": string("Container image holding the `streamraft` command.", minLength=1),
            "resources": _resources(),
            "storage": obj(
                "Persistent volume of each broker.",
                {
                    "size": string("Volume size, e.g. 10Gi.", pattern=_QUANTITY, default="10Gi"),
                    "storageClass": string("StorageClass name; empty uses the cluster default."),
                    "deleteClaim": boolean("Delete the PVCs when the StreamCluster is deleted.", False),
                },
                default={},
            ),
            "listeners": obj(
                "Network listeners.",
                {
                    "kafka": obj(
                        "The plaintext Kafka listener.",
                        {
                            "port": integer(
                                "Kafka port.", minimum=1024, maximum=65535, default=KAFKA_PORT_DEFAULT
                            ),
                            "advertise": string(
                                "Address brokers advertise. Replicated brokers always advertise the name "
                                "their peers know them by, the pod's DNS name under the headless Service "
                                "(a pod IP is not known before the pod exists); PodIP is accepted from "
                                "older specs and behaves as PodDNS.",
                                enum=["PodIP", "PodDNS"],
                                default="PodDNS",
                            ),
                        },
                        default={},
                        **{
                            "x-kubernetes-validations": [
                                cel(
                                    "!has(self.port) || "
                                    "(self.port != 9093 && self.port != 9644 && self.port != 9645)",
                                    "listeners.kafka.port must not be 9093 (Raft), 9644 (metrics) "
                                    "or 9645 (admin)",
                                )
                            ]
                        },
                    ),
                    "tls": obj(
                        "The Kafka listener over TLS (1.2/1.3), on by default: brokers serve certificates "
                        "of the cluster CA (Secret <name>-ca, key ca.crt), renewed before expiry without "
                        "a restart; clients connect to status.bootstrapTls.",
                        {
                            "enabled": boolean("Run the TLS listener.", True),
                            "port": integer(
                                "TLS Kafka port.", minimum=1024, maximum=65535, default=KAFKA_TLS_PORT_DEFAULT
                            ),
                            "authentication": string(
                                "none: any client may connect (as User:ANONYMOUS); tls: clients must "
                                "present a certificate of the cluster CA (a StreamUser with authentication "
                                "tls), its subject DN being the principal; scram-sha-512: SASL_SSL with a "
                                "SCRAM StreamUser's password (Secret <user>-streamuser).",
                                enum=list(TLS_AUTHENTICATIONS),
                                default="none",
                            ),
                        },
                        default={},
                        **{
                            "x-kubernetes-validations": [
                                cel(
                                    "!has(self.port) || "
                                    "(self.port != 9093 && self.port != 9644 && self.port != 9645)",
                                    "listeners.tls.port must not be 9093 (Raft), 9644 (metrics) "
                                    "or 9645 (admin)",
                                )
                            ]
                        },
                    ),
                },
                default={},
            ),
            "config": config_schema(BROKER_KEYS, "Broker configuration; only the listed keys are accepted."),
            "rack": obj(
                "Spread brokers across failure domains.",
                {"topologyKey": string("Node label of the failure domain (e.g. a zone label).")},
            ),
            "metrics": obj(
                "Prometheus metrics.",
                {
                    "enabled": boolean("Expose /metrics on port 9644.", True),
                    "serviceMonitor": boolean("Create a ServiceMonitor when its CRD exists.", False),
                },
                default={},
            ),
            "template": obj(
                "Extra settings of the broker pods.",
                {
                    "pod": obj(
                        "Pod template additions.",
                        {
                            "labels": string_map("Extra pod labels."),
                            "annotations": string_map("Extra pod annotations."),
                            "affinity": free_form("Pod affinity (Kubernetes Affinity)."),
                            "tolerations": {
                                "type": "array",
                                "description": "Pod tolerations.",
                                "items": free_form("One Toleration."),
                            },
                            "securityContext": free_form("Pod securityContext over non-root defaults."),
                        },
                    )
                },
            ),
            "security": obj(
                "Transport security and isolation of the brokers.",
                {
                    "raftTls": boolean(
                        "Raft between brokers over mutual TLS: the operator keeps a CA Secret "
                        "(<name>-ca) and one certificate Secret per broker (<name>-<ordinal>-raft-tls, "
                        "also served by the TLS Kafka listener), renewed 30 days before expiry and "
                        "picked up by brokers without a restart.",
                        True,
                    ),
                    "networkPolicy": boolean(
                        "A NetworkPolicy admits Raft only from this cluster's brokers and the admin API "
                        "only from them and the operator; Kafka and metrics stay open.",
                        True,
                    ),
                },
                default={},
            ),
            "pdb": obj(
                "PodDisruptionBudget.",
                {
                    "maxUnavailable": integer(
                        "Brokers that may be down at once; capped so a Raft majority survives.",
                        minimum=0,
                        default=1,
                    )
                },
                default={},
            ),
        },
        required=["replicas"],
    )


def _status() -> Schema:
    broker = obj(
        "One broker as last observed.",
        {
            "id": integer("Broker (Raft node) id: the pod ordinal + 1."),
            "pod": string("Pod name."),
            "ready": boolean("Pod is Ready."),
            "partitionsLed": integer("Partitions this broker leads."),
            "raftLag": integer(
                "Largest Raft lag, in entries, of a follower of a partition this broker leads."
            ),
            "storage": string(
                "Capacity of the broker's data volume (its PVC's status.capacity), when known."
            ),
        },
        required=["id", "pod", "ready"],
    )
    return obj(
        "Observed state.",
        {
            "observedGeneration": integer("Generation last reconciled."),
            "replicas": integer("Brokers that exist."),
            "readyReplicas": integer("Brokers that are Ready."),
            "selector": string("Label selector of the broker pods (for the scale subresource)."),
            "bootstrap": string("Kafka bootstrap address (client Service)."),
            "bootstrapTls": string("Bootstrap address of the TLS listener (client Service), if enabled."),
            "configHash": string("Hash of the rendered broker configuration."),
            "conditions": conditions_schema(),
            "brokers": {"type": "array", "description": "Per-broker state.", "items": broker},
        },
    )


def stream_cluster_crd() -> dict[str, object]:
    return crd(
        kind=CLUSTER_KIND,
        plural=CLUSTER_PLURAL,
        # Not `sc`: that is StorageClass's short name, and kubectl resolves it to the built-in.
        short="srcluster",
        description="A Streamraft broker cluster.",
        spec=_spec(),
        status=_status(),
        columns=[
            printer("Ready", '.status.conditions[?(@.type=="Ready")].status'),
            printer("Replicas", ".spec.replicas", "integer"),
            printer("ReadyReplicas", ".status.readyReplicas", "integer"),
            printer("Bootstrap", ".status.bootstrap", priority=1),
            printer("Age", ".metadata.creationTimestamp", "date"),
        ],
        scale=True,
    )
