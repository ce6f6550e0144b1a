"""The topics a classic consumer group's members subscribe to, read from their JoinGroup metadata.

OffsetDelete refuses to delete a group's offsets of a topic its members consume (GROUP_SUBSCRIBED_TO_TOPIC),
as Kafka does. The metadata of protocol type "consumer" is Kafka's ConsumerProtocolSubscription: an int16
version, then (in every version) an array of topic names; only that common prefix is read, so later
versions' fields never matter."""

from __future__ import annotations

import struct
from collections.abc import Iterable

CONSUMER_PROTOCOL_TYPE = "consumer"
_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")


class SubscriptionError(ValueError):
    """Metadata that is not a ConsumerProtocolSubscription."""


def topics_of(metadata: bytes) -> set[str]:
    """The topic names of one member's ConsumerProtocolSubscription; raises SubscriptionError."""
    try:
        (version,) = _I16.unpack_from(metadata, 0)
        if version < 0:
            raise SubscriptionError(f"negative consumer protocol version {version}")
        (count,) = _I32.unpack_from(metadata, 2)
        # Each name takes at least its 2-byte length: a count the buffer cannot hold is malformed.
        if count < 0 or count * 2 > len(metadata) - 6:
            raise SubscriptionError(f"topic count {count} does not fit the metadata")
        pos, topics = 6, set()
        for _ in range(count):
            (size,) = _I16.unpack_from(metadata, pos)
            pos += 2
            if size < 0 or pos + size > len(metadata):
                raise SubscriptionError(f"topic name of {size} bytes does not fit the metadata")
            topics.add(metadata[pos : pos + size].decode())
            pos += size
        return topics
    except (struct.error, UnicodeDecodeError) as exc:
        raise SubscriptionError(str(exc)) from None


def subscribed_topics(protocol_type: str | None, members_metadata: Iterable[bytes]) -> set[str] | None:
    """Every topic the members subscribe to, or None when unknown (not a consumer group, or metadata that
    does not parse): Kafka's ClassicGroup.computeSubscribedTopics."""
    if protocol_type != CONSUMER_PROTOCOL_TYPE:
        return None
    topics: set[str] = set()
    try:
        for metadata in members_metadata:
            topics |= topics_of(metadata)
    except SubscriptionError:
        return None
    return topics
