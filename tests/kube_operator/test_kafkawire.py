"""The operator's one-request Kafka connection (`kafkawire`) against peers that misbehave: each failure is an
error naming the broker and what went wrong, never a hang or an unbounded read. Its happy path runs against
a real broker in test_userquotas_broker."""

from __future__ import annotations

import io
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

import pytest
from kio.schema.api_versions.v0.response import ApiVersion, ApiVersionsResponse
from kio.schema.errors import ErrorCode
from kio.serial import entity_writer
from kio.static.primitive import i16
from streamraft_operator import quotaadmin
from streamraft_operator.brokers import BrokersUnreachable
from streamraft_operator.topicadmin import AdminFailed

from tests.support.ports import free_port

Script = Callable[[socket.socket], None]


def _read_request(conn: socket.socket) -> int:
    """Reads one request frame; returns its correlation id."""
    size = struct.unpack(">i", conn.recv(4, socket.MSG_WAITALL))[0]
    frame = conn.recv(size, socket.MSG_WAITALL)
    return int(struct.unpack_from(">i", frame, 4)[0])


@contextmanager
def peer(script: Script) -> Iterator[str]:
    """A loopback listener that plays ``script`` on the first connection it accepts."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(10)

    def serve() -> None:
        try:
            conn, _ = server.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(10)
            with suppress(OSError):  # the client may give up first
                script(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.getsockname()[1]}"
    finally:
        server.close()
        thread.join(10)


def _api_versions_without_quotas(conn: socket.socket) -> None:
    """A broker of before KIP-546: ApiVersions lists Metadata only."""
    correlation = _read_request(conn)
    body = io.BytesIO()
    answer = ApiVersionsResponse(
        error_code=ErrorCode.none,
        api_keys=(ApiVersion(api_key=i16(3), min_version=i16(0), max_version=i16(12)),),
    )
    entity_writer(ApiVersionsResponse)(body, answer)
    payload = struct.pack(">i", correlation) + body.getvalue()
    conn.sendall(struct.pack(">i", len(payload)) + payload)


def test_a_broker_without_the_client_quota_apis_is_named_not_hung_up_on() -> None:
    with pytest.raises(AdminFailed) as info, peer(_api_versions_without_quotas) as address:
        quotaadmin.alter_user_quotas([address], "alice", {"producer_byte_rate": 1024.0})
    assert str(info.value) == f"broker {address} does not serve AlterClientQuotas v1 (no version of it)"


def test_an_oversized_response_is_refused_before_it_is_read() -> None:
    def huge(conn: socket.socket) -> None:
        _read_request(conn)
        conn.sendall(struct.pack(">i", 2**31 - 1))

    with (
        peer(huge) as address,
        pytest.raises(BrokersUnreachable, match="response of 2147483647 bytes refused"),
    ):
        quotaadmin.describe_user_quotas([address], "alice")


def test_a_peer_that_hangs_up_is_skipped_and_every_failure_is_named() -> None:
    def hang_up(conn: socket.socket) -> None:
        _read_request(conn)

    refused = f"127.0.0.1:{free_port()}"
    with peer(hang_up) as address, pytest.raises(BrokersUnreachable) as info:
        quotaadmin.describe_user_quotas([refused, address], "alice")
    message = str(info.value)
    assert f"{refused}: [Errno 111]" in message
    assert f"to {address}: connection closed after 0 of 4 bytes" in message
