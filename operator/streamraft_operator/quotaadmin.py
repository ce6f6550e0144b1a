"""A user's client quotas on the brokers (Kafka's entity ``user=<name>``): DescribeClientQuotas and
AlterClientQuotas v1 over `kafkawire` (confluent-kafka has no client-quota Admin API). Blocking, with
timeouts; failures become topicadmin.AdminFailed naming what failed."""

from collections.abc import Mapping, Sequence

from kio.schema.alter_client_quotas.v1 import request as alter_req
from kio.schema.alter_client_quotas.v1.response import AlterClientQuotasResponse
from kio.schema.describe_client_quotas.v1 import request as describe_req
from kio.schema.describe_client_quotas.v1.response import DescribeClientQuotasResponse
from kio.static.primitive import f64, i8

from streamraft_operator.kafkawire import only, send, succeeded

USER = "user"
MATCH_EXACT = i8(0)


def describe_user_quotas(bootstrap: Sequence[str], user: str) -> dict[str, float]:
    """Key -> value of the entity exactly ``user=<user>`` (not the user's client-id entities, not the
    default user's); empty when it has none."""
    request = describe_req.DescribeClientQuotasRequest(
        components=(describe_req.ComponentData(entity_type=USER, match_type=MATCH_EXACT, match=user),),
        strict=True,
    )
    answer = succeeded(
        send(bootstrap, request, DescribeClientQuotasResponse, "DescribeClientQuotas"),
        f"describe quotas of user {user}",
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
    answer = send(bootstrap, request, AlterClientQuotasResponse, "AlterClientQuotas")
    only(answer.entries, f"alter quotas of user {user}")
