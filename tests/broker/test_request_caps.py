"""One huge request must not stall other clients: element counts per request are capped (refused with a
logged reason before any per-element work), and requests under the caps are decoded, handled and encoded
without holding the event loop for their whole duration."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Iterator

import pytest
from streamraft_broker.protocol.skim import MAX_ARRAY_ELEMENTS

from tests.support.broker_process import BrokerProcess
from tests.support.fixtures import module_broker
from tests.support.sockets import api_versions_answered, closed_by_peer, connect

LATENCY_BOUND_S = 0.5
"""Slowest ApiVersions round trip another client may see meanwhile (old code: 12.3 s for 2,000,000 topics)."""


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    # Unknown topics stay unknown: the Metadata requests below name tens of thousands of them.
    yield from module_broker(
        tmp_path_factory, metrics=False, extra_args=["--auto-create-topics-enable", "false"]
    )


class Pinger:
    """Another client doing ApiVersions round trips back to back, recording the slowest."""

    def __init__(self, port: int) -> None:
        self.sock = connect(port)
        self.slowest = 0.0
        self.failed = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            if not api_versions_answered(self.sock, timeout=30):
                self.failed = True
                return
            self.slowest = max(self.slowest, time.monotonic() - started)
            self._stop.wait(0.005)  # a client's pace, not synchronisation

    def __enter__(self) -> Pinger:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(60)
        self.sock.close()


def _metadata_v1(names: list[bytes]) -> bytes:
    body = struct.pack(">hhih", 3, 1, 99, -1) + struct.pack(">i", len(names))
    body += b"".join(struct.pack(">h", len(n)) + n for n in names)
    return struct.pack(">i", len(body)) + body


def _recv_frame(s: socket.socket) -> bytes:
    def exact(n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            got = s.recv(min(n - len(out), 1 << 20))
            assert got, "connection closed mid-answer"
            out += got
        return bytes(out)

    return exact(struct.unpack(">i", exact(4))[0])


def test_two_million_topic_metadata_is_refused_without_stalling_others(broker: BrokerProcess) -> None:
    frame = _metadata_v1([b""] * 2_000_000)  # 3.8 MiB
    with Pinger(broker.port) as pinger, connect(broker.port) as hostile:
        hostile.sendall(frame)
        assert closed_by_peer(hostile, within=10), "the over-cap request was not refused"
        time.sleep(0.2)  # keep pinging a little past the refusal
    assert not pinger.failed
    assert pinger.slowest < LATENCY_BOUND_S, f"another client waited {pinger.slowest:.2f} s"
    log = broker.log_path.read_text()
    assert f"array count 2000000 exceeds the cap of {MAX_ARRAY_ELEMENTS} elements per array" in log


def test_a_produce_to_a_million_partitions_is_refused_without_stalling_others(broker: BrokerProcess) -> None:
    """Produce has its own parser (batches are never copied): the same caps apply there."""
    count = 1_000_000
    body = struct.pack(">hhih", 0, 3, 5, -1) + struct.pack(">hhi", -1, 1, 1000)
    body += struct.pack(">ih", 1, 1) + b"t" + struct.pack(">i", count) + struct.pack(">ii", 0, -1) * count
    with Pinger(broker.port) as pinger, connect(broker.port) as hostile:
        hostile.sendall(struct.pack(">i", len(body)) + body)  # 8 MiB
        assert closed_by_peer(hostile, within=10), "the over-cap request was not refused"
        time.sleep(0.2)  # keep pinging a little past the refusal
    assert not pinger.failed
    assert pinger.slowest < LATENCY_BOUND_S, f"another client waited {pinger.slowest:.2f} s"
    log = broker.log_path.read_text()
    assert f"partition_data count {count} exceeds the cap of {MAX_ARRAY_ELEMENTS} per array" in log


def test_a_large_request_under_the_caps_is_answered_without_stalling_others(broker: BrokerProcess) -> None:
    count = 40_000
    frame = _metadata_v1([f"absent-{i}".encode() for i in range(count)])
    with Pinger(broker.port) as pinger, connect(broker.port, timeout=60) as client:
        client.sendall(frame)
        answer = _recv_frame(client)
    assert not pinger.failed
    assert pinger.slowest < LATENCY_BOUND_S, f"another client waited {pinger.slowest:.2f} s"
    # Metadata v1 response: correlation id, brokers, controller id, then the topics array.
    assert struct.unpack_from(">i", answer)[0] == 99
    assert answer.count(b"absent-") == count
    with connect(broker.port) as after:
        assert api_versions_answered(after)


def test_list_offsets_at_the_array_cap_is_answered_without_stalling_others(broker: BrokerProcess) -> None:
    """50,000 partitions (of a topic that does not exist): the handler yields as it goes, the answer is
    encoded off the event loop."""
    count = MAX_ARRAY_ELEMENTS
    body = struct.pack(">hhih", 2, 1, 77, -1) + struct.pack(">i", -1)  # ListOffsets v1, replica id -1
    body += struct.pack(">ih", 1, 1) + b"t" + struct.pack(">i", count) + struct.pack(">iq", 0, -1) * count
    with Pinger(broker.port) as pinger, connect(broker.port, timeout=60) as client:
        client.sendall(struct.pack(">i", len(body)) + body)
        answer = _recv_frame(client)
    assert not pinger.failed
    assert pinger.slowest < LATENCY_BOUND_S, f"another client waited {pinger.slowest:.2f} s"
    assert struct.unpack_from(">i", answer)[0] == 77
    # Each partition answer: index, error code 3 (UNKNOWN_TOPIC_OR_PARTITION), timestamp -1, offset -1.
    assert answer.count(struct.pack(">ihqq", 0, 3, -1, -1)) == count
