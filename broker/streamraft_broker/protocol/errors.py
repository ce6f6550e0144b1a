"""Errors raised while decoding bytes from the wire; each names what was wrong."""


class ProtocolError(ValueError):
    """The peer sent bytes that are not a valid Kafka request; the connection must be closed."""


class FrameTooLargeError(ProtocolError):
    """A length prefix exceeds socket.request.max.bytes (checked before any buffer is allocated)."""


class FrameTooSmallError(ProtocolError):
    """A length prefix is too small to hold even a request header."""


class HeaderDecodeError(ProtocolError):
    """The request header inside a frame is truncated or malformed."""
