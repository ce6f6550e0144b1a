"""partition.metadata: the topic id stamped in a partition directory when it is created."""

from __future__ import annotations

import uuid
from pathlib import Path

from streamraft_broker.topics import partition_metadata
from streamraft_broker.topics.registry import TopicRegistry


def test_a_new_partition_directory_is_stamped_with_its_topic_id(tmp_path: Path) -> None:
    registry = TopicRegistry(tmp_path)
    topic = registry.create("t", 2, 1, {})
    for p in range(2):
        directory = tmp_path / "logs" / f"t-{p}"
        assert partition_metadata.read_topic_id(directory) == topic.topic_id
        assert not partition_metadata.holds_other_topic(directory, topic.topic_id)
        assert partition_metadata.holds_other_topic(directory, uuid.uuid4())
    registry.close()


def test_an_unstamped_or_unreadable_directory_claims_no_topic(tmp_path: Path) -> None:
    assert partition_metadata.read_topic_id(tmp_path) is None
    assert not partition_metadata.holds_other_topic(tmp_path, uuid.uuid4())
    (tmp_path / partition_metadata.FILE).write_text("version: 0\ntopic_id: not-a-uuid\n")
    assert partition_metadata.read_topic_id(tmp_path) is None
    assert not partition_metadata.holds_other_topic(tmp_path, uuid.uuid4())
