"""gRPC transport: one long-lived bidirectional stream per pair of nodes, shared by all Raft groups.

The node with the lower id dials; the other side answers on the same stream, so each pair has exactly one
stream. Messages queued with ``send`` go out at the next ``flush`` (the runtime flushes once per loop
iteration): all of a peer's messages share one envelope, heartbeats and heartbeat responses of every group
are packed into its compact heartbeat section, so idle traffic costs one frame per peer per tick whatever
the number of groups. An envelope larger than ``max_frame_bytes`` is split into chunks reassembled by the
receiver (big appends, snapshots).

Frames are handled as raw bytes so that a frame which fails to decode, carries an incompatible version or
is addressed to another node is logged on one line and dropped, while the stream stays up.

Who a peer is: the first frame of an accepted stream names its sender; nothing of that frame is delivered
before the stream is accepted, and every later frame must name the same sender. Without TLS that is all
there is (any process that reaches the port can claim to be a known node). With ``TransportTls`` both
ends present certificates signed by the cluster's CA (mutual TLS), and a peer's node id is the one its
certificate is bound to (``TransportTls.node_id_of``): an accepting node refuses a stream whose frames
claim another id, and a dialing node first checks that the server's certificate names the node it means
to reach. Certificate files are read again when they change on disk (rotation without restart).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import random
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import grpc.aio
from google.protobuf.message import DecodeError

from streamraft_consensus.core.types import Message, MessageType
from streamraft_consensus.transport import raft_pb2 as pb
from streamraft_consensus.transport.convert import message_from_pb, message_to_pb
from streamraft_consensus.transport.faults import FaultInjector

log = logging.getLogger("streamraft.consensus.transport")

PROTOCOL_VERSION = 1
METHOD = "/streamraft.raft.v1.Raft/Stream"


@dataclass(frozen=True)
class TransportConfig:
    max_frame_bytes: int = 4 << 20
    """Envelopes above this are chunked; gRPC's message limit is set a little above it."""
    send_queue_frames: int = 8192
    """Frames waiting for a slow peer beyond this are dropped (Raft retransmits)."""
    max_reassembly_bytes: int = 1 << 30
    backoff_initial_s: float = 0.05
    backoff_max_s: float = 0.5
    connect_timeout_s: float = 2.0
    stale_stream_s: float = 1.5
    """A stream that delivered no frame at all for this long is torn down and redialled: a live peer pings
    every ``node_ping_interval_s``, so silence means the stream died without either side being told."""
    """Kept short: only the lower-id node dials, so a restarted higher-id peer waits for this retry."""
    node_ping_interval_s: float = 0.1
    """With nothing else sent for this long, an empty envelope goes out: node-level liveness."""
    probe_after_s: float = 0.12
    """A connected peer silent this long gets a TCP connect probe. The side that accepted a stream is not
    reliably told when the dialing process dies; a refused connect proves it is gone."""
    confirm_fresh_s: float = 0.002
    """``confirm_alive`` trusts a frame (or a confirmation) this recent without probing."""
    confirm_timeout_s: float = 0.1

    def __post_init__(self) -> None:
        if self.max_frame_bytes < 1024:
            raise ValueError(f"max_frame_bytes={self.max_frame_bytes} is below 1024")


NodeIdOf = Callable[[bytes], "int | None"]
"""The node id a peer certificate (DER) is bound to, or None if it names no node."""


@dataclass(frozen=True)
class TransportTls:
    """Mutual TLS for the transport. PEM files, read at start and again whenever they change on disk."""

    cert_file: Path
    """This node's certificate (chain), used as server and as client certificate."""
    key_file: Path
    ca_file: Path
    """The CA(s) a peer's certificate must chain to."""
    node_id_of: NodeIdOf
    handshake_timeout_s: float = 2.0

    def read(self) -> tuple[bytes, bytes, bytes]:
        """(key, cert, ca) as bytes; raises OSError naming the file that cannot be read."""
        return self.key_file.read_bytes(), self.cert_file.read_bytes(), self.ca_file.read_bytes()

    def stamp(self) -> tuple[float, ...]:
        """Changes when any of the files is replaced or rewritten."""
        stamps: list[float] = []
        for f in (self.cert_file, self.key_file, self.ca_file):
            try:
                st = os.stat(f)
                stamps += [st.st_mtime, float(st.st_ino), float(st.st_size)]
            except OSError:
                stamps.append(-1.0)
        return tuple(stamps)

    def client_context(self) -> ssl.SSLContext:
        """For checking which node a server's certificate names (see ``GrpcTransport._check_server``)."""
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(self.ca_file))
        ctx.load_cert_chain(str(self.cert_file), str(self.key_file))
        ctx.check_hostname = False  # the identity checked is the node id; gRPC checks the host name itself
        ctx.set_alpn_protocols(["h2"])
        return ctx


class PeerIdentityError(Exception):
    """A peer's certificate does not name the node it claims to be (or names none)."""


@dataclass
class Inbound:
    """What one received envelope carried."""

    from_node: int
    messages: list[tuple[int, Message]] = field(default_factory=list)
    quiesce: list[int] = field(default_factory=list)


Receiver = Callable[[Inbound], None]


class _Link:
    def __init__(self, peer: int, address: str | None, queue_frames: int) -> None:
        self.peer = peer
        self.address = address
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(queue_frames)
        self.connected = False
        self.generation = 0
        self.last_heard: float | None = None
        self.last_frame = 0.0
        self.last_sent = 0.0
        self.messages: list[tuple[int, Message]] = []
        self.heartbeats: list[tuple[int, Message]] = []
        self.responses: list[tuple[int, Message]] = []
        self.quiesce: list[int] = []
        self.dialer: asyncio.Task[None] | None = None
        self.kill: asyncio.Future[None] | None = None
        self.probing = False
        self.chunks: list[bytes] = []
        self.chunk_bytes = 0
        self.dropped_frames = 0
        self.confirming: asyncio.Future[bool] | None = None
        self.confirmed_at = 0.0
        self.tls_failures = 0
        """Consecutive dials that failed the TLS identity check (logged once per 100)."""
        self.peer_started: float | None = None
        """time.monotonic() (ours) at which the peer's transport started, from the uptime it reports."""

    def has_pending(self) -> bool:
        return bool(self.messages or self.heartbeats or self.responses or self.quiesce)


class GrpcTransport:
    def __init__(
        self,
        node_id: int,
        on_receive: Receiver,
        listen: str = "127.0.0.1:0",
        *,
        config: TransportConfig | None = None,
        faults: FaultInjector | None = None,
        on_peer_change: Callable[[int, bool], None] | None = None,
        tls: TransportTls | None = None,
    ) -> None:
        """``on_peer_change(peer, connected)`` is called when a peer's stream comes up or goes down.
        ``tls``: mutual TLS with node ids bound to certificates; None serves and dials in plaintext."""
        if node_id < 1:
            raise ValueError(f"node id {node_id} must be >= 1")
        self.node_id = node_id
        self.config = config or TransportConfig()
        self.faults = faults or FaultInjector()
        self._on_receive = on_receive
        self._on_peer_change = on_peer_change
        self._listen = listen
        self._links: dict[int, _Link] = {}
        self._server: grpc.aio.Server | None = None
        self._chunk_ids = itertools.count(1)
        self._stopped = False
        self.blank = False
        """Advertised to peers in every envelope (see the broker's replication.rejoin)."""
        self._peer_blank: dict[int, bool] = {}
        self._liveness: asyncio.Task[None] | None = None
        self._probes: set[asyncio.Task[None]] = set()
        self._started = time.monotonic()
        self.tls = tls
        self.refused_streams = 0
        """Streams refused because of who the peer is (unknown node, no or wrong certificate identity)."""
        self.dropped_inbound_frames = 0
        """Frames dropped on an accepted stream: malformed, misaddressed or naming another sender."""
        limit = self.config.max_frame_bytes + (64 << 10)
        self._grpc_options = [
            ("grpc.max_send_message_length", limit),
            ("grpc.max_receive_message_length", limit),
            ("grpc.keepalive_time_ms", 10_000),
            ("grpc.keepalive_timeout_ms", 5_000),
            # Our own loop redials; gRPC's internal reconnect backoff (1 s growing to 120 s) must not stack.
            ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.min_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", 500),
        ]
        self.address = ""

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> str:
        """Listen; returns the bound host:port."""
        server = grpc.aio.server(options=self._grpc_options)
        handler = grpc.method_handlers_generic_handler(
            "streamraft.raft.v1.Raft",
            {"Stream": grpc.stream_stream_rpc_method_handler(self._serve)},  # raw bytes both ways
        )
        server.add_generic_rpc_handlers((handler,))
        if self.tls is None:
            port = server.add_insecure_port(self._listen)
        else:
            port = server.add_secure_port(self._listen, self._server_credentials(self.tls))
        if port == 0:
            raise OSError(f"cannot listen on {self._listen}")
        await server.start()
        self._server = server
        self._liveness = asyncio.get_running_loop().create_task(self._probe_silent_peers())
        host = self._listen.rsplit(":", 1)[0]
        self.address = f"{host}:{port}"
        log.info(
            "event=transport_listening node=%d address=%s tls=%s",
            self.node_id,
            self.address,
            self.tls is not None,
        )
        return self.address

    def _server_credentials(self, tls: TransportTls) -> grpc.ServerCredentials:
        """Client certificates required and verified against the CA; files re-read once changed."""
        seen = [tls.stamp()]

        def configuration() -> grpc.ServerCertificateConfiguration:
            key, cert, ca = tls.read()
            return grpc.ssl_server_certificate_configuration([(key, cert)], root_certificates=ca)

        def fetch() -> grpc.ServerCertificateConfiguration | None:
            # Called by gRPC before each handshake: a stat of three files, a reload only when they changed.
            stamp = tls.stamp()
            if stamp == seen[0]:
                return None
            try:
                config = configuration()
            except OSError as err:
                log.warning("event=tls_reload_failed node=%d error=%r", self.node_id, str(err))
                return None
            seen[0] = stamp
            log.info("event=tls_reloaded node=%d", self.node_id)
            return config

        # grpc-stubs types the fetcher as never returning None; gRPC documents None as "no change".
        return grpc.dynamic_ssl_server_credentials(
            configuration(),
            fetch,  # type: ignore[arg-type]
            require_client_authentication=True,
        )

    def _refuse(self, reason: str, **details: object) -> None:
        self.refused_streams += 1
        extra = " ".join(f"{k}={v}" for k, v in details.items())
        log.warning("event=stream_refused node=%d reason=%s %s", self.node_id, reason, extra)

    def _certificate_node(self, context: grpc.aio.ServicerContext[bytes, bytes]) -> int | None:
        """The node id the client's (verified) certificate is bound to."""
        assert self.tls is not None
        pems = list(context.auth_context().get("x509_pem_cert", ()))
        if len(pems) != 1:
            return None
        try:
            der = ssl.PEM_cert_to_DER_cert(pems[0].decode("ascii"))
            return self.tls.node_id_of(der)
        except (ValueError, UnicodeDecodeError) as err:
            log.warning("event=peer_certificate_unreadable node=%d error=%r", self.node_id, str(err))
            return None

    async def _check_server(self, link: _Link, tls: TransportTls) -> None:
        """Before dialing: the certificate the peer's address presents must name ``link.peer`` (gRPC's
        own handshake, which follows, checks the chain and the host name but not the node id)."""
        assert link.address is not None
        host, port = link.address.rsplit(":", 1)
        ctx = tls.client_context()
        async with asyncio.timeout(tls.handshake_timeout_s):
            _, writer = await asyncio.open_connection(host.strip("[]"), int(port), ssl=ctx)
        try:
            ssl_object = writer.get_extra_info("ssl_object")
            der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
        named = tls.node_id_of(der) if der else None
        if named != link.peer:
            self.refused_streams += 1
            raise PeerIdentityError(f"{link.address} presents a certificate of node {named}, not {link.peer}")

    async def stop(self) -> None:
        self._stopped = True
        tasks: list[asyncio.Task[None]] = [self._liveness] if self._liveness is not None else []
        for link in self._links.values():
            if link.dialer is not None:
                tasks.append(link.dialer)
            if link.kill is not None and not link.kill.done():
                link.kill.set_result(None)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.stop(grace=0.2)

    def add_peer(self, node_id: int, address: str) -> None:
        if node_id == self.node_id:
            return
        link = self._links.get(node_id)
        if link is None:
            link = self._links[node_id] = _Link(node_id, address, self.config.send_queue_frames)
        link.address = address
        if self.node_id < node_id and link.dialer is None and not self._stopped:
            link.dialer = asyncio.get_running_loop().create_task(self._dial_forever(link))

    def remove_peer(self, node_id: int) -> None:
        link = self._links.pop(node_id, None)
        if link is not None:
            if link.dialer is not None:
                link.dialer.cancel()
            if link.kill is not None and not link.kill.done():
                link.kill.set_result(None)

    def peers(self) -> list[int]:
        return list(self._links)

    def is_connected(self, node_id: int) -> bool:
        link = self._links.get(node_id)
        return link is not None and link.connected

    def uptime(self) -> float:
        """Seconds this transport has been running."""
        return time.monotonic() - self._started

    def peer_uptime(self, node_id: int) -> float | None:
        """Seconds ``node_id``'s transport has been running, as it last reported; None when unknown."""
        link = self._links.get(node_id)
        if link is None or link.peer_started is None:
            return None
        return time.monotonic() - link.peer_started

    def peer_blank(self, node_id: int) -> bool | None:
        """What ``node_id`` last advertised as its ``blank`` flag; None before any frame from it."""
        return self._peer_blank.get(node_id)

    def last_heard(self, node_id: int) -> float | None:
        """time.monotonic() of the last frame received from ``node_id``."""
        link = self._links.get(node_id)
        return None if link is None else link.last_heard

    # ------------------------------------------------------------------ sending

    def send(self, group: int, msg: Message) -> None:
        link = self._links.get(msg.to)
        if link is None:
            log.debug("event=send_to_unknown_peer node=%d peer=%d group=%d", self.node_id, msg.to, group)
            return
        if msg.type == MessageType.HEARTBEAT:
            link.heartbeats.append((group, msg))
        elif msg.type == MessageType.HEARTBEAT_RESP:
            link.responses.append((group, msg))
        else:
            link.messages.append((group, msg))

    def send_quiesce(self, peer: int, group: int) -> None:
        link = self._links.get(peer)
        if link is not None:
            link.quiesce.append(group)

    def flush(self) -> None:
        """Turn everything queued by ``send`` into frames, at most one envelope per peer unless large."""
        now = time.monotonic()
        for link in self._links.values():
            if not link.has_pending():
                continue
            if not self.faults.allows(self.node_id, link.peer):
                self._clear(link)
                continue
            for frame in self._frames(link):
                self._enqueue(link, frame, now)
            self._clear(link)

    @staticmethod
    def _clear(link: _Link) -> None:
        link.messages = []
        link.heartbeats = []
        link.responses = []
        link.quiesce = []

    def _envelope(self, peer: int) -> pb.Envelope:
        uptime_ms = max(1, int((time.monotonic() - self._started) * 1000))
        return pb.Envelope(
            version=PROTOCOL_VERSION,
            from_node=self.node_id,
            to_node=peer,
            uptime_ms=uptime_ms,
            blank=self.blank,
        )

    def _frames(self, link: _Link) -> list[bytes]:
        env = self._envelope(link.peer)
        section = env.heartbeats
        for group, m in link.heartbeats:
            section.heartbeats.add(group=group, term=m.term, commit=m.commit, context=m.context)
        for group, m in link.responses:
            section.responses.add(
                group=group,
                term=m.term,
                commit=m.commit,
                context=m.context,
                reject=m.reject,
                recovering=m.recovering,
            )
        section.quiesce.extend(link.quiesce)
        for group, m in link.messages:
            gm = env.messages.add(group=group)
            message_to_pb(m, gm.message)
        frame = env.SerializeToString()
        limit = self.config.max_frame_bytes
        if len(frame) <= limit:
            return [frame]
        # Too big for one frame: one envelope per run of messages that fits, chunking any single message
        # that alone is too large.
        envs: list[pb.Envelope] = []
        first = self._envelope(link.peer)
        first.heartbeats.CopyFrom(section)
        envs.append(first)
        size = first.ByteSize()
        for gm in env.messages:
            n = gm.ByteSize() + 8
            if size + n > limit and (envs[-1].messages or envs[-1].HasField("heartbeats")):
                envs.append(self._envelope(link.peer))
                size = 0
            envs[-1].messages.append(gm)
            size += n
        frames: list[bytes] = []
        for e in envs:
            data = e.SerializeToString()
            if len(data) <= limit:
                frames.append(data)
            else:
                frames.extend(self._chunk(link.peer, data))
        return frames

    def _chunk(self, peer: int, data: bytes) -> list[bytes]:
        step = self.config.max_frame_bytes - 256  # room for the chunk envelope's own fields
        chunk_id = next(self._chunk_ids)
        frames = []
        for seq, start in enumerate(range(0, len(data), step)):
            env = self._envelope(peer)
            env.chunk.id = chunk_id
            env.chunk.seq = seq
            env.chunk.last = start + step >= len(data)
            env.chunk.data = data[start : start + step]
            frames.append(env.SerializeToString())
        return frames

    def _enqueue(self, link: _Link, frame: bytes, now: float) -> None:
        if not link.connected:
            return  # nobody to hear it; Raft retransmits once the stream is back
        try:
            link.queue.put_nowait(frame)
            link.last_sent = now
        except asyncio.QueueFull:
            link.dropped_frames += 1
            if link.dropped_frames % 1000 == 1:
                log.warning(
                    "event=send_queue_full node=%d peer=%d dropped_total=%d",
                    self.node_id,
                    link.peer,
                    link.dropped_frames,
                )

    # ------------------------------------------------------------------ streams

    async def _dial_forever(self, link: _Link) -> None:
        backoff = self.config.backoff_initial_s
        while not self._stopped:
            started = time.monotonic()
            try:
                await self._dial_once(link)
            except Exception:
                # The dialer is the only thing that ever reconnects this pair: whatever one attempt
                # raised, it must live on and try again, or the two nodes stay apart for good.
                log.exception("event=peer_dial_failed node=%d peer=%d", self.node_id, link.peer)
            if time.monotonic() - started > 5.0:
                backoff = self.config.backoff_initial_s
            await asyncio.sleep(backoff * random.uniform(0.5, 1.0))
            backoff = min(backoff * 2, self.config.backoff_max_s)

    async def _dial_once(self, link: _Link) -> None:
        assert link.address is not None
        tls = self.tls
        if tls is None:
            channel = grpc.aio.insecure_channel(link.address, options=self._grpc_options)
        else:
            try:
                await self._check_server(link, tls)
                key, cert, ca = tls.read()  # per dial: a rotated certificate is used from the next one
            except PeerIdentityError as err:
                link.tls_failures += 1
                if link.tls_failures % 100 == 1:  # redialled every backoff: one line per 100 failures
                    log.warning(
                        "event=peer_identity_mismatch node=%d peer=%d error=%r failures=%d",
                        self.node_id,
                        link.peer,
                        str(err),
                        link.tls_failures,
                    )
                return
            except (OSError, ssl.SSLError, TimeoutError) as err:
                link.tls_failures += 1
                if link.tls_failures % 100 == 1:
                    log.info(
                        "event=peer_tls_failed node=%d peer=%d error=%r failures=%d",
                        self.node_id,
                        link.peer,
                        str(err),
                        link.tls_failures,
                    )
                return
            link.tls_failures = 0
            creds = grpc.ssl_channel_credentials(
                root_certificates=ca, private_key=key, certificate_chain=cert
            )
            channel = grpc.aio.secure_channel(link.address, creds, options=self._grpc_options)
        call: grpc.aio.StreamStreamCall[bytes, bytes] | None = None
        try:
            # Every step that waits on the peer is bounded: a call to a peer that is down or restarting
            # can otherwise wait on gRPC's own reconnect backoff indefinitely.
            async with asyncio.timeout(self.config.connect_timeout_s):
                await channel.channel_ready()
                # Raw bytes both ways: the stubs insist on serializer arguments that grpc does not need.
                multi = channel.stream_stream(METHOD)  # type: ignore[call-arg]
                call = multi()  # type: ignore[call-arg]
                await call.write(self._envelope(link.peer).SerializeToString())
            await self._pump(link, call.read, call.write)
        except grpc.aio.AioRpcError as err:
            log.info(
                "event=peer_stream_failed node=%d peer=%d code=%s", self.node_id, link.peer, err.code().name
            )
        except TimeoutError:
            log.info("event=peer_connect_timeout node=%d peer=%d", self.node_id, link.peer)
        except (asyncio.InvalidStateError, grpc.aio.UsageError) as err:
            # grpc.aio raises these (not AioRpcError) when the call ends between our reads and
            # writes, e.g. "RPC already finished" while the peer restarts.
            log.info("event=peer_stream_failed node=%d peer=%d code=%s", self.node_id, link.peer, err)
        finally:
            if call is not None:
                call.cancel()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await channel.close(None)

    async def _serve(self, request_iterator: object, context: grpc.aio.ServicerContext[bytes, bytes]) -> None:
        certified: int | None = None
        if self.tls is not None:
            certified = self._certificate_node(context)
            if certified is None:
                self._refuse("certificate_names_no_node", peer_addr=context.peer())
                return
        first = await context.read()
        if not isinstance(first, bytes):
            return
        # Nothing of the first frame is delivered until the stream is accepted.
        peer = self._hello_sender(first)
        if peer is None:
            self._refuse("bad_hello", peer_addr=context.peer())
            return
        if certified is not None and peer != certified:
            self._refuse("identity_mismatch", claimed=peer, certificate=certified, peer_addr=context.peer())
            return
        link = self._links.get(peer)
        if link is None:
            self._refuse("unknown_peer", claimed=peer, peer_addr=context.peer())
            return
        if link.kill is not None and not link.kill.done():
            link.kill.set_result(None)  # the peer reconnected: the old stream is dead
        link.last_heard = time.monotonic()
        self._handle_frame(first, link)

        async def read() -> object:
            return await context.read()

        await self._pump(link, read, context.write)

    async def _pump(
        self,
        link: _Link,
        read: Callable[[], Awaitable[object]],
        write: Callable[[bytes], Awaitable[None]],
    ) -> None:
        """Run one stream until it fails, either side ends it, or the peer is found dead."""
        loop = asyncio.get_running_loop()
        link.generation += 1
        generation = link.generation
        kill: asyncio.Future[None] = loop.create_future()
        link.kill = kill
        # Drop frames queued for the previous stream: they are stale.
        while not link.queue.empty():
            link.queue.get_nowait()
        link.connected = True
        link.last_frame = time.monotonic()
        log.info("event=peer_connected node=%d peer=%d", self.node_id, link.peer)
        self._notify(link.peer, True)

        async def writer() -> None:
            while True:
                frame = await link.queue.get()
                await write(frame)

        async def reader() -> None:
            while True:
                raw = await read()
                if not isinstance(raw, bytes):
                    return  # EOF
                self._handle_frame(raw, link)

        tasks = {loop.create_task(writer()), loop.create_task(reader())}
        try:
            done, _ = await asyncio.wait({*tasks, kill}, return_when=asyncio.FIRST_COMPLETED)
            for task in done & tasks:
                exc = None if task.cancelled() else task.exception()
                if exc is not None:
                    raise exc
        finally:
            for task in tasks:
                task.cancel()
            kill.cancel()
            if link.generation == generation:
                link.connected = False
                log.info("event=peer_disconnected node=%d peer=%d", self.node_id, link.peer)
                self._notify(link.peer, False)

    async def _probe_silent_peers(self) -> None:
        """Node-level liveness: ping quiet streams, probe silent peers, tear down dead streams."""
        interval = min(self.config.probe_after_s, self.config.node_ping_interval_s) / 2
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            for link in list(self._links.values()):
                if link.connected and now - link.last_sent >= self.config.node_ping_interval_s:
                    self._enqueue(link, self._envelope(link.peer).SerializeToString(), now)
                if link.connected and now - link.last_frame > self.config.stale_stream_s:
                    log.info("event=stale_stream node=%d peer=%d", self.node_id, link.peer)
                    if link.kill is not None and not link.kill.done():
                        link.kill.set_result(None)
                    continue
                heard = link.last_heard
                silent = heard is not None and now - heard > self.config.probe_after_s
                if link.connected and not link.probing and silent and link.address:
                    link.probing = True
                    probe = asyncio.get_running_loop().create_task(self._probe(link))
                    self._probes.add(probe)
                    probe.add_done_callback(self._probes.discard)

    async def confirm_alive(self, node_id: int) -> bool:
        """Whether ``node_id`` still runs, checked now: True if a frame arrived within ``fresh_s`` or a TCP
        connect to it succeeds (or is inconclusive); False if its stream is down or the connect is refused,
        and then its stream is torn down at once, as when a probe finds it dead. For callers about to tell
        clients who leads: a peer killed a moment ago is otherwise noticed a few ms later than the clients
        connected to it notice, and they would be sent back to it. Concurrent calls share one probe."""
        link = self._links.get(node_id)
        if link is None or not link.connected or link.address is None:
            return False
        now = time.monotonic()
        fresh_s = self.config.confirm_fresh_s
        heard = link.last_heard if link.last_heard is not None else 0.0
        if now - max(heard, link.confirmed_at) < fresh_s:
            return True
        if link.confirming is None:
            link.confirming = asyncio.get_running_loop().create_future()
            task = asyncio.get_running_loop().create_task(self._confirm(link, link.confirming))
            self._probes.add(task)
            task.add_done_callback(self._probes.discard)
        return await asyncio.shield(link.confirming)

    async def _confirm(self, link: _Link, result: asyncio.Future[bool]) -> None:
        assert link.address is not None
        host, port = link.address.rsplit(":", 1)
        alive = True
        try:
            async with asyncio.timeout(self.config.confirm_timeout_s):
                _, writer = await asyncio.open_connection(host, int(port))
            writer.close()
        except (ConnectionRefusedError, ConnectionResetError):
            alive = False
            if link.connected and link.kill is not None and not link.kill.done():
                log.info(
                    "event=peer_unreachable node=%d peer=%d reason=connect_refused_on_confirm",
                    self.node_id,
                    link.peer,
                )
                link.kill.set_result(None)
        except (OSError, TimeoutError):
            pass  # busy or partitioned, not provably dead
        finally:
            if alive:
                link.confirmed_at = time.monotonic()
            link.confirming = None
            result.set_result(alive)

    async def _probe(self, link: _Link) -> None:
        assert link.address is not None
        host, port = link.address.rsplit(":", 1)
        try:
            async with asyncio.timeout(0.5):
                _, writer = await asyncio.open_connection(host, int(port))
            writer.close()
        except (ConnectionRefusedError, ConnectionResetError):
            if link.connected and link.kill is not None and not link.kill.done():
                log.info(
                    "event=peer_unreachable node=%d peer=%d reason=connect_refused", self.node_id, link.peer
                )
                link.kill.set_result(None)
        except (OSError, TimeoutError):
            pass  # busy or partitioned, not provably dead: the silence timeout decides
        finally:
            link.probing = False

    def _notify(self, peer: int, connected: bool) -> None:
        if self._on_peer_change is not None:
            try:
                self._on_peer_change(peer, connected)
            except Exception:
                log.exception("event=peer_change_callback_failed node=%d peer=%d", self.node_id, peer)

    # ------------------------------------------------------------------ receiving

    def _hello_sender(self, raw: bytes) -> int | None:
        """The sender a stream's first frame names, if it is a well-formed frame addressed to us."""
        try:
            env = pb.Envelope.FromString(raw)
        except DecodeError:
            return None
        if env.version != PROTOCOL_VERSION or env.to_node != self.node_id or env.from_node < 1:
            return None
        return env.from_node

    def _handle_frame(self, raw: bytes, link: _Link | None) -> int | None:
        """Decode and deliver one frame; returns the sender's node id, or None if it was dropped."""
        try:
            env = pb.Envelope.FromString(raw)
        except DecodeError as err:
            log.warning(
                "event=malformed_frame node=%d peer=%s bytes=%d error=%r",
                self.node_id,
                link.peer if link else "?",
                len(raw),
                str(err),
            )
            self.dropped_inbound_frames += 1
            return None
        if env.version != PROTOCOL_VERSION:
            log.warning(
                "event=incompatible_version node=%d peer=%d version=%d supported=%d",
                self.node_id,
                env.from_node,
                env.version,
                PROTOCOL_VERSION,
            )
            self.dropped_inbound_frames += 1
            return None
        if env.to_node != self.node_id or env.from_node < 1:
            log.warning(
                "event=misaddressed_frame node=%d from=%d to=%d", self.node_id, env.from_node, env.to_node
            )
            self.dropped_inbound_frames += 1
            return None
        if link is not None:
            link.last_frame = time.monotonic()
        if link is not None and env.from_node != link.peer:
            log.warning(
                "event=sender_mismatch node=%d stream_peer=%d from=%d", self.node_id, link.peer, env.from_node
            )
            self.dropped_inbound_frames += 1
            # A stream is one node's: one whose frames claim another sender is ended (the peer redials).
            self._refuse("sender_mismatch", stream_peer=link.peer, claimed=env.from_node)
            if link.kill is not None and not link.kill.done():
                link.kill.set_result(None)
            return None
        if not self.faults.allows(env.from_node, self.node_id):
            return env.from_node  # an injected partition also hides node-level liveness
        if link is not None:
            link.last_heard = time.monotonic()
            if env.uptime_ms:
                link.peer_started = link.last_heard - env.uptime_ms / 1000
        self._peer_blank[env.from_node] = env.blank
        if env.HasField("chunk"):
            if link is not None:
                self._reassemble(link, env.chunk)
            return env.from_node
        self._deliver(env)
        return env.from_node

    def _reassemble(self, link: _Link, chunk: pb.Chunk) -> None:
        if chunk.seq != len(link.chunks):
            log.warning(
                "event=chunk_out_of_order node=%d peer=%d seq=%d expected=%d",
                self.node_id,
                link.peer,
                chunk.seq,
                len(link.chunks),
            )
            link.chunks = []
            link.chunk_bytes = 0
            if chunk.seq != 0:
                return
        link.chunks.append(chunk.data)
        link.chunk_bytes += len(chunk.data)
        if link.chunk_bytes > self.config.max_reassembly_bytes:
            log.warning("event=chunked_message_too_large node=%d peer=%d", self.node_id, link.peer)
            link.chunks = []
            link.chunk_bytes = 0
            return
        if chunk.last:
            data = b"".join(link.chunks)
            link.chunks = []
            link.chunk_bytes = 0
            self._handle_frame(data, link)

    def _deliver(self, env: pb.Envelope) -> None:
        frm = env.from_node
        me = self.node_id
        inbound = Inbound(frm)
        section = env.heartbeats
        for hb in section.heartbeats:
            inbound.messages.append(
                (
                    hb.group,
                    Message(
                        MessageType.HEARTBEAT, me, frm, term=hb.term, commit=hb.commit, context=hb.context
                    ),
                )
            )
        for hb in section.responses:
            inbound.messages.append(
                (
                    hb.group,
                    Message(
                        MessageType.HEARTBEAT_RESP,
                        me,
                        frm,
                        term=hb.term,
                        commit=hb.commit,
                        context=hb.context,
                        reject=hb.reject,
                        recovering=hb.recovering,
                    ),
                )
            )
        for gm in env.messages:
            try:
                inbound.messages.append((gm.group, message_from_pb(gm.message, me, frm)))
            except ValueError as err:
                log.warning(
                    "event=malformed_message node=%d peer=%d group=%d error=%r",
                    self.node_id,
                    frm,
                    gm.group,
                    str(err),
                )
        inbound.quiesce.extend(section.quiesce)
        if not inbound.messages and not inbound.quiesce:
            return
        try:
            self._on_receive(inbound)
        except Exception:
            log.exception("event=receiver_failed node=%d peer=%d", self.node_id, frm)
