"""InitProducerId: delegates to the idempotent-producer state when present, else hands out fresh ids."""

from __future__ import annotations

import itertools
import time
from typing import Any

from streamraft_broker.handlers.context import BrokerContext, err
from streamraft_broker.protocol.codec import build, response_type
from streamraft_broker.protocol.header import RequestHeader
from streamraft_broker.protocol.versions import ApiKey

TRANSACTIONAL_ID_AUTHORIZATION_FAILED = 53

# Without persisted producer state, ids derived from start-up time stay unique across restarts.
_fallback_ids = itertools.count(int(time.time() * 1000) << 8)


async def handle_init_producer_id(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    cls = response_type(ApiKey.INIT_PRODUCER_ID, header.api_version)
    if request.transactional_id is not None:
        return build(
            cls,
            throttle_time=0,
            error_code=err(TRANSACTIONAL_ID_AUTHORIZATION_FAILED),
            producer_id=-1,
            producer_epoch=-1,
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
