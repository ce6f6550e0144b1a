"""Which committed offsets a coordinator drops when it loads an offsets partition (no processes).

A whole-cluster SIGKILL and restart once lost every committed offset of a group: the offsets partition's
new leader loaded it before its own controller state had replayed the creation of the topic the offsets
named, took "unknown" for "deleted", and wrote tombstones over them."""

from __future__ import annotations

import uuid

from streamraft_broker.controller.commands import CreateTopic, DeleteTopic, encode
from streamraft_broker.controller.state import ControllerState
from streamraft_broker.groups.codec import OffsetKey
from streamraft_broker.groups.model import CommittedOffset
from streamraft_broker.groups.store import LoadedState
from streamraft_broker.replication.group_offsets import drop_deleted_topics


def _loaded() -> LoadedState:
    state = LoadedState()
    state.offsets["g"] = {
        ("orders", 0): CommittedOffset(7, 0, "", 1),
        ("gone", 0): CommittedOffset(3, 0, "", 1),
        ("gone", 1): CommittedOffset(4, 0, "", 1),
    }
    return state


def _created(state: ControllerState, name: str) -> None:
    state.apply(encode(CreateTopic(name, uuid.uuid4(), ((1,),))))


def test_offsets_of_topics_not_yet_replayed_are_kept() -> None:
    controller = ControllerState()  # restarted: nothing of the controller log applied yet
    loaded = _loaded()
    assert drop_deleted_topics(loaded, controller.deleted_topics) == []
    assert set(loaded.offsets["g"]) == {("orders", 0), ("gone", 0), ("gone", 1)}


def test_offsets_of_deleted_topics_are_dropped_and_returned_for_tombstones() -> None:
    controller = ControllerState()
    _created(controller, "orders")
    _created(controller, "gone")
    controller.apply(encode(DeleteTopic("gone")))
    loaded = _loaded()
    gone = drop_deleted_topics(loaded, controller.deleted_topics)
    assert sorted(gone, key=lambda k: k.partition) == [OffsetKey("g", "gone", 0), OffsetKey("g", "gone", 1)]
    assert set(loaded.offsets["g"]) == {("orders", 0)}


def test_a_topic_created_again_is_no_longer_deleted() -> None:
    controller = ControllerState()
    _created(controller, "gone")
    controller.apply(encode(DeleteTopic("gone")))
    assert controller.deleted_topics == {"gone"}
    _created(controller, "gone")
    assert controller.deleted_topics == set()
    # Deleting a name that does not exist records nothing.
    controller.apply(encode(DeleteTopic("never")))
    assert controller.deleted_topics == set()
