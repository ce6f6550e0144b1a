"""Kafka requests the operator's confluent-kafka AdminClient cannot send, sent over one TCP connection.

librdkafka (so confluent-kafka 2.16) has no client-quota Admin API, and kafka-python 3.0's KafkaAdminClient
has none either. kio, already a runtime dependency, holds the schema classes (headers and payloads) and the
encoders of every Kafka API, so this module only frames them: a 4-byte size, the header, the payload, one
request at a time. It connects the way `brokers.admin_client` does: PLAINTEXT without SASL, so the operator
is the broker's ANONYMOUS principal (a super user where ACLs are enforced; see configkeys' super.users).
Every read is bounded in size and time; failures become `AdminFailed` naming the broker and the API.
"""

from __future__ import annotations

import io
import socket
import struct
import time
from collections.abc import Sequence
from types import TracebackType
from typing import Protocol, TypeVar

from kio.schema.api_versions.v0.request import ApiVersionsRequest
from kio.schema.api_versions.v0.response import ApiVersionsResponse
from kio.schema.errors import ErrorCode
from kio.serial import entity_reader, entity_writer
from kio.static.primitive import i32
from kio.static.protocol import RequestPayload, ResponsePayload

from streamraft_operator.brokers import METADATA_TIMEOUT_S, BrokersUnreachable
from streamraft_operator.topicadmin import AdminFailed

CLIENT_ID = "streamraft-operator"
CONNECT_TIMEOUT_S = METADATA_TIMEOUT_S
"""Per broker address, as the AdminClient's socket.timeout.ms: a pod IP that no longer answers costs this."""
TIMEOUT_S = 15.0
"""Each whole request/response round trip."""
MAX_RESPONSE_BYTES = 4 * 1024 * 1024
"""A larger answer to the small requests sent here is a broken or hostile peer, not data."""
_SIZE = struct.Struct(">i")

R = TypeVar("R", bound=ResponsePayload)


class Outcome(Protocol):
    """A response, or one resource's entry in it, that carries Kafka's error code and message."""

    @property
    def error_code(self) -> ErrorCode: ...
    @property
    def error_message(self) -> str | None: ...


OutcomeT = TypeVar("OutcomeT", bound=Outcome)


def send(bootstrap: Sequence[str], payload: RequestPayload, response_type: type[R], api_name: str) -> R:
    """One request to the first broker of ``bootstrap`` that answers, once it is known to serve it."""
    with KafkaConnection.open(bootstrap) as conn:
        conn.check_version(payload, api_name)
        return conn.request(payload, response_type)


def succeeded(outcome: OutcomeT, what: str) -> OutcomeT:
    """``outcome`` unless it carries an error: AdminFailed saying ``what`` failed, with Kafka's words."""
    if outcome.error_code != ErrorCode.none:
        detail = f": {outcome.error_message}" if outcome.error_message else ""
        raise AdminFailed(f"{what}: {outcome.error_code.name}{detail}")
    return outcome


def only(results: Sequence[OutcomeT], what: str) -> OutcomeT:
    """The one result a single-resource request gets back, checked with ``succeeded``."""
    if len(results) != 1:
        raise AdminFailed(f"{what}: {len(results)} results for 1")
    return succeeded(results[0], what)


def _host_port(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise BrokersUnreachable(f"broker address {address!r} is not host:port")
    return host.strip("[]"), int(port)


class KafkaConnection:
    """One broker connection that knows which API versions the broker serves (from ApiVersions)."""

    def __init__(self, sock: socket.socket, address: str) -> None:
        self.sock = sock
        self.address = address
        self._correlation = 0
        self.versions: dict[int, tuple[int, int]] = {}
        """API key -> (min, max) version the broker serves."""

    @classmethod
    def open(cls, bootstrap: Sequence[str]) -> KafkaConnection:
        """The first broker of ``bootstrap`` that answers ApiVersions (any broker serves the client-quota
        APIs: the others forward alterations to the controller)."""
        if not bootstrap:
            raise BrokersUnreachable("no broker addresses known (no pod has an IP yet)")
        failures: list[str] = []
        for address in bootstrap:
            try:
                sock = socket.create_connection(_host_port(address), timeout=CONNECT_TIMEOUT_S)
            except OSError as exc:
                failures.append(f"{address}: {exc}")
                continue
            conn = cls(sock, address)
            try:
                answer = conn.request(ApiVersionsRequest(), ApiVersionsResponse)
            except AdminFailed as exc:
                conn.close()
                failures.append(str(exc))
                continue
            if answer.error_code != ErrorCode.none:
                conn.close()
                failures.append(f"{address}: ApiVersions answered {answer.error_code.name}")
                continue
            conn.versions = {
                int(k.api_key): (int(k.min_version), int(k.max_version)) for k in answer.api_keys
            }
            return conn
        raise BrokersUnreachable(f"no broker answered ApiVersions: {'; '.join(failures)}")

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> KafkaConnection:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def check_version(self, payload: RequestPayload, api_name: str) -> None:
        """AdminFailed naming the API unless the broker serves this payload's version (a broker that does
        not would otherwise close the connection without a word)."""
        low, high = self.versions.get(int(payload.__api_key__), (0, -1))
        if not low <= payload.__version__ <= high:
            served = f"v{low}-{high}" if high >= low else "no version"
            raise AdminFailed(
                f"broker {self.address} does not serve {api_name} v{payload.__version__} ({served} of it)"
            )

    def request(self, payload: RequestPayload, response_type: type[R]) -> R:
        """Sends ``payload`` and reads its response, bounded by TIMEOUT_S and MAX_RESPONSE_BYTES."""
        name = type(payload).__name__
        self._correlation += 1
        correlation = self._correlation
        header = payload.__header_schema__(
            request_api_key=payload.__api_key__,
            request_api_version=payload.__version__,
            correlation_id=i32(correlation),
            client_id=CLIENT_ID,
        )
        body = io.BytesIO()
        entity_writer(type(header))(body, header)
        entity_writer(type(payload))(body, payload)
        deadline = time.monotonic() + TIMEOUT_S
        try:
            self._settimeout(deadline)
            self.sock.sendall(_SIZE.pack(body.tell()) + body.getvalue())
            size = _SIZE.unpack(self._read(4, deadline))[0]
            if not 0 < size <= MAX_RESPONSE_BYTES:
                raise AdminFailed(f"{name} to {self.address}: response of {size} bytes refused")
            frame = self._read(size, deadline)
        except OSError as exc:
            raise AdminFailed(f"{name} to {self.address}: {exc}") from exc
        try:
            got, offset = entity_reader(response_type.__header_schema__)(frame, 0)
            if got.correlation_id != correlation:
                raise AdminFailed(
                    f"{name} to {self.address}: correlation id {got.correlation_id}, expected {correlation}"
                )
            response, _ = entity_reader(response_type)(frame, offset)
        except AdminFailed:
            raise
        except Exception as exc:  # kio's decoders raise several types on a malformed frame
            raise AdminFailed(f"{name} to {self.address}: malformed response: {exc}") from exc
        return response

    def _settimeout(self, deadline: float) -> None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("timed out")
        self.sock.settimeout(left)

    def _read(self, n: int, deadline: float) -> bytes:
        chunks = bytearray()
        while len(chunks) < n:
            self._settimeout(deadline)
            got = self.sock.recv(min(n - len(chunks), 1 << 16))
            if not got:
                raise ConnectionError(f"connection closed after {len(chunks)} of {n} bytes")
            chunks += got
        return bytes(chunks)
