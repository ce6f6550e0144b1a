"""Producer ids in replicated mode, allocated in blocks through the controller log (controller.producer_ids):
two brokers never hand out the same id, and ids handed out before a restart are never handed out again
(the log is replayed; a block's unused rest is skipped, as in Kafka).

Only the controller's Raft leader can append to the controller log, and brokers have no broker-to-
controller request for blocks yet (Kafka's AllocateProducerIds, api 67, is not in the protocol tables). So
the controller leader takes blocks for itself, and any other broker forwards the client's InitProducerId to
it over the Kafka protocol and relays the answer. A forwarded request that reaches a broker which is not
(or no longer) the controller is answered NOT_COORDINATOR rather than forwarded again, and the client
retries."""

from __future__ import annotations

import asyncio
import io
import itertools
import logging
import struct
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kio.index import load_request_schema, load_response_schema
from kio.schema.errors import ErrorCode
from kio.serial import entity_reader, entity_writer

from streamraft_broker.controller.commands import AllocateProducerIds, encode
from streamraft_broker.controller.state import CONTROLLER_GROUP
from streamraft_broker.protocol.codec import build
from streamraft_broker.security import outbound

if TYPE_CHECKING:
    from streamraft_broker.replication.service import ReplicationService

log = logging.getLogger(__name__)

BLOCK_SIZE = 1000
FORWARD_CLIENT_ID = "streamraft-pid-forward"
"""Marks a forwarded InitProducerId: the receiver answers it itself or refuses, never forwards again."""
FORWARD_TIMEOUT_S = 5.0
PROPOSE_TIMEOUT_S = 5.0
INIT_PRODUCER_ID = 22
_FORWARD_VERSION = 1
_I32 = struct.Struct(">i")
_correlation = itertools.count(1)


@dataclass(frozen=True)
class Grant:
    error_code: ErrorCode
    producer_id: int = -1
    producer_epoch: int = -1


class ControllerProducerIds:
    def __init__(self, replication: ReplicationService, block_size: int = BLOCK_SIZE) -> None:
        assert block_size > 0
        self._rep = replication
        self._block_size = block_size
        self._next = 0
        self._end = 0  # exclusive; [_next, _end) is this broker's unused part of its current block
        self._lock = asyncio.Lock()
        self.blocks_taken = 0

    async def init_producer_id(self, *, forwarded: bool) -> Grant:
        """A fresh producer id at epoch 0 (non-transactional producers)."""
        if self._next < self._end:
            return self._take()
        if self._rep.runtime.is_leader(CONTROLLER_GROUP):
            async with self._lock:
                if self._next >= self._end and not await self._new_block():
                    return Grant(ErrorCode.coordinator_not_available)
            return self._take()
        if forwarded:
            return Grant(ErrorCode.not_coordinator)
        return await self._forward()

    def _take(self) -> Grant:
        pid = self._next
        self._next += 1
        return Grant(ErrorCode.none, pid, 0)

    async def _new_block(self) -> bool:
        rep = self._rep
        request_id = uuid.uuid4().hex
        command = encode(AllocateProducerIds(rep.node_id, request_id, self._block_size))
        try:
            await asyncio.wait_for(rep.runtime.propose(CONTROLLER_GROUP, command), PROPOSE_TIMEOUT_S)
        except Exception as exc:
            log.warning("producer-id block not allocated: %s", exc)
            return False
        block = rep.state.producer_ids.last_grant.get(rep.node_id)
        # propose() resolves after the entry is applied here, so the grant is ours unless a later one
        # (impossible: proposals are serialised by the lock) replaced it.
        assert block is not None and block.request_id == request_id, block
        self._next, self._end = block.start, block.start + block.size
        self.blocks_taken += 1
        log.info("event=producer_id_block node=%d start=%d size=%d", rep.node_id, block.start, block.size)
        return True

    async def _forward(self) -> Grant:
        rep = self._rep
        controller = rep.members.get(rep.controller_id())
        if controller is None:
            return Grant(ErrorCode.coordinator_not_available)
        request_cls = load_request_schema(INIT_PRODUCER_ID, _FORWARD_VERSION)
        body = build(request_cls, transactional_id=None, transaction_timeout=60_000)
        try:
            response = await asyncio.wait_for(
                _call(controller.kafka_host, controller.kafka_port, body), FORWARD_TIMEOUT_S
            )
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
            log.info("InitProducerId not forwarded to controller %d: %s", controller.node_id, exc)
            return Grant(ErrorCode.coordinator_not_available)
        return Grant(ErrorCode(response.error_code), int(response.producer_id), int(response.producer_epoch))


async def _call(host: str, port: int, body: Any) -> Any:
    """One InitProducerId v1 round trip (request header v1, response header v0: no tagged fields)."""
    corr = next(_correlation) & 0x7FFFFFFF
    client = FORWARD_CLIENT_ID.encode()
    buf = io.BytesIO()
    entity_writer(type(body))(buf, body)
    payload = struct.pack(">hhih", INIT_PRODUCER_ID, _FORWARD_VERSION, corr, len(client)) + client
    payload += buf.getvalue()
    reader, writer = await outbound.open_connection(host, port)
    try:
        writer.write(_I32.pack(len(payload)) + payload)
        await writer.drain()
        size = _I32.unpack(await reader.readexactly(4))[0]
        if not 4 <= size <= 1 << 16:
            raise ValueError(f"implausible response size {size}")
        frame = await reader.readexactly(size)
    finally:
        writer.close()
    if _I32.unpack_from(frame, 0)[0] != corr:
        raise ValueError("correlation id mismatch")
    entity, _ = entity_reader(load_response_schema(INIT_PRODUCER_ID, _FORWARD_VERSION))(frame, 4)
    return entity
