"""Every advertised API version: kio decodes the request and our handler's response encodes and decodes."""

from __future__ import annotations

import datetime
import io
import struct
from pathlib import Path
from typing import Any

import pytest
from kio.serial import entity_reader, entity_writer
from streamraft_broker.handlers import HANDLERS
from streamraft_broker.handlers.context import BrokerContext, RawResponse
from streamraft_broker.handlers.groups_wiring import install as install_groups_and_producers
from streamraft_broker.metrics import BrokerMetrics
from streamraft_broker.protocol.codec import (
    decode_request,
    encode_response,
    is_flexible_request,
    request_type,
    response_header_flexible,
    response_type,
)
from streamraft_broker.protocol.header import parse_request_header
from streamraft_broker.protocol.versions import SUPPORTED, ApiKey
from streamraft_broker.topics.registry import TopicRegistry

from tests.support.kio_samples import sample

ALL_VERSIONS = [(key, v) for key, (lo, hi) in SUPPORTED.items() for v in range(lo, hi + 1)]
ALL_IDS = [f"{k.name}-v{v}" for k, v in ALL_VERSIONS]


def _encode_request(api_key: int, version: int, body: Any) -> bytes:
    flexible = is_flexible_request(api_key, version)
    header = struct.pack(">hhih", api_key, version, 7, 1) + b"c" + (b"\x00" if flexible else b"")
    buf = io.BytesIO()
    entity_writer(type(body))(buf, body)
    return header + buf.getvalue()


@pytest.mark.parametrize(
    ("api_key", "version"), ALL_VERSIONS, ids=[f"{k.name}-v{v}" for k, v in ALL_VERSIONS]
)
def test_kio_round_trips_request_and_response(api_key: ApiKey, version: int) -> None:
    body = sample(request_type(api_key, version))
    frame = _encode_request(api_key, version, body)
    header, offset = parse_request_header(frame, flexible=is_flexible_request(api_key, version))
    assert (header.api_key, header.api_version, header.correlation_id, header.client_id) == (
        api_key,
        version,
        7,
        "c",
    )
    assert decode_request(api_key, version, frame, offset) == body
    response = sample(response_type(api_key, version))
    encoded = encode_response(api_key, version, 7, response)
    assert struct.unpack_from(">ii", encoded) == (len(encoded) - 4, 7)
    start = 8 + (1 if response_header_flexible(api_key, version) else 0)
    decoded, size = entity_reader(type(response))(encoded, start)
    assert decoded == response
    assert start + size == len(encoded)


def _ctx(tmp_path: Path) -> BrokerContext:
    registry = TopicRegistry(tmp_path, in_memory=True)
    registry.load()
    registry.create("x", 1, 1, {})
    ctx = BrokerContext(
        node_id=1, host="127.0.0.1", port=9092, cluster_id="c", registry=registry, metrics=BrokerMetrics()
    )
    install_groups_and_producers(ctx, tmp_path)
    return ctx


OURS = [(k, v) for k, v in ALL_VERSIONS if k in HANDLERS]


@pytest.mark.parametrize(("api_key", "version"), OURS, ids=[f"{k.name}-v{v}" for k, v in OURS])
async def test_handler_answers_every_version(tmp_path: Path, api_key: ApiKey, version: int) -> None:
    ctx = _ctx(tmp_path)
    body = sample(request_type(api_key, version))
    if api_key == ApiKey.FETCH:
        body = sample(request_type(api_key, version), {"min_bytes": 0, "max_wait": datetime.timedelta(0)})
    if api_key == ApiKey.PRODUCE:
        body = sample(request_type(api_key, version), {"acks": 1})
    frame = _encode_request(api_key, version, body)
    header, offset = parse_request_header(frame, flexible=is_flexible_request(api_key, version))
    request = decode_request(api_key, version, frame, offset)
    result = await HANDLERS[api_key](ctx, header, request)
    if isinstance(result, RawResponse):
        data = b"".join(p for p in result.parts if isinstance(p, bytes))
        assert struct.unpack_from(">i", data)[0] == len(data) - 4
        body_start = 8 + (1 if response_header_flexible(api_key, version) else 0)
        decoded, size = entity_reader(response_type(api_key, version))(data, body_start)
        assert body_start + size == len(data)
        return
    assert result is not None
    encoded = encode_response(api_key, version, header.correlation_id, result)
    start = 8 + (1 if response_header_flexible(api_key, version) else 0)
    decoded, size = entity_reader(type(result))(encoded, start)
    assert start + size == len(encoded)
    assert decoded == result
