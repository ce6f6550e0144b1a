"""Bad input: random bytes, lying length prefixes, oversize frames, unknown keys/versions, truncated frames.

The decoder only ever raises ProtocolError subclasses; a real broker closes (or answers) the offending
connection with a log line and keeps serving every other connection.
"""

from __future__ import annotations

import contextlib
import io
import socket
import struct
import time
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kio.serial import entity_writer
from streamraft_broker.protocol.codec import decode_request, is_flexible_request, request_type
from streamraft_broker.protocol.errors import ProtocolError
from streamraft_broker.protocol.framing import FrameDecoder
from streamraft_broker.protocol.header import parse_request_header
from streamraft_broker.protocol.versions import SUPPORTED

from tests.support.broker_process import BrokerProcess
from tests.support.fixtures import module_broker
from tests.support.kio_samples import sample
from tests.support.wire import api_versions_ok

MAX_REQUEST = 64 * 1024
ALL = sorted((int(k), v) for k, (lo, hi) in SUPPORTED.items() for v in range(lo, hi + 1))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=20), st.integers(min_value=10, max_value=4096))
def test_decoder_only_raises_protocol_errors(chunks: list[bytes], max_size: int) -> None:
    dec = FrameDecoder(max_size)
    try:
        for chunk in chunks:
            dec.feed(chunk)
            while (frame := dec.next_frame()) is not None:
                assert len(frame) <= max_size
    except ProtocolError:
        return
    # Nothing buffered beyond one frame's worth plus its prefix, whatever was fed.
    assert dec.buffered <= max_size + 4 + max(map(len, chunks), default=0)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(sorted((int(k), v) for k, (lo, hi) in SUPPORTED.items() for v in range(lo, hi + 1))),
    st.binary(max_size=200),
)
def test_random_bodies_decode_or_raise_protocol_error(key_version: tuple[int, int], body: bytes) -> None:
    key, version = key_version
    flexible = is_flexible_request(key, version)
    frame = struct.pack(">hhih", key, version, 1, 1) + b"c" + (b"\x00" if flexible else b"") + body
    try:
        _header, offset = parse_request_header(frame, flexible=flexible)
        decode_request(key, version, frame, offset)
    except ProtocolError:
        pass


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    yield from module_broker(
        tmp_path_factory, metrics=False, extra_args=["--socket-request-max-bytes", str(MAX_REQUEST)]
    )


def _send_and_settle(port: int, data: bytes) -> bytes:
    """Send bytes, then read until the broker closes or goes quiet; returns what it answered."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            return b""
        s.settimeout(0.3)
        got = bytearray()
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                break  # waiting for the rest of a truncated frame is correct behaviour
            except ConnectionResetError:
                break
            if not chunk:
                break
            got += chunk
        return bytes(got)


def _garbage() -> st.SearchStrategy[bytes]:
    header = st.builds(
        lambda key, ver, corr, rest: struct.pack(">hhi", key, ver, corr) + rest,
        st.integers(-(2**15), 2**15 - 1),
        st.integers(-(2**15), 2**15 - 1),
        st.integers(-(2**31), 2**31 - 1),
        st.binary(max_size=64),
    )
    framed = header.map(lambda p: struct.pack(">i", len(p)) + p)
    lying = st.builds(
        lambda n, p: struct.pack(">i", n) + p, st.integers(-(2**31), 2**31 - 1), st.binary(max_size=64)
    )
    return st.one_of(st.binary(max_size=200), framed, lying)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=_garbage())
def test_broker_survives_garbage_and_other_connections_unaffected(broker: BrokerProcess, data: bytes) -> None:
    with socket.create_connection(("127.0.0.1", broker.port), timeout=5) as bystander:
        _send_and_settle(broker.port, data)
        assert broker.running, broker.log_tail()
        # A connection opened before the garbage still works, and so does a new one.
        bystander.sendall(struct.pack(">ihhih", 10, 18, 0, 42, -1))
        size = struct.unpack(">i", bystander.recv(4))[0]
        body = b""
        while len(body) < size:
            body += bystander.recv(size - len(body))
        assert struct.unpack_from(">ih", body) == (42, 0)
    assert api_versions_ok(broker.host, broker.port)


@pytest.mark.parametrize(
    ("data", "log_fragment"),
    [
        (struct.pack(">i", MAX_REQUEST + 1), f"exceeds the maximum of {MAX_REQUEST} bytes"),
        (struct.pack(">i", -5), "below the minimum"),
        (struct.pack(">ihhih", 10, 999, 0, 1, -1), "unsupported API key 999 version 0"),
        (struct.pack(">ihhih", 10, 0, 99, 1, -1), "unsupported API key 0 version 99"),
        (struct.pack(">ihhih", 12, 3, 12, 1, 5) + b"ab", "client_id length 5 runs past the end"),
    ],
)
def test_bad_frames_close_with_a_log_line(broker: BrokerProcess, data: bytes, log_fragment: str) -> None:
    assert _send_and_settle(broker.port, data) == b""
    deadline = time.monotonic() + 10
    while log_fragment not in broker.log_path.read_text():
        assert time.monotonic() < deadline, f"no log line with {log_fragment!r}:\n{broker.log_tail()}"
        time.sleep(0.05)  # polling the broker's log file under a deadline
    assert api_versions_ok(broker.host, broker.port)


def _valid_body(key: int, version: int) -> bytes:
    buf = io.BytesIO()
    cls = request_type(key, version)
    entity_writer(cls)(buf, sample(cls))
    return buf.getvalue()


@settings(max_examples=500, deadline=None)
@given(
    st.sampled_from(ALL),
    st.lists(st.tuples(st.integers(0, 10_000), st.sampled_from([0x00, 0x7F, 0x80, 0xFF, 0x01])), max_size=4),
    st.integers(0, 10_000),
)
def test_mutated_valid_requests_never_crash_the_decoder(
    key_version: tuple[int, int], edits: list[tuple[int, int]], cut: int
) -> None:
    """Lengths and counts overwritten with huge values must be refused before kio allocates for them.

    (kio aborts the process on a failed allocation, so a regression here kills the test run outright.)
    """
    key, version = key_version
    body = bytearray(_valid_body(key, version))
    for where, value in edits:
        if body:
            body[where % len(body)] = value
    body = body[: cut % (len(body) + 1)] if cut % 3 == 0 else body
    flexible = is_flexible_request(key, version)
    frame = struct.pack(">hhih", key, version, 1, 1) + b"c" + (b"\x00" if flexible else b"")
    with contextlib.suppress(ProtocolError):
        decode_request(key, version, frame + bytes(body), len(frame))


def test_huge_array_count_is_refused_before_allocation() -> None:
    # Metadata v1 with a topics array claiming 2**31 - 1 entries and no bytes behind it.
    frame = struct.pack(">hhih", 3, 1, 1, -1) + struct.pack(">i", 2**31 - 1)
    with pytest.raises(ProtocolError, match="array count 2147483647 exceeds"):
        decode_request(3, 1, frame, 10)
