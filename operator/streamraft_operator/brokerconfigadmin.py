"""The cluster-wide dynamic broker configs (Kafka's default BROKER entity, resource name ""): DescribeConfigs
v1 and IncrementalAlterConfigs v1 over `kafkawire`. confluent-kafka's AdminClient sends BROKER resources
only for one broker id and refuses the empty name of the cluster-wide entity, which is the one wanted here:
a broker that joins later applies it from the controller log at once. Blocking, with timeouts; failures
become topicadmin.AdminFailed naming what failed."""

from collections.abc import Mapping, Sequence

from kio.schema.describe_configs.v1 import request as describe_req
from kio.schema.describe_configs.v1.response import DescribeConfigsResponse
from kio.schema.incremental_alter_configs.v1 import request as alter_req
from kio.schema.incremental_alter_configs.v1.response import IncrementalAlterConfigsResponse
from kio.static.primitive import i8

from streamraft_operator.kafkawire import only, send

BROKER = i8(4)
DEFAULT_ENTITY = ""
SET, DELETE = i8(0), i8(1)
DYNAMIC_DEFAULT_BROKER_CONFIG = 3


def describe_default_broker_configs(bootstrap: Sequence[str]) -> dict[str, str]:
    """The cluster-wide dynamic broker configs set now (name -> value); empty when none are."""
    request = describe_req.DescribeConfigsRequest(
        resources=(
            describe_req.DescribeConfigsResource(
                resource_type=BROKER, resource_name=DEFAULT_ENTITY, configuration_keys=None
            ),
        ),
        include_synonyms=False,
    )
    answer = send(bootstrap, request, DescribeConfigsResponse, "DescribeConfigs")
    result = only(answer.results, "describe cluster-wide broker configs")
    return {
        c.name: c.value
        for c in result.configs
        if c.value is not None and int(c.config_source) == DYNAMIC_DEFAULT_BROKER_CONFIG
    }


def alter_default_broker_configs(bootstrap: Sequence[str], ops: Mapping[str, str | None]) -> None:
    """Sets each config to its value, or deletes it (None), in one request; a no-op without ops."""
    if not ops:
        return
    request = alter_req.IncrementalAlterConfigsRequest(
        resources=(
            alter_req.AlterConfigsResource(
                resource_type=BROKER,
                resource_name=DEFAULT_ENTITY,
                configs=tuple(
                    alter_req.AlterableConfig(
                        name=name, config_operation=DELETE if value is None else SET, value=value
                    )
                    for name, value in sorted(ops.items())
                ),
            ),
        ),
        validate_only=False,
    )
    answer = send(bootstrap, request, IncrementalAlterConfigsResponse, "IncrementalAlterConfigs")
    only(answer.responses, "alter cluster-wide broker configs")
