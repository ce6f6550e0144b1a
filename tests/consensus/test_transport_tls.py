"""Who a Raft peer is: nothing of a stream is delivered before it is accepted; with mutual TLS a peer's
node id is the one its certificate names, on both ends of a stream.

Regression: a process reaching the Raft port could claim any node id in its first frame, and that frame's
messages (a forged PROPOSE, a heartbeat of term +1000) were delivered before the claim was even checked."""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import grpc
import grpc.aio
import pytest
from streamraft_broker.security import pki
from streamraft_consensus.core.types import Message, MessageType
from streamraft_consensus.transport import raft_pb2 as pb
from streamraft_consensus.transport.grpc_transport import (
    METHOD,
    PROTOCOL_VERSION,
    GrpcTransport,
    Inbound,
    TransportTls,
)

LOGGER = "streamraft.consensus.transport"


async def wait_until(cond: Callable[[], bool], limit_s: float = 10.0) -> None:
    deadline = time.monotonic() + limit_s
    while not cond():
        assert time.monotonic() < deadline, "condition not reached before the deadline"
        await asyncio.sleep(0.01)


class Node:
    def __init__(self, node_id: int, tls: TransportTls | None = None) -> None:
        self.inbound: list[Inbound] = []
        self.t = GrpcTransport(node_id, self.inbound.append, tls=tls)

    def received(self) -> list[tuple[int, Message]]:
        return [gm for i in self.inbound for gm in i.messages]


def tls_for(files: pki.CertFiles) -> TransportTls:
    return TransportTls(files.cert, files.key, files.ca, pki.certificate_node_id)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pki.CertFiles]:
    root = tmp_path_factory.mktemp("pki")
    ca = pki.create_ca(root / "ca")
    other = pki.create_ca(root / "other-ca", common_name="someone-else")
    out = {f"broker-{n}": pki.issue_broker(ca, root / "certs", n) for n in (1, 2, 3)}
    out["foreign-2"] = pki.issue_broker(other, root / "foreign", 2)
    out["user"] = pki.issue(ca, root / "certs", "alice", common_name="alice")
    return out


def hello(frm: int, to: int, *, heartbeat_term: int = 0) -> bytes:
    env = pb.Envelope(version=PROTOCOL_VERSION, from_node=frm, to_node=to)
    if heartbeat_term:
        env.heartbeats.heartbeats.add(group=7, term=heartbeat_term, commit=0)
    return env.SerializeToString()


async def stream_with(
    address: str, frames: list[bytes], creds: grpc.ChannelCredentials | None, wait_s: float = 0.5
) -> grpc.StatusCode | None:
    """Open a stream as a (maybe hostile) peer, send ``frames``; the status it ended with, if it ended."""
    channel = grpc.aio.insecure_channel(address) if creds is None else grpc.aio.secure_channel(address, creds)
    async with channel:
        call = channel.stream_stream(METHOD)()  # type: ignore[call-arg]
        try:
            for f in frames:
                await call.write(f)
            async with asyncio.timeout(wait_s):
                await call.read()
        except TimeoutError:
            call.cancel()
            return None
        except grpc.aio.AioRpcError as err:
            return err.code()
        except grpc.aio.UsageError:
            pass
        return await call.code()


def creds_of(files: pki.CertFiles | None, ca: Path) -> grpc.ChannelCredentials:
    if files is None:
        return grpc.ssl_channel_credentials(root_certificates=ca.read_bytes())
    return grpc.ssl_channel_credentials(
        root_certificates=ca.read_bytes(),
        private_key=files.key.read_bytes(),
        certificate_chain=files.cert.read_bytes(),
    )


@pytest.fixture
async def tls_server(certs: dict[str, pki.CertFiles]) -> AsyncIterator[Node]:
    """Node 1 over mutual TLS, knowing peers 2 and 3 (which are not running)."""
    node = Node(1, tls_for(certs["broker-1"]))
    await node.t.start()
    node.t.add_peer(2, "127.0.0.1:1")
    node.t.add_peer(3, "127.0.0.1:1")
    yield node
    await node.t.stop()


async def test_first_frame_of_an_unknown_node_is_not_delivered_in_plaintext() -> None:
    server = Node(1)
    await server.t.start()
    try:
        status = await stream_with(server.t.address, [hello(99, 1, heartbeat_term=1000)], None)
        assert status == grpc.StatusCode.OK  # the stream was ended by the server
        assert server.received() == []
        assert server.t.refused_streams == 1
    finally:
        await server.t.stop()


async def test_mutual_tls_pair_exchanges_messages(certs: dict[str, pki.CertFiles]) -> None:
    a, b = Node(1, tls_for(certs["broker-1"])), Node(2, tls_for(certs["broker-2"]))
    await a.t.start()
    await b.t.start()
    try:
        a.t.add_peer(2, b.t.address)
        b.t.add_peer(1, a.t.address)
        await wait_until(lambda: a.t.is_connected(2) and b.t.is_connected(1))
        a.t.send(5, Message(MessageType.HEARTBEAT, 2, 1, term=3))
        b.t.send(5, Message(MessageType.HEARTBEAT_RESP, 1, 2, term=3))
        a.t.flush()
        b.t.flush()
        await wait_until(lambda: bool(a.received()) and bool(b.received()))
        assert b.received() == [(5, Message(MessageType.HEARTBEAT, 2, 1, term=3))]
        assert a.received() == [(5, Message(MessageType.HEARTBEAT_RESP, 1, 2, term=3))]
    finally:
        await a.t.stop()
        await b.t.stop()


@pytest.mark.parametrize("client", ["plaintext", "no-certificate", "other-ca", "user-certificate"])
async def test_clients_without_a_node_certificate_of_our_ca_are_refused(
    tls_server: Node, certs: dict[str, pki.CertFiles], client: str
) -> None:
    ca = certs["broker-1"].ca
    creds = {
        "plaintext": None,
        "no-certificate": creds_of(None, ca),
        "other-ca": creds_of(certs["foreign-2"], ca),
        "user-certificate": creds_of(certs["user"], ca),
    }[client]
    status = await stream_with(tls_server.t.address, [hello(2, 1, heartbeat_term=1000)], creds)
    assert status is not None and (status != grpc.StatusCode.OK or client == "user-certificate")
    assert tls_server.received() == []
    assert not tls_server.t.is_connected(2)
    if client == "user-certificate":  # a valid chain that names no node: refused by the transport
        assert tls_server.t.refused_streams == 1


async def test_a_peer_claiming_another_node_than_its_certificate_is_refused(
    tls_server: Node, certs: dict[str, pki.CertFiles], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    creds = creds_of(certs["broker-2"], certs["broker-1"].ca)
    await stream_with(tls_server.t.address, [hello(3, 1, heartbeat_term=1000)], creds)
    assert tls_server.received() == []
    assert not tls_server.t.is_connected(3) and not tls_server.t.is_connected(2)
    assert tls_server.t.refused_streams == 1
    assert "reason=identity_mismatch claimed=3 certificate=2" in caplog.text
    # Its own id is accepted, but a later frame claiming another sender ends the stream.
    await stream_with(
        tls_server.t.address, [hello(2, 1), hello(3, 1, heartbeat_term=1000)], creds, wait_s=0.5
    )
    assert tls_server.received() == []
    assert "reason=sender_mismatch" in caplog.text


async def test_the_dialer_checks_the_server_certificate_names_the_node_it_dials(
    certs: dict[str, pki.CertFiles], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    impostor = Node(3, tls_for(certs["broker-3"]))  # a genuine broker, but not node 2
    dialer = Node(1, tls_for(certs["broker-1"]))
    await impostor.t.start()
    await dialer.t.start()
    try:
        impostor.t.add_peer(1, dialer.t.address)
        dialer.t.add_peer(2, impostor.t.address)  # node 1 believes node 2 listens there
        await wait_until(lambda: dialer.t.refused_streams >= 1)
        assert not dialer.t.is_connected(2)
        assert "event=peer_identity_mismatch node=1 peer=2" in caplog.text
    finally:
        await dialer.t.stop()
        await impostor.t.stop()


async def test_server_certificate_files_are_reloaded_when_replaced(
    tmp_path: Path, certs: dict[str, pki.CertFiles]
) -> None:
    """Rotation to a new CA without a restart: the server picks up new files at the next handshake."""
    new_ca = pki.create_ca(tmp_path / "new-ca", common_name="rotated")
    live = tmp_path / "live"
    live.mkdir()
    old = certs["broker-1"]
    files = pki.CertFiles(live / "broker.crt", live / "broker.key", live / "ca.crt")
    for src, dst in ((old.cert, files.cert), (old.key, files.key), (old.ca, files.ca)):
        shutil.copy(src, dst)
    server = Node(1, tls_for(files))
    await server.t.start()
    server.t.add_peer(2, "127.0.0.1:1")
    try:
        new_2 = pki.issue_broker(new_ca, tmp_path / "new", 2)
        new_creds = creds_of(new_2, new_ca.cert)
        await stream_with(server.t.address, [hello(2, 1)], new_creds)
        assert not server.t.is_connected(2)  # not trusted yet
        new_1 = pki.issue_broker(new_ca, tmp_path / "new", 1)
        for src, dst in ((new_1.cert, files.cert), (new_1.key, files.key), (new_ca.cert, files.ca)):
            tmp = dst.with_suffix(".tmp")
            shutil.copy(src, tmp)
            tmp.replace(dst)
        task = asyncio.get_running_loop().create_task(
            stream_with(server.t.address, [hello(2, 1)], new_creds, wait_s=3.0)
        )
        await wait_until(lambda: server.t.is_connected(2), limit_s=3.0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    finally:
        await server.t.stop()
