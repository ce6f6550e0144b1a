"""Producer ids are unique across brokers: idempotent producers initialised on different brokers writing
to one partition never have each other's batches taken for duplicates."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from kio.schema.errors import ErrorCode
from kio.schema.init_producer_id.v4.request import InitProducerIdRequest
from kio.schema.types import ProducerId
from kio.static.primitive import i16, i32Timedelta, i64
from streamraft_broker.replication.producer_ids import RANGE_BITS, node_unique_allocator

from tests.cluster.launcher import Cluster
from tests.support.wire import WireClient

INIT_PRODUCER_ID = 22


def test_allocators_of_different_nodes_never_overlap_and_resume_after_restart(tmp_path: Path) -> None:
    one = node_unique_allocator(tmp_path / "1.json", 1)
    two = node_unique_allocator(tmp_path / "2.json", 2)
    ids_one = [one.allocate() for _ in range(5)]
    ids_two = [two.allocate() for _ in range(5)]
    assert not set(ids_one) & set(ids_two)
    assert all(i >> RANGE_BITS == 1 for i in ids_one) and all(i >> RANGE_BITS == 2 for i in ids_two)
    again = node_unique_allocator(tmp_path / "1.json", 1)
    assert again.allocate() > max(ids_one)
    with pytest.raises(ValueError, match="node id 0"):
        node_unique_allocator(tmp_path / "0.json", 0)


def test_each_broker_hands_out_its_own_producer_ids(tmp_path: Path) -> None:
    with Cluster(tmp_path, 3) as cluster:
        pids = []
        for port in cluster.kafka_ports.values():
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
                assert init.error_code == ErrorCode.none
                pids.append(int(init.producer_id))
    # The same id from two brokers would make one producer's batches duplicates of the other's.
    assert len(set(pids)) == 3, pids
