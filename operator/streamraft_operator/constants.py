"""Names shared by the CRDs, the builders and the handlers: one place so they cannot drift apart."""

from typing import Final

GROUP: Final = "streamraft.io"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"

CLUSTER_KIND: Final = "StreamCluster"
CLUSTER_PLURAL: Final = "streamclusters"
TOPIC_KIND: Final = "StreamTopic"
TOPIC_PLURAL: Final = "streamtopics"
USER_KIND: Final = "StreamUser"
USER_PLURAL: Final = "streamusers"

FIELD_MANAGER: Final = "streamraft-operator"
PAUSED_ANNOTATION: Final = f"{GROUP}/paused"
CONFIG_HASH_ANNOTATION: Final = f"{GROUP}/config-hash"
TOPIC_FINALIZER: Final = f"{GROUP}/topic"

LABEL_NAME: Final = "app.kubernetes.io/name"
LABEL_INSTANCE: Final = "app.kubernetes.io/instance"
LABEL_COMPONENT: Final = "app.kubernetes.io/component"
LABEL_MANAGED_BY: Final = "app.kubernetes.io/managed-by"
LABEL_CLUSTER: Final = f"{GROUP}/cluster"

KAFKA_PORT_DEFAULT: Final = 9092
RAFT_PORT: Final = 9093
KAFKA_TLS_PORT_DEFAULT: Final = 9094
"""The TLS Kafka listener (spec.listeners.tls), on by default."""
METRICS_PORT: Final = 9644
ADMIN_PORT: Final = 9645
"""Brokers' admin API (leadership hand-off, decommission); /metrics stays on METRICS_PORT."""
DATA_DIR: Final = "/var/lib/streamraft"
CONFIG_DIR: Final = "/etc/streamraft"
CONFIG_FILE: Final = "broker.yaml"
DEFAULT_IMAGE: Final = "ghcr.io/streamraft/streamraft:0.1.0"

# Condition types and the only reasons the operator ever writes (CamelCase, as Kubernetes expects).
CONDITION_TYPES: Final = ("Ready", "Progressing", "Degraded")
REASONS: Final = frozenset(
    {
        "AllBrokersReady",
        "BrokersNotReady",
        "Reconciling",
        "Reconciled",
        "RollingRestart",
        "ScalingUp",
        "ScalingDown",
        "ScaleDownBlocked",
        "RestartBlocked",
        "InvalidSpec",
        "ApplyFailed",
        "StorageResizeRefused",
        "StorageResizing",
        "BrokersUnreachable",
        "ClusterNotFound",
        "ClusterNotReady",
        "TopicCreated",
        "TopicInSync",
        "TopicDriftReverted",
        "AdminFailed",
        "PartitionsCannotShrink",
        "Paused",
        "AsExpected",
        "UserInSync",
        "UserUpdated",
    }
)

# Event reasons (fixed; one per kind of action so they can be filtered).
EVENT_ROLLING_RESTART: Final = "BrokerRestarted"
EVENT_MANUAL_ROLL: Final = "ManualRollingUpdate"
EVENT_BROKER_CONFIG: Final = "BrokerConfigUpdated"
EVENT_SCALE_DOWN: Final = "BrokerRemoved"
EVENT_TOPIC_CREATED: Final = "TopicCreated"
EVENT_TOPIC_DRIFT: Final = "TopicDriftReverted"
EVENT_SECRETS: Final = "SecretsUpdated"
EVENT_USER_UPDATED: Final = "UserUpdated"
EVENT_APPLY_FAILED: Final = "ApplyFailed"
EVENT_STORAGE_REFUSED: Final = "StorageResizeRefused"
EVENT_STORAGE_RESIZED: Final = "StorageResized"
WARNING_EVENTS: Final = frozenset({EVENT_APPLY_FAILED, EVENT_STORAGE_REFUSED})
"""Posted as type Warning; every other event is Normal."""
