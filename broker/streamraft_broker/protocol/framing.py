"""Length-prefixed frame decoder, h11-style: feed bytes in, take whole frames out.

Never touches a socket, so every byte boundary can be tested directly.
"""

from __future__ import annotations

import struct

from streamraft_broker.protocol.errors import FrameTooLargeError, FrameTooSmallError

DEFAULT_MAX_REQUEST_SIZE = 100 * 1024 * 1024  # Kafka's socket.request.max.bytes default
# api_key(2) + api_version(2) + correlation_id(4) + client_id length(2)
MIN_FRAME_SIZE = 10
_SIZE = struct.Struct(">i")


class FrameDecoder:
    """Accumulates bytes and yields complete request frames (without their 4-byte size prefix).

    The size prefix is validated as soon as its 4 bytes arrive, so a lying prefix never causes an
    allocation larger than what the peer actually sent.
    """

    def __init__(self, max_frame_size: int = DEFAULT_MAX_REQUEST_SIZE) -> None:
        assert max_frame_size >= MIN_FRAME_SIZE, "max frame size must fit a request header"
        self._max = max_frame_size
        self._min = MIN_FRAME_SIZE
        self._buf = bytearray()
        self._expected: int | None = None
        self._broken = False

    def set_limits(self, max_frame_size: int, min_frame_size: int = MIN_FRAME_SIZE) -> None:
        """Bounds for the frames from the next size prefix on (a SASL connection accepts only small
        frames before it authenticated, and bare SASL tokens shorter than a request header)."""
        if self._expected is None:
            self._max, self._min = max_frame_size, min_frame_size

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        assert not self._broken, "decoder is unusable after a framing error"
        self._buf += data

    def next_size(self) -> int | None:
        """Size of the next frame once its 4-byte prefix has arrived (validated), else None. Lets the
        connection reserve the frame's memory before reading its body."""
        if self._expected is None:
            if len(self._buf) < 4:
                return None
            (size,) = _SIZE.unpack_from(self._buf, 0)
            if size > self._max:
                self._broken = True
                raise FrameTooLargeError(
                    f"request size {size} exceeds the maximum of {self._max} bytes (socket.request.max.bytes)"
                )
            if size < self._min:
                self._broken = True
                raise FrameTooSmallError(f"request size {size} is below the minimum {self._min}")
            self._expected = size
        return self._expected

    def next_frame(self) -> bytes | None:
        """Return the next whole frame, None if more bytes are needed; raise on a bad prefix."""
        if self.next_size() is None:
            return None
        assert self._expected is not None
        end = 4 + self._expected
        if len(self._buf) < end:
            return None
        with memoryview(self._buf) as view:
            frame = bytes(view[4:end])  # one copy; slicing the bytearray first would make two
        del self._buf[:end]
        self._expected = None
        return frame


def encode_frame(payload: bytes) -> bytes:
    return _SIZE.pack(len(payload)) + payload
