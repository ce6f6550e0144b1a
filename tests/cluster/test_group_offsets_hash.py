"""A group's `__consumer_offsets` partition is chosen as Kafka chooses it: abs(String.hashCode) % N."""

from __future__ import annotations

import pytest
from streamraft_broker.replication.group_offsets import (
    PARTITIONS_ENV,
    configured_partitions,
    java_string_hash,
    partition_for,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", 0),
        ("a", 97),
        ("hello", 99162322),
        ("polygenelubricants", -(2**31)),  # Integer.MIN_VALUE: the case Math.abs gets wrong
        ("\U0001f600", 1772899),  # hashed as its two UTF-16 surrogates, as Java does
    ],
)
def test_java_string_hash(text: str, expected: int) -> None:
    assert java_string_hash(text) == expected


def test_partition_for_masks_the_sign_bit_like_kafka_utils_abs() -> None:
    assert partition_for("polygenelubricants", 10) == 0
    assert partition_for("hello", 10) == 99162322 % 10
    assert partition_for("hello", 1) == 0
    # Negative hash codes land in range too.
    negative = "zzzzzzzz"
    # Java's definition written out: s[0]*31^(n-1) + ... + s[n-1], wrapped to a signed 32-bit int.
    unsigned = sum(ord(c) * 31 ** (len(negative) - 1 - i) for i, c in enumerate(negative)) % 2**32
    assert java_string_hash(negative) == unsigned - 2**32 < 0
    assert partition_for(negative, 7) == (java_string_hash(negative) & 0x7FFFFFFF) % 7


def test_partition_count_setting_is_checked() -> None:
    assert configured_partitions({}) == 10
    assert configured_partitions({PARTITIONS_ENV: "3"}) == 3
    for bad in ("0", "abc", "-1", "5000"):
        with pytest.raises(ValueError, match=PARTITIONS_ENV):
            configured_partitions({PARTITIONS_ENV: bad})
