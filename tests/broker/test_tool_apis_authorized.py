"""The admin-tool APIs check Kafka's required operations once an authorizer is on: OffsetDelete (Delete on
the group), DescribeTopicPartitions (Describe on the topic), DescribeLogDirs (Describe on the cluster),
ElectLeaders and AlterReplicaLogDirs (Alter on the cluster), AlterConfigs (AlterConfigs on the topic)."""

from __future__ import annotations

import datetime
from pathlib import Path

from kio.schema.alter_configs.v2 import request as alter_configs
from kio.schema.alter_replica_log_dirs.v2 import request as alter_dirs
from kio.schema.describe_log_dirs.v4 import request as describe_dirs
from kio.schema.describe_topic_partitions.v0 import request as describe_partitions
from kio.schema.elect_leaders.v2 import request as elect
from kio.schema.offset_delete.v0 import request as offset_delete
from kio.static.primitive import i8, i32, i32Timedelta

from tests.support.broker_process import BrokerProcess
from tests.support.wire import WireClient

AUTHORIZER = ["--authorizer-class-name", "streamraft.acl"]
UNKNOWN_TOPIC_OR_PARTITION = 3
TOPIC_AUTHORIZATION_FAILED = 29
GROUP_AUTHORIZATION_FAILED = 30
CLUSTER_AUTHORIZATION_FAILED = 31
LOG_DIR_NOT_FOUND = 57
GROUP_ID_NOT_FOUND = 69
TOPIC = "x"


def _codes(port: int) -> dict[str, int]:
    """The error each API answers about topic ``x`` (which does not exist) and group ``g``."""
    with WireClient("127.0.0.1", port) as c:
        deleted = c.request(
            47,
            0,
            offset_delete.OffsetDeleteRequest(
                group_id="g",
                topics=(
                    offset_delete.OffsetDeleteRequestTopic(
                        name=TOPIC,
                        partitions=(offset_delete.OffsetDeleteRequestPartition(partition_index=i32(0)),),
                    ),
                ),
            ),
        )
        described = c.request(
            75,
            0,
            describe_partitions.DescribeTopicPartitionsRequest(
                topics=(describe_partitions.TopicRequest(name=TOPIC),)
            ),
        )
        dirs = c.request(35, 4, describe_dirs.DescribeLogDirsRequest(topics=None))
        elected = c.request(
            43,
            2,
            elect.ElectLeadersRequest(
                election_type=i8(0),
                topic_partitions=(elect.TopicPartitions(topic=TOPIC, partitions=(i32(0),)),),
                timeout=i32Timedelta.parse(datetime.timedelta(seconds=5)),
            ),
        )
        altered = c.request(
            33,
            2,
            alter_configs.AlterConfigsRequest(
                resources=(
                    alter_configs.AlterConfigsResource(
                        resource_type=i8(2),
                        resource_name=TOPIC,
                        configs=(alter_configs.AlterableConfig(name="retention.ms", value="1000"),),
                    ),
                ),
                validate_only=False,
            ),
        )
        moved = c.request(
            34,
            2,
            alter_dirs.AlterReplicaLogDirsRequest(
                dirs=(
                    alter_dirs.AlterReplicaLogDir(
                        path="/nowhere",
                        topics=(alter_dirs.AlterReplicaLogDirTopic(name=TOPIC, partitions=(i32(0),)),),
                    ),
                )
            ),
        )
    return {
        "offset_delete": int(deleted.error_code),
        "describe_topic_partitions": int(described.topics[0].error_code),
        "describe_log_dirs": int(dirs.error_code),
        "elect_leaders": int(
            elected.error_code or elected.replica_election_results[0].partition_result[0].error_code
        ),
        "alter_configs": int(altered.responses[0].error_code),
        "alter_replica_log_dirs": int(moved.results[0].partitions[0].error_code),
    }


def test_anonymous_clients_are_refused_and_super_users_are_not(tmp_path: Path) -> None:
    with BrokerProcess(tmp_path / "denied", metrics=False, extra_args=AUTHORIZER) as broker:
        assert _codes(broker.port) == {
            "offset_delete": GROUP_AUTHORIZATION_FAILED,
            "describe_topic_partitions": TOPIC_AUTHORIZATION_FAILED,
            "describe_log_dirs": CLUSTER_AUTHORIZATION_FAILED,
            "elect_leaders": CLUSTER_AUTHORIZATION_FAILED,
            "alter_configs": TOPIC_AUTHORIZATION_FAILED,
            "alter_replica_log_dirs": CLUSTER_AUTHORIZATION_FAILED,
        }
    # The same requests pass the authorizer for a principal allowed everything (here ANONYMOUS as a super
    # user) and get each API's own answer about a topic and group that do not exist.
    supers = [*AUTHORIZER, "--super-users", "User:ANONYMOUS"]
    with BrokerProcess(tmp_path / "allowed", metrics=False, extra_args=supers) as broker:
        assert _codes(broker.port) == {
            "offset_delete": GROUP_ID_NOT_FOUND,
            "describe_topic_partitions": UNKNOWN_TOPIC_OR_PARTITION,
            "describe_log_dirs": 0,
            "elect_leaders": UNKNOWN_TOPIC_OR_PARTITION,
            "alter_configs": UNKNOWN_TOPIC_OR_PARTITION,
            "alter_replica_log_dirs": LOG_DIR_NOT_FOUND,
        }
