"""Reading a consumer group's subscribed topics from its members' JoinGroup metadata (for OffsetDelete's
GROUP_SUBSCRIBED_TO_TOPIC): every ConsumerProtocolSubscription version, and malformed metadata as
"unknown" (so nothing in use is deleted), never an exception or a huge allocation."""

from __future__ import annotations

import struct

import pytest
from streamraft_broker.groups.subscription import SubscriptionError, subscribed_topics, topics_of


def _subscription(version: int, topics: list[str], tail: bytes = b"") -> bytes:
    body = struct.pack(">hi", version, len(topics))
    for t in topics:
        body += struct.pack(">h", len(t)) + t.encode()
    # user data (null) and, from v1, owned partitions etc.: never read.
    return body + struct.pack(">i", -1) + tail


@pytest.mark.parametrize("version", [0, 1, 2, 3])
def test_every_version_names_its_topics(version: int) -> None:
    tail = struct.pack(">i", 0) if version >= 1 else b""
    assert topics_of(_subscription(version, ["a", "b"], tail)) == {"a", "b"}


def test_members_topics_are_united() -> None:
    members = [_subscription(0, ["a"]), _subscription(3, ["b", "a"])]
    assert subscribed_topics("consumer", members) == {"a", "b"}
    assert subscribed_topics("consumer", []) == set()


@pytest.mark.parametrize(
    "metadata",
    [
        b"",
        b"\x00",
        struct.pack(">hi", 0, 2**31 - 1),  # a count the bytes cannot hold
        struct.pack(">hi", 0, -5),
        struct.pack(">hih", 0, 1, 50) + b"short",  # a name longer than what is left
        struct.pack(">hih", 0, 1, 2) + b"\xff\xfe",  # not UTF-8
        struct.pack(">hi", -1, 0),
    ],
)
def test_malformed_metadata_is_unknown(metadata: bytes) -> None:
    with pytest.raises(SubscriptionError):
        topics_of(metadata)
    assert subscribed_topics("consumer", [_subscription(0, ["a"]), metadata]) is None


def test_other_protocol_types_are_unknown() -> None:
    assert subscribed_topics("connect", [_subscription(0, ["a"])]) is None
    assert subscribed_topics(None, []) is None
