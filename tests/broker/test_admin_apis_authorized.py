"""Security admin APIs need Kafka's cluster permissions once an authorizer is on: SCRAM credentials (Alter /
Describe on the cluster), client quotas and dynamic broker configs (AlterConfigs / DescribeConfigs on the
cluster)."""

from __future__ import annotations

from pathlib import Path

from kio.schema.alter_client_quotas.v1 import request as alter_quotas
from kio.schema.alter_user_scram_credentials.v0 import request as alter_scram
from kio.schema.describe_client_quotas.v1 import request as describe_quotas
from kio.schema.describe_configs.v1 import request as describe_configs
from kio.schema.describe_user_scram_credentials.v0 import request as describe_scram
from kio.schema.incremental_alter_configs.v1 import request as alter_configs
from kio.static.primitive import i8

from tests.support.broker_process import BrokerProcess
from tests.support.wire import WireClient

CLUSTER_AUTHORIZATION_FAILED = 31
AUTHORIZER = ["--authorizer-class-name", "streamraft.acl"]


def _scram_upsert() -> alter_scram.AlterUserScramCredentialsRequest:
    upsert = alter_scram.ScramCredentialUpsertion(
        name="mallory", mechanism=2, iterations=4096, salt=b"s" * 16, salted_password=b"p" * 64
    )
    return alter_scram.AlterUserScramCredentialsRequest(deletions=(), upsertions=(upsert,))


def _quota_alter() -> alter_quotas.AlterClientQuotasRequest:
    entry = alter_quotas.EntryData(
        entity=(alter_quotas.EntityData(entity_type="client-id", entity_name="c1"),),
        ops=(alter_quotas.OpData(key="producer_byte_rate", value=1024.0, remove=False),),
    )
    return alter_quotas.AlterClientQuotasRequest(entries=(entry,), validate_only=False)


def _codes(port: int) -> tuple[int, int, int, int]:
    with WireClient("127.0.0.1", port) as c:
        scram = c.request(51, 0, _scram_upsert()).results[0].error_code
        scram_list = c.request(
            50, 0, describe_scram.DescribeUserScramCredentialsRequest(users=None)
        ).error_code
        quota = c.request(49, 1, _quota_alter()).entries[0].error_code
        listed = c.request(48, 1, describe_quotas.DescribeClientQuotasRequest(components=(), strict=False))
    return int(scram), int(scram_list), int(quota), int(listed.error_code)


def test_anonymous_clients_may_not_change_credentials_or_quotas(tmp_path: Path) -> None:
    with BrokerProcess(tmp_path / "denied", metrics=False, extra_args=AUTHORIZER) as broker:
        assert _codes(broker.port) == (CLUSTER_AUTHORIZATION_FAILED,) * 4
    # The same requests pass for a principal allowed everything (here ANONYMOUS as a super user).
    supers = [*AUTHORIZER, "--super-users", "User:ANONYMOUS"]
    with BrokerProcess(tmp_path / "allowed", metrics=False, extra_args=supers) as broker:
        assert _codes(broker.port) == (0, 0, 0, 0)


def _broker_config_codes(port: int) -> tuple[int, int]:
    """(IncrementalAlterConfigs, DescribeConfigs) of the cluster-wide dynamic broker configs."""
    op = alter_configs.AlterableConfig(name="log.retention.ms", config_operation=i8(0), value="60000")
    resource = alter_configs.AlterConfigsResource(resource_type=i8(4), resource_name="", configs=(op,))
    described = describe_configs.DescribeConfigsResource(resource_type=i8(4), resource_name="")
    with WireClient("127.0.0.1", port) as c:
        alter = c.request(
            44, 1, alter_configs.IncrementalAlterConfigsRequest(resources=(resource,), validate_only=False)
        )
        describe = c.request(32, 1, describe_configs.DescribeConfigsRequest(resources=(described,)))
    return int(alter.responses[0].error_code), int(describe.results[0].error_code)


def test_dynamic_broker_configs_need_alter_configs_on_the_cluster(tmp_path: Path) -> None:
    with BrokerProcess(tmp_path / "denied", metrics=False, extra_args=AUTHORIZER) as broker:
        assert _broker_config_codes(broker.port) == (CLUSTER_AUTHORIZATION_FAILED,) * 2
    supers = [*AUTHORIZER, "--super-users", "User:ANONYMOUS"]
    with BrokerProcess(tmp_path / "allowed", metrics=False, extra_args=supers) as broker:
        assert _broker_config_codes(broker.port) == (0, 0)
