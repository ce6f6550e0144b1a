"""The sans-I/O frame decoder and request header parser, byte by byte."""

from __future__ import annotations

import contextlib
import io
import struct
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kio.serial import entity_writer
from streamraft_broker.protocol.codec import build, decode_request, request_type
from streamraft_broker.protocol.errors import (
    FrameTooLargeError,
    FrameTooSmallError,
    HeaderDecodeError,
    ProtocolError,
)
from streamraft_broker.protocol.framing import FrameDecoder, encode_frame
from streamraft_broker.protocol.header import parse_request_header, read_uvarint, write_uvarint
from streamraft_broker.protocol.produce_request import parse_produce_request


def _header(key: int = 18, version: int = 0, corr: int = 9, client: bytes | None = b"cli") -> bytes:
    if client is None:
        return struct.pack(">hhih", key, version, corr, -1)
    return struct.pack(">hhih", key, version, corr, len(client)) + client


def test_frames_split_at_every_byte_boundary() -> None:
    frames = [_header(corr=i) + bytes(range(i)) for i in range(5)]
    stream = b"".join(encode_frame(f) for f in frames)
    for cut in range(len(stream) + 1):
        dec = FrameDecoder(1024)
        got = []
        for part in (stream[:cut], stream[cut:]):
            dec.feed(part)
            while (frame := dec.next_frame()) is not None:
                got.append(frame)
        assert got == frames, f"cut at {cut}"
        assert dec.buffered == 0


def test_one_byte_at_a_time() -> None:
    frame = _header() + b"body"
    dec = FrameDecoder(1024)
    data = encode_frame(frame)
    for i, b in enumerate(data):
        dec.feed(bytes([b]))
        got = dec.next_frame()
        assert (got is not None) == (i == len(data) - 1)
    assert got == frame


def test_oversized_prefix_rejected_before_body_arrives() -> None:
    dec = FrameDecoder(100)
    dec.feed(struct.pack(">i", 101))
    with pytest.raises(FrameTooLargeError, match="101 exceeds the maximum of 100"):
        dec.next_frame()


def test_exact_max_size_accepted() -> None:
    dec = FrameDecoder(100)
    payload = _header() + b"x" * (100 - len(_header()))
    dec.feed(encode_frame(payload))
    assert dec.next_frame() == payload


@pytest.mark.parametrize("size", [-1, -(2**31), 0, 9])
def test_negative_or_tiny_prefix_rejected(size: int) -> None:
    dec = FrameDecoder(100)
    dec.feed(struct.pack(">i", size))
    with pytest.raises(FrameTooSmallError):
        dec.next_frame()


def test_header_v1_and_v2() -> None:
    frame = _header(key=3, version=12, corr=77, client=b"abc") + b"\x00" + b"BODY"
    header, offset = parse_request_header(frame, flexible=True)
    assert (header.api_key, header.api_version, header.correlation_id, header.client_id) == (3, 12, 77, "abc")
    assert frame[offset:] == b"BODY"
    header, offset = parse_request_header(_header(client=None) + b"B", flexible=False)
    assert header.client_id is None
    assert offset == 10


def test_header_tagged_fields_skipped() -> None:
    tags = (
        write_uvarint(2) + write_uvarint(0) + write_uvarint(3) + b"abc" + write_uvarint(5) + write_uvarint(0)
    )
    frame = _header() + tags + b"Z"
    _header_obj, offset = parse_request_header(frame, flexible=True)
    assert frame[offset:] == b"Z"


@pytest.mark.parametrize(
    "frame",
    [
        b"\x00\x12\x00\x00\x00\x00",  # shorter than the fixed fields
        struct.pack(">hhih", 18, 0, 1, 50) + b"short",  # client id runs past the end
        struct.pack(">hhih", 18, 0, 1, -7),  # negative client id length other than -1
        _header() + b"\x05",  # tagged field count promises more than there is
        _header() + b"\xff\xff\xff\xff\xff\xff",  # varint longer than 5 bytes
    ],
)
def test_bad_headers_name_the_problem(frame: bytes) -> None:
    with pytest.raises(HeaderDecodeError):
        parse_request_header(frame, flexible=True)


@pytest.mark.parametrize("value", [0, 1, 127, 128, 300, 2**21, 2**32 - 1])
def test_uvarint_round_trip(value: int) -> None:
    data = write_uvarint(value)
    assert read_uvarint(data + b"tail", 0) == (value, len(data))


PRODUCE_VERSIONS = list(range(3, 10))


@pytest.mark.parametrize("version", PRODUCE_VERSIONS)
def test_hand_parsed_produce_matches_kio(version: int) -> None:
    cls = request_type(0, version)
    mod = sys.modules[cls.__module__]
    parts = tuple(
        build(mod.PartitionProduceData, index=i, records=None if i == 2 else bytes([i]) * (100 + i))
        for i in range(3)
    )
    topics = (
        build(mod.TopicProduceData, name="a", partition_data=parts),
        build(mod.TopicProduceData, name="b", partition_data=()),
    )
    req = build(cls, transactional_id="tx" if version > 3 else None, acks=-1, timeout=1234, topic_data=topics)
    buf = io.BytesIO()
    entity_writer(cls)(buf, req)
    frame = b"HDR" + buf.getvalue()
    view = parse_produce_request(frame, 3, version)
    kio_req = decode_request(0, version, frame, 3)
    assert (view.transactional_id, view.acks, view.timeout_ms) == (kio_req.transactional_id, -1, 1234)
    got = [
        (t.name, [(p.index, None if p.records is None else bytes(p.records)) for p in t.partition_data])
        for t in view.topic_data
    ]
    want = [(t.name, [(p.index, p.records) for p in t.partition_data]) for t in kio_req.topic_data]
    assert got == want


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(PRODUCE_VERSIONS), st.binary(max_size=200))
def test_hand_parsed_produce_rejects_garbage_cleanly(version: int, body: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        parse_produce_request(body, 0, version)
