"""InitProducerId: with a transactional id, the transaction coordinator answers (handlers.transactions).
Otherwise in replicated mode ids come in blocks from the controller log (replication.producer_ids); else the
idempotent-producer state hands them out when present, else fresh ids derived from the start-up time."""

from __future__ import annotations

import itertools
import time
from typing import Any

from streamraft_broker.handlers.authz import may_idempotent_write
from streamraft_broker.handlers.context import BrokerContext, err
from streamraft_broker.handlers.transactions import init_transactional_producer_id
from streamraft_broker.protocol.codec import build, response_type
from streamraft_broker.protocol.header import RequestHeader
from streamraft_broker.protocol.versions import ApiKey
from streamraft_broker.replication.producer_ids import FORWARD_CLIENT_ID, ControllerProducerIds

CLUSTER_AUTHORIZATION_FAILED = 31

# Without persisted producer state, ids derived from start-up time stay unique across restarts.
_fallback_ids = itertools.count(int(time.time() * 1000) << 8)


async def handle_init_producer_id(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    cls = response_type(ApiKey.INIT_PRODUCER_ID, header.api_version)
    if request.transactional_id is not None:
        txn_code, txn_pid, txn_epoch = await init_transactional_producer_id(ctx, header, request)
        return build(cls, throttle_time=0, error_code=txn_code, producer_id=txn_pid, producer_epoch=txn_epoch)
    forwarded = header.client_id == FORWARD_CLIENT_ID
    # A broker forwarding for its client checked that client (and ids alone grant no write).
    if not forwarded and not may_idempotent_write(ctx):
        denied = err(CLUSTER_AUTHORIZATION_FAILED)
        return build(cls, throttle_time=0, error_code=denied, producer_id=-1, producer_epoch=-1)
    replication = ctx.extra.get("replication")
    if replication is not None:
        blocks = ctx.extra.get("producer_id_blocks")
        if blocks is None:
            blocks = ctx.extra["producer_id_blocks"] = ControllerProducerIds(replication)
        grant = await blocks.init_producer_id(forwarded=forwarded)
        return build(
            cls,
            throttle_time=0,
            error_code=grant.error_code,
            producer_id=grant.producer_id,
            producer_epoch=grant.producer_epoch,
        )
    if ctx.producers is not None:
        try:
            pid, epoch = ctx.producers.init_producer_id(
                int(getattr(request, "producer_id", -1)), int(getattr(request, "producer_epoch", -1))
            )
        except ValueError as exc:
            code = int(getattr(exc, "error_code", -1))
            return build(cls, throttle_time=0, error_code=err(code), producer_id=-1, producer_epoch=-1)
    else:
        pid, epoch = next(_fallback_ids), 0
    return build(cls, throttle_time=0, error_code=err(0), producer_id=pid, producer_epoch=epoch)
