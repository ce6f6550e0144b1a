"""Producer ids are unique across brokers and restarts: idempotent producers initialised on different
brokers writing to one partition never have each other's batches taken for duplicates. In replicated mode
ids come in blocks granted through the controller log."""

from __future__ import annotations

import datetime
import time
from pathlib import Path

import pytest
from kio.schema.errors import ErrorCode
from kio.schema.init_producer_id.v4.request import InitProducerIdRequest
from kio.schema.types import ProducerId
from kio.static.primitive import i16, i32Timedelta, i64
from streamraft_broker.controller.commands import AllocateProducerIds, encode
from streamraft_broker.controller.state import ControllerState

from tests.support.launcher import Cluster, wait_controller
from tests.support.wire import WireClient

INIT_PRODUCER_ID = 22


def _init_producer_id(port: int) -> int:
    with WireClient("127.0.0.1", port) as client:
        init = client.request(
            INIT_PRODUCER_ID,
            4,
            InitProducerIdRequest(
                transactional_id=None,
                transaction_timeout=i32Timedelta.parse(datetime.timedelta(seconds=60)),
                producer_id=ProducerId(i64(-1)),
                producer_epoch=i16(-1),
            ),
        )
    assert init.error_code == ErrorCode.none, init
    assert init.producer_epoch == 0
    return int(init.producer_id)


def _ids_from_every_broker(cluster: Cluster, per_broker: int) -> list[int]:
    """Retries while the controller is elected: a broker without a block forwards to it."""
    pids: list[int] = []
    for port in cluster.kafka_ports.values():
        for _ in range(per_broker):
            deadline = time.monotonic() + 60
            while True:
                try:
                    pids.append(_init_producer_id(port))
                    break
                except AssertionError:
                    assert time.monotonic() < deadline, "no producer id"
                time.sleep(0.2)  # pacing while the controller is (re-)elected
    return pids


def test_controller_log_grants_disjoint_blocks_in_apply_order() -> None:
    replayed = []
    for _ in range(2):  # a restart replays the same log to the same grants
        state = ControllerState()
        for i, broker in enumerate([2, 1, 2, 3]):
            state.apply(encode(AllocateProducerIds(broker, f"r{i}", 100)))
        replayed.append((state.producer_ids.next_id, dict(state.producer_ids.last_grant)))
    assert replayed[0] == replayed[1]
    next_id, grants = replayed[0]
    assert next_id == 400
    assert {b: (g.start, g.request_id) for b, g in grants.items()} == {
        2: (200, "r2"),
        1: (100, "r1"),
        3: (300, "r3"),
    }
    with pytest.raises(ValueError, match="block size"):
        ControllerState().apply(encode(AllocateProducerIds(1, "x", 0)))


def test_producer_ids_never_collide_across_brokers_and_whole_cluster_restart(tmp_path: Path) -> None:
    with Cluster(tmp_path, 3) as cluster:
        wait_controller(cluster)
        before = _ids_from_every_broker(cluster, 3)
        # The same id from two brokers would make one producer's batches duplicates of the other's.
        assert len(set(before)) == len(before), before
        for broker in cluster.brokers.values():
            broker.kill()
        for broker in cluster.brokers.values():
            broker.start()
        after = _ids_from_every_broker(cluster, 3)
        assert len(set(after)) == len(after), after
        # Blocks continue after every block granted before the crash: no id is handed out twice.
        assert min(after) > max(before), (before, after)
