"""gRPC transport over real loopback channels: coalescing, chunking, bad input, reconnect, faults."""

from __future__ import annotations

import asyncio
import filecmp
import logging
import socket
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import grpc.aio
import pytest
from streamraft_consensus.core.types import Entry, EntryType, Message, MessageType
from streamraft_consensus.transport import raft_pb2 as pb
from streamraft_consensus.transport.faults import FaultInjector
from streamraft_consensus.transport.grpc_transport import (
    METHOD,
    PROTOCOL_VERSION,
    GrpcTransport,
    Inbound,
    TransportConfig,
)

from tests.support.poll import wait_until
from tests.support.protogen import GENERATED, generate

TRANSPORT_DIR = Path(__file__).resolve().parents[2] / "consensus" / "streamraft_consensus" / "transport"


class Node:
    def __init__(
        self, node_id: int, config: TransportConfig | None = None, faults: FaultInjector | None = None
    ):
        self.inbound: list[Inbound] = []
        self.t = GrpcTransport(node_id, self.inbound.append, config=config, faults=faults)

    def received(self) -> list[tuple[int, Message]]:
        return [gm for i in self.inbound for gm in i.messages]


@pytest.fixture
async def pair() -> AsyncIterator[tuple[Node, Node]]:
    a, b = Node(1), Node(2)
    await a.t.start()
    await b.t.start()
    a.t.add_peer(2, b.t.address)
    b.t.add_peer(1, a.t.address)
    await wait_until(lambda: a.t.is_connected(2) and b.t.is_connected(1))
    yield a, b
    await a.t.stop()
    await b.t.stop()


def append(to: int, frm: int, index: int, data: bytes = b"x") -> Message:
    return Message(
        MessageType.APPEND,
        to,
        frm,
        term=3,
        log_term=3,
        index=index - 1,
        entries=(Entry(3, index, EntryType.NORMAL, data),),
        commit=index - 1,
    )


async def test_messages_of_many_groups_flow_both_ways(pair: tuple[Node, Node]) -> None:
    a, b = pair
    for group in range(1, 51):
        a.t.send(group, append(2, 1, group))
        b.t.send(group, Message(MessageType.APPEND_RESP, 1, 2, term=3, index=group))
    a.t.flush()
    b.t.flush()
    await wait_until(lambda: len(b.received()) == 50 and len(a.received()) == 50)
    assert sorted(g for g, _ in b.received()) == list(range(1, 51))
    assert b.received()[0][1] == append(2, 1, 1)
    assert {m.type for _, m in a.received()} == {MessageType.APPEND_RESP}


async def test_heartbeats_of_all_groups_share_one_envelope(pair: tuple[Node, Node]) -> None:
    a, b = pair
    before = len(b.inbound)
    for group in range(1, 1001):
        a.t.send(group, Message(MessageType.HEARTBEAT, 2, 1, term=7, commit=group, context=b"c"))
    a.t.flush()
    await wait_until(lambda: len(b.received()) == 1000)
    assert len(b.inbound) == before + 1  # one envelope carried all of them
    got = dict(b.received())
    assert got[500] == Message(MessageType.HEARTBEAT, 2, 1, term=7, commit=500, context=b"c")
    for group in range(1, 1001):
        b.t.send(group, Message(MessageType.HEARTBEAT_RESP, 1, 2, term=7, reject=group % 2 == 0))
    b.t.flush()
    await wait_until(lambda: len(a.received()) == 1000)
    assert len(a.inbound) == 1
    assert dict(a.received())[2].reject and not dict(a.received())[3].reject


async def test_large_messages_are_chunked() -> None:
    config = TransportConfig(max_frame_bytes=4096)
    a, b = Node(1, config), Node(2, config)
    await a.t.start()
    await b.t.start()
    try:
        a.t.add_peer(2, b.t.address)
        b.t.add_peer(1, a.t.address)
        await wait_until(lambda: a.t.is_connected(2))
        big = append(2, 1, 10, data=bytes(range(256)) * 200)  # 51 KiB in one message
        small = [append(2, 1, i) for i in range(1, 21)]
        a.t.send(1, big)
        for m in small:
            a.t.send(2, m)
        a.t.flush()
        await wait_until(lambda: len(b.received()) == 21)
        assert (1, big) in b.received()
    finally:
        await a.t.stop()
        await b.t.stop()


async def test_bad_frames_are_logged_and_dropped_stream_stays_up(
    pair: tuple[Node, Node], caplog: pytest.LogCaptureFixture
) -> None:
    _, b = pair
    caplog.set_level(logging.WARNING, logger="streamraft.consensus.transport")

    def env(version: int = PROTOCOL_VERSION, to: int = 2) -> pb.Envelope:
        return pb.Envelope(version=version, from_node=1, to_node=to)

    good = env()
    gm = good.messages.add(group=9)
    gm.message.type = int(MessageType.APPEND_RESP)
    gm.message.term = 4
    bad_type = env()
    bad_type.messages.add(group=9).message.type = 99
    async with grpc.aio.insecure_channel(b.t.address) as channel:
        call = channel.stream_stream(METHOD)()  # type: ignore[call-arg]
        await call.write(env().SerializeToString())  # hello: stream belongs to node 1
        await call.write(b"\x0a\xff\xff\xff\xff\xff")  # truncated varint: not a protobuf
        await call.write(env(version=99).SerializeToString())
        await call.write(env(to=5).SerializeToString())
        await call.write(bad_type.SerializeToString())
        await call.write(good.SerializeToString())
        await wait_until(lambda: len(b.received()) == 1)
        call.cancel()
    assert b.received() == [(9, Message(MessageType.APPEND_RESP, 2, 1, term=4))]
    text = "\n".join(r.getMessage() for r in caplog.records)
    for event in (
        "malformed_frame",
        "incompatible_version node=2 peer=1 version=99",
        "misaddressed_frame",
        "malformed_message",
    ):
        assert event in text
    assert all("\n" not in r.getMessage() for r in caplog.records)


async def test_reconnects_after_peer_restart(pair: tuple[Node, Node]) -> None:
    a, b = pair
    address = b.t.address
    await b.t.stop()
    await wait_until(lambda: not a.t.is_connected(2))
    b2 = Node(2)
    b2.t._listen = address
    await b2.t.start()
    try:
        b2.t.add_peer(1, a.t.address)
        await wait_until(lambda: a.t.is_connected(2) and b2.t.is_connected(1), limit_s=15)
        a.t.send(3, append(2, 1, 5))
        a.t.flush()
        await wait_until(lambda: len(b2.received()) == 1)
    finally:
        await b2.t.stop()


@pytest.mark.parametrize(
    "error", [asyncio.InvalidStateError("RPC already finished"), RuntimeError("anything else")]
)
async def test_dialer_survives_an_attempt_that_raises(
    error: Exception, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fault suite saw grpc.aio raise InvalidStateError out of a dial attempt, which ended the
    dialer task: the pair then stayed disconnected for good. The next attempt must still happen."""
    a, b = Node(1), Node(2)
    real = GrpcTransport._dial_once
    attempts = 0

    async def failing_once(self: GrpcTransport, link: object) -> None:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise error
        await real(self, link)

    monkeypatch.setattr(GrpcTransport, "_dial_once", failing_once)
    await a.t.start()
    await b.t.start()
    try:
        b.t.add_peer(1, a.t.address)
        a.t.add_peer(2, b.t.address)  # node 1 dials node 2
        await wait_until(lambda: a.t.is_connected(2) and b.t.is_connected(1))
        assert attempts >= 2
        a.t.send(3, append(2, 1, 5))
        a.t.flush()
        await wait_until(lambda: len(b.received()) == 1)
    finally:
        await a.t.stop()
        await b.t.stop()


async def test_node_level_pings_keep_last_heard_fresh(pair: tuple[Node, Node]) -> None:
    _, b = pair
    first = b.t.last_heard(1)
    assert first is not None

    # Nothing is sent or flushed: the transport pings on its own.
    await wait_until(lambda: (b.t.last_heard(1) or 0) > first)
    assert b.inbound == []  # pings are not delivered as messages


async def test_fault_injection_is_direction_aware() -> None:
    faults = FaultInjector()
    a, b = Node(1, faults=faults), Node(2, faults=faults)
    await a.t.start()
    await b.t.start()
    try:
        a.t.add_peer(2, b.t.address)
        b.t.add_peer(1, a.t.address)
        await wait_until(lambda: a.t.is_connected(2) and b.t.is_connected(1))
        faults.block(1, 2)
        a.t.send(1, append(2, 1, 1))
        b.t.send(1, append(1, 2, 1))
        a.t.flush()
        b.t.flush()
        await wait_until(lambda: len(a.received()) == 1)
        faults.heal()
        a.t.send(1, append(2, 1, 2))
        a.t.flush()
        await wait_until(lambda: len(b.received()) == 1)
        assert b.received()[0][1].entries[0].index == 2  # the blocked one never arrived
    finally:
        await a.t.stop()
        await b.t.stop()


PEER_PROCESS = r"""
import asyncio, sys
from streamraft_consensus.transport import GrpcTransport

async def main() -> None:
    t = GrpcTransport(1, lambda inbound: None, listen="127.0.0.1:" + sys.argv[2])
    await t.start()
    t.add_peer(2, sys.argv[1])
    for _ in range(6000):  # bounded: ten minutes at most
        t.flush()
        await asyncio.sleep(0.1)

asyncio.run(main())
"""


async def test_accepting_side_notices_a_killed_peer_process() -> None:
    """Node 1 dials node 2; when node 1's process is SIGKILLed, node 2 (which only accepted the stream)
    must see it go down promptly: the runtime's failover depends on it."""
    port = free_port()
    b = Node(2)
    await b.t.start()
    b.t.add_peer(1, f"127.0.0.1:{port}")
    try:
        for _ in range(2):
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-c", PEER_PROCESS, b.t.address, str(port)
            )
            try:
                await wait_until(lambda: b.t.is_connected(1), limit_s=30)
            finally:
                proc.kill()
                await proc.wait()
            killed = time.monotonic()
            await wait_until(lambda: not b.t.is_connected(1), limit_s=5)
            assert time.monotonic() - killed < 2.0
    finally:
        await b.t.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_generated_code_matches_proto(tmp_path: Path) -> None:
    for produced in generate(tmp_path):
        committed = TRANSPORT_DIR / produced.name
        assert produced.name in GENERATED
        assert filecmp.cmp(produced, committed, shallow=False), (
            f"{committed.name} is stale: run .venv/bin/python -m tests.support.protogen"
        )


async def test_peers_learn_each_others_uptime(pair: tuple[Node, Node]) -> None:
    a, b = pair
    await wait_until(lambda: a.t.peer_uptime(2) is not None and b.t.peer_uptime(1) is not None)
    for mine, theirs, peer in ((a, b, 2), (b, a, 1)):
        reported = mine.t.peer_uptime(peer)
        assert reported is not None
        assert abs(reported - theirs.t.uptime()) < 0.5, (reported, theirs.t.uptime())
    assert a.t.peer_uptime(3) is None


async def test_confirm_alive_probes_and_tears_down_a_refused_peer(
    pair: tuple[Node, Node], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="streamraft.consensus.transport")
    a, b = pair
    await wait_until(lambda: time.monotonic() - (a.t.last_heard(2) or 0.0) > 0.005)
    assert await a.t.confirm_alive(2)  # probed: the connect succeeds
    assert not await b.t.confirm_alive(3)  # not a peer at all
    # Node 1's address now refuses connections while its stream to node 2 is still up: what node 2 sees
    # for a few ms after node 1's process is killed, before the end of the stream reaches it.
    b.t.add_peer(1, f"127.0.0.1:{free_port()}")
    # Past the freshness window (a frame within 2 ms is trusted without a probe); nothing awaits between
    # this check and the calls, so no frame can arrive in between.
    await wait_until(lambda: time.monotonic() - (b.t.last_heard(1) or 0.0) > 0.005)
    confirmed = [asyncio.ensure_future(b.t.confirm_alive(1)) for _ in range(3)]
    assert await asyncio.gather(*confirmed) == [False, False, False]  # concurrent callers share one probe
    # Torn down at once, as when the background probe finds a peer dead (node 1 then simply redials).
    assert "event=peer_unreachable node=2 peer=1 reason=connect_refused_on_confirm" in caplog.text
    await wait_until(lambda: "event=peer_disconnected node=2 peer=1" in caplog.text)
