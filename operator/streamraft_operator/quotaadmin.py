"""A user's client quotas on the brokers (Kafka's entity ``user=<name>``): DescribeClientQuotas and
AlterClientQuotas v1 over `kafkawire` (confluent-kafka has no client-quota Admin API). Blocking, with
timeouts; failures become topicadmin.AdminFailed naming what failed."""

from collections.abc import Mapping, Sequence

from kio.schema.alter_client_quotas.v1 import request as alter_req
from kio.schema.alter_client_quotas.v1.response import AlterClientQuotasResponse
from kio.schema.describe_client_quotas.v1 import request as describe_req
from kio.schema.describe_client_quotas.v1.response import DescribeClientQuotasResponse
from kio.schema.errors import ErrorCode
from kio.static.primitive import f64, i8

from streamraft_operator.kafkawire import KafkaConnection
from streamraft_operator.topicadmin import AdminFailed

USER = "user"
MATCH_EXACT = i8(0)


def _error(code: ErrorCode, message: str | None) -> str:
    return f"{code.name}" + (f": {message}" if message else "")


def describe_user_quotas(bootstrap: Sequence[str], user: str) -> dict[str, float]:
    """Key -> value of the entity exactly ``user=<user>`` (not the user's client-id entities, not the
    default user's); empty when it has none."""
    request = describe_req.DescribeClientQuotasRequest(
        components=(describe_req.ComponentData(entity_type=USER, match_type=MATCH_EXACT, match=user),),
        strict=True,
    )
    with KafkaConnection.open(bootstrap) as conn:
        conn.check_version(request, "DescribeClientQuotas")
        answer = conn.request(request, DescribeClientQuotasResponse)
    if answer.error_code != ErrorCode.none:
        raise AdminFailed(
            f"describe quotas of user {user}: {_error(answer.error_code, answer.error_message)}"
        )
    found: dict[str, float] = {}
    for entry in answer.entries or ():
        if [(e.entity_type, e.entity_name) for e in entry.entity] == [(USER, user)]:
            found.update({v.key: float(v.value) for v in entry.values})
    return found


def alter_user_quotas(bootstrap: Sequence[str], user: str, ops: Mapping[str, float | None]) -> None:
    """Sets each key to its value, or removes it (None), in one request; a no-op without ops."""
    if not ops:
        return
    request = alter_req.AlterClientQuotasRequest(
        entries=(
            alter_req.EntryData(
                entity=(alter_req.EntityData(entity_type=USER, entity_name=user),),
                ops=tuple(
                    alter_req.OpData(
                        key=key, value=f64(0.0 if value is None else value), remove=value is None
                    )
                    for key, value in sorted(ops.items())
                ),
            ),
        ),
        validate_only=False,
    )
    with KafkaConnection.open(bootstrap) as conn:
        conn.check_version(request, "AlterClientQuotas")
        answer = conn.request(request, AlterClientQuotasResponse)
    if len(answer.entries) != 1:
        raise AdminFailed(f"alter quotas of user {user}: {len(answer.entries)} results for 1 entity")
    entry = answer.entries[0]
    if entry.error_code != ErrorCode.none:
        raise AdminFailed(f"alter quotas of user {user}: {_error(entry.error_code, entry.error_message)}")
