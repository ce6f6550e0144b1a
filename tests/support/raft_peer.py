"""A hostile Raft peer for tests: opens a stream on a broker's Raft port and sends hand-made envelopes."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import grpc
from streamraft_consensus.core.types import MessageType
from streamraft_consensus.storage.state_file import StateFile
from streamraft_consensus.transport import raft_pb2 as pb
from streamraft_consensus.transport.grpc_transport import METHOD, PROTOCOL_VERSION


def envelope(
    frm: int,
    to: int,
    *,
    proposals: Sequence[tuple[int, bytes]] = (),
    heartbeats: Sequence[tuple[int, int]] = (),
    appends: Sequence[tuple[int, int]] = (),
) -> bytes:
    """``proposals``: (group, entry data); ``heartbeats`` and ``appends``: (group, term)."""
    env = pb.Envelope(version=PROTOCOL_VERSION, from_node=frm, to_node=to, uptime_ms=1)
    for group, data in proposals:
        gm = env.messages.add(group=group)
        gm.message.type = int(MessageType.PROPOSE)
        gm.message.entries.add(term=0, index=0, type=0, data=data)
    for group, term in heartbeats:
        env.heartbeats.heartbeats.add(group=group, term=term, commit=0)
    for group, term in appends:
        gm = env.messages.add(group=group)
        gm.message.type = int(MessageType.APPEND)
        gm.message.term = term
    return env.SerializeToString()


def send_stream(
    address: str,
    frames: Sequence[bytes],
    credentials: grpc.ChannelCredentials | None = None,
    hold_s: float = 0.3,
) -> grpc.StatusCode:
    """Send ``frames`` on one stream, keep it open ``hold_s`` (a live peer's stream stays open; closing at
    once could race the server reading the frames), and return how the stream ended."""

    def requests() -> Iterator[bytes]:
        yield from frames
        time.sleep(hold_s)  # keeps the stream open, not a synchronisation: callers poll for the outcome

    if credentials is None:
        channel = grpc.insecure_channel(address)
    else:
        channel = grpc.secure_channel(address, credentials)
    with channel:
        call = channel.stream_stream(METHOD)(requests(), timeout=hold_s + 10)  # type: ignore[call-arg]
        try:
            for _ in call:
                pass
        except grpc.RpcError as err:
            return err.code()
    return grpc.StatusCode.OK


def raft_terms(raft_dir: Path) -> dict[int, int]:
    """group id -> durable Raft term, read from a broker's ``<data>/raft/group-*/state`` files."""
    terms: dict[int, int] = {}
    for state in raft_dir.glob("group-*/state"):
        terms[int(state.parent.name.removeprefix("group-"))] = StateFile(state).hard_state.term
    return terms
