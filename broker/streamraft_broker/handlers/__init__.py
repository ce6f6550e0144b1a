"""Request handlers, one module per API family, and the dispatch table."""

from __future__ import annotations

from streamraft_broker.handlers.acls import handle_create_acls, handle_delete_acls, handle_describe_acls
from streamraft_broker.handlers.api_versions import handle_api_versions
from streamraft_broker.handlers.client_quotas import handle_alter_client_quotas, handle_describe_client_quotas
from streamraft_broker.handlers.cluster import (
    handle_describe_cluster,
    handle_find_coordinator,
    handle_offset_for_leader_epoch,
)
from streamraft_broker.handlers.cluster_membership import handle_broker_registration, handle_unregister_broker
from streamraft_broker.handlers.configs import (
    handle_alter_configs,
    handle_describe_configs,
    handle_incremental_alter_configs,
)
from streamraft_broker.handlers.context import Handler
from streamraft_broker.handlers.delete_records import handle_delete_records
from streamraft_broker.handlers.describe_topic_partitions import handle_describe_topic_partitions
from streamraft_broker.handlers.elect_leaders import handle_elect_leaders
from streamraft_broker.handlers.fetch import handle_fetch
from streamraft_broker.handlers.groups import handle_delete_groups
from streamraft_broker.handlers.groups_wiring import GROUP_HANDLERS
from streamraft_broker.handlers.list_offsets import handle_list_offsets
from streamraft_broker.handlers.log_dirs import handle_alter_replica_log_dirs, handle_describe_log_dirs
from streamraft_broker.handlers.metadata import handle_metadata
from streamraft_broker.handlers.offset_delete import handle_offset_delete
from streamraft_broker.handlers.produce import handle_produce
from streamraft_broker.handlers.producer_id import handle_init_producer_id
from streamraft_broker.handlers.quorum import handle_describe_quorum
from streamraft_broker.handlers.reassign import (
    handle_alter_partition,
    handle_alter_partition_reassignments,
    handle_list_partition_reassignments,
)
from streamraft_broker.handlers.scram_credentials import (
    handle_alter_user_scram_credentials,
    handle_describe_user_scram_credentials,
    handle_sasl_without_sasl,
)
from streamraft_broker.handlers.topics_admin import (
    handle_create_partitions,
    handle_create_topics,
    handle_delete_topics,
)
from streamraft_broker.handlers.transactions import (
    handle_add_offsets_to_txn,
    handle_add_partitions_to_txn,
    handle_describe_transactions,
    handle_end_txn,
    handle_list_transactions,
    handle_txn_offset_commit,
)
from streamraft_broker.protocol.versions import ApiKey

HANDLERS: dict[ApiKey, Handler] = {
    ApiKey.API_VERSIONS: handle_api_versions,
    ApiKey.METADATA: handle_metadata,
    ApiKey.DESCRIBE_TOPIC_PARTITIONS: handle_describe_topic_partitions,
    ApiKey.PRODUCE: handle_produce,
    ApiKey.FETCH: handle_fetch,
    ApiKey.LIST_OFFSETS: handle_list_offsets,
    ApiKey.CREATE_TOPICS: handle_create_topics,
    ApiKey.DELETE_TOPICS: handle_delete_topics,
    ApiKey.CREATE_PARTITIONS: handle_create_partitions,
    ApiKey.DESCRIBE_ACLS: handle_describe_acls,
    ApiKey.CREATE_ACLS: handle_create_acls,
    ApiKey.DELETE_ACLS: handle_delete_acls,
    ApiKey.DELETE_RECORDS: handle_delete_records,
    ApiKey.DESCRIBE_LOG_DIRS: handle_describe_log_dirs,
    ApiKey.ALTER_REPLICA_LOG_DIRS: handle_alter_replica_log_dirs,
    ApiKey.DESCRIBE_CONFIGS: handle_describe_configs,
    ApiKey.INCREMENTAL_ALTER_CONFIGS: handle_incremental_alter_configs,
    ApiKey.ALTER_CONFIGS: handle_alter_configs,
    ApiKey.DESCRIBE_CLUSTER: handle_describe_cluster,
    ApiKey.FIND_COORDINATOR: handle_find_coordinator,
    ApiKey.OFFSET_FOR_LEADER_EPOCH: handle_offset_for_leader_epoch,
    ApiKey.INIT_PRODUCER_ID: handle_init_producer_id,
    ApiKey.ADD_PARTITIONS_TO_TXN: handle_add_partitions_to_txn,
    ApiKey.ADD_OFFSETS_TO_TXN: handle_add_offsets_to_txn,
    ApiKey.END_TXN: handle_end_txn,
    ApiKey.TXN_OFFSET_COMMIT: handle_txn_offset_commit,
    ApiKey.DESCRIBE_TRANSACTIONS: handle_describe_transactions,
    ApiKey.LIST_TRANSACTIONS: handle_list_transactions,
    **GROUP_HANDLERS,
    ApiKey.DELETE_GROUPS: handle_delete_groups,
    ApiKey.ELECT_LEADERS: handle_elect_leaders,
    ApiKey.OFFSET_DELETE: handle_offset_delete,
    ApiKey.ALTER_PARTITION_REASSIGNMENTS: handle_alter_partition_reassignments,
    ApiKey.LIST_PARTITION_REASSIGNMENTS: handle_list_partition_reassignments,
    ApiKey.ALTER_PARTITION: handle_alter_partition,
    ApiKey.BROKER_REGISTRATION: handle_broker_registration,
    ApiKey.UNREGISTER_BROKER: handle_unregister_broker,
    ApiKey.DESCRIBE_QUORUM: handle_describe_quorum,
    ApiKey.DESCRIBE_CLIENT_QUOTAS: handle_describe_client_quotas,
    ApiKey.ALTER_CLIENT_QUOTAS: handle_alter_client_quotas,
    ApiKey.SASL_HANDSHAKE: handle_sasl_without_sasl,
    ApiKey.SASL_AUTHENTICATE: handle_sasl_without_sasl,
    ApiKey.DESCRIBE_USER_SCRAM_CREDENTIALS: handle_describe_user_scram_credentials,
    ApiKey.ALTER_USER_SCRAM_CREDENTIALS: handle_alter_user_scram_credentials,
}
