"""Errors raised while validating record batches, carrying the Kafka error code a broker must answer with."""

from __future__ import annotations

from enum import IntEnum


class KafkaErrorCode(IntEnum):
    """The subset of Kafka protocol error codes that record validation can produce."""

    CORRUPT_MESSAGE = 2
    MESSAGE_TOO_LARGE = 10
    UNSUPPORTED_FOR_MESSAGE_FORMAT = 43
    INVALID_RECORD = 87


class InvalidRecordError(ValueError):
    """A record batch that must be rejected; ``error_code`` is the Kafka error code to answer with."""

    def __init__(self, error_code: int, message: str) -> None:
        super().__init__(message)
        self.error_code = int(error_code)
        self.message = message

    def __repr__(self) -> str:
        return f"InvalidRecordError(error_code={self.error_code}, message={self.message!r})"
