"""KIP-447 at the wire: TxnOffsetCommit v3 names the committing consumer's member id, generation id and group
instance id, and the group checks them as Kafka's group coordinator does: a stale generation is
ILLEGAL_GENERATION, a member the group does not know is UNKNOWN_MEMBER_ID, a static instance now held by
another member is FENCED_INSTANCE_ID. Refused offsets never join the transaction, so its commit stores only
what the current members committed. Requests without an identity (v0-v2) are accepted as before.

A real broker process; the group members and the transactional producer speak kio requests directly."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from kio.schema.add_offsets_to_txn.v3.request import AddOffsetsToTxnRequest
from kio.schema.end_txn.v3.request import EndTxnRequest
from kio.schema.errors import ErrorCode
from kio.schema.heartbeat.v4.request import HeartbeatRequest
from kio.schema.init_producer_id.v4.request import InitProducerIdRequest
from kio.schema.join_group.v5.request import JoinGroupRequest, JoinGroupRequestProtocol
from kio.schema.offset_fetch.v7.request import OffsetFetchRequest, OffsetFetchRequestTopic
from kio.schema.sync_group.v5.request import SyncGroupRequest
from kio.schema.txn_offset_commit.v2.request import TxnOffsetCommitRequest as TxnOffsetCommitRequestV2
from kio.schema.txn_offset_commit.v2.request import (
    TxnOffsetCommitRequestPartition as PartitionV2,
)
from kio.schema.txn_offset_commit.v2.request import TxnOffsetCommitRequestTopic as TopicV2
from kio.schema.txn_offset_commit.v3.request import (
    TxnOffsetCommitRequest,
    TxnOffsetCommitRequestPartition,
    TxnOffsetCommitRequestTopic,
)
from kio.schema.types import GroupId, ProducerId, TopicName, TransactionalId
from kio.static.primitive import i16, i32, i32Timedelta, i64

from tests.support.broker_process import BrokerProcess
from tests.support.poll import wait_for
from tests.support.wire import WireClient

pytestmark = pytest.mark.timeout(60)

INIT_PRODUCER_ID, ADD_OFFSETS_TO_TXN, END_TXN, TXN_OFFSET_COMMIT = 22, 25, 26, 28
JOIN_GROUP, SYNC_GROUP, HEARTBEAT, OFFSET_FETCH = 11, 14, 12, 9
TOPIC = "in"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[BrokerProcess]:
    with BrokerProcess(tmp_path / "data") as b:
        yield b


def client(broker: BrokerProcess) -> WireClient:
    host, port = broker.bootstrap.rsplit(":", 1)
    return WireClient(host, int(port), timeout=20.0)


def join(wire: WireClient, group: str, member_id: str = "", instance: str | None = None) -> Any:
    """JoinGroup v5, answering MEMBER_ID_REQUIRED (KIP-394) with the member id the broker gave."""
    for _ in range(2):
        response = wire.request(
            JOIN_GROUP,
            5,
            JoinGroupRequest(
                group_id=GroupId(group),
                session_timeout=i32Timedelta.parse(datetime.timedelta(seconds=30)),
                rebalance_timeout=i32Timedelta.parse(datetime.timedelta(seconds=20)),
                member_id=member_id,
                group_instance_id=instance,
                protocol_type="consumer",
                protocols=(JoinGroupRequestProtocol(name="range", metadata=b""),),
            ),
        )
        if response.error_code != ErrorCode.member_id_required:
            break
        member_id = response.member_id
    assert response.error_code == ErrorCode.none, response
    return response


def sync(wire: WireClient, group: str, joined: Any, instance: str | None = None) -> None:
    response = wire.request(
        SYNC_GROUP,
        5,
        SyncGroupRequest(
            group_id=GroupId(group),
            generation_id=joined.generation_id,
            member_id=joined.member_id,
            group_instance_id=instance,
            protocol_type="consumer",
            protocol_name="range",
            assignments=(),
        ),
    )
    assert response.error_code == ErrorCode.none, response


def heartbeat(wire: WireClient, group: str, joined: Any) -> ErrorCode:
    response = wire.request(
        HEARTBEAT,
        4,
        HeartbeatRequest(
            group_id=GroupId(group),
            generation_id=joined.generation_id,
            member_id=joined.member_id,
            group_instance_id=None,
        ),
    )
    code: ErrorCode = response.error_code
    return code


class Txn:
    """One transactional producer's id, producer id and epoch, and its requests."""

    def __init__(self, wire: WireClient, transactional_id: str) -> None:
        self.wire, self.tid = wire, transactional_id
        init = wire.request(
            INIT_PRODUCER_ID,
            4,
            InitProducerIdRequest(
                transactional_id=TransactionalId(transactional_id),
                transaction_timeout=i32Timedelta.parse(datetime.timedelta(seconds=60)),
                producer_id=ProducerId(-1),
                producer_epoch=i16(-1),
            ),
        )
        assert init.error_code == ErrorCode.none, init
        self.pid, self.epoch = init.producer_id, init.producer_epoch

    def add_offsets(self, group: str) -> None:
        response = self.wire.request(
            ADD_OFFSETS_TO_TXN,
            3,
            AddOffsetsToTxnRequest(
                transactional_id=TransactionalId(self.tid),
                producer_id=self.pid,
                producer_epoch=self.epoch,
                group_id=GroupId(group),
            ),
        )
        assert response.error_code == ErrorCode.none, response

    def commit_offset(
        self,
        group: str,
        partition: int,
        offset: int,
        *,
        member: str,
        generation: int,
        instance: str | None = None,
    ) -> ErrorCode:
        response = self.wire.request(
            TXN_OFFSET_COMMIT,
            3,
            TxnOffsetCommitRequest(
                transactional_id=TransactionalId(self.tid),
                group_id=GroupId(group),
                producer_id=self.pid,
                producer_epoch=self.epoch,
                generation_id=i32(generation),
                member_id=member,
                group_instance_id=instance,
                topics=(
                    TxnOffsetCommitRequestTopic(
                        name=TopicName(TOPIC),
                        partitions=(
                            TxnOffsetCommitRequestPartition(
                                partition_index=i32(partition),
                                committed_offset=i64(offset),
                                committed_leader_epoch=i32(-1),
                                committed_metadata="",
                            ),
                        ),
                    ),
                ),
            ),
        )
        code: ErrorCode = response.topics[0].partitions[0].error_code
        return code

    def commit_offset_v2(self, group: str, partition: int, offset: int) -> ErrorCode:
        response = self.wire.request(
            TXN_OFFSET_COMMIT,
            2,
            TxnOffsetCommitRequestV2(
                transactional_id=TransactionalId(self.tid),
                group_id=GroupId(group),
                producer_id=self.pid,
                producer_epoch=self.epoch,
                topics=(
                    TopicV2(
                        name=TopicName(TOPIC),
                        partitions=(
                            PartitionV2(
                                partition_index=i32(partition),
                                committed_offset=i64(offset),
                                committed_leader_epoch=i32(-1),
                                committed_metadata="",
                            ),
                        ),
                    ),
                ),
            ),
        )
        code: ErrorCode = response.topics[0].partitions[0].error_code
        return code

    def commit(self) -> None:
        response = self.wire.request(
            END_TXN,
            3,
            EndTxnRequest(
                transactional_id=TransactionalId(self.tid),
                producer_id=self.pid,
                producer_epoch=self.epoch,
                committed=True,
            ),
        )
        assert response.error_code == ErrorCode.none, response


def committed(wire: WireClient, group: str) -> dict[int, int]:
    response = wire.request(
        OFFSET_FETCH,
        7,
        OffsetFetchRequest(
            group_id=GroupId(group),
            topics=(OffsetFetchRequestTopic(name=TopicName(TOPIC), partition_indexes=(i32(0), i32(1))),),
            require_stable=True,
        ),
    )
    assert response.error_code == ErrorCode.none, response
    return {int(p.partition_index): int(p.committed_offset) for t in response.topics for p in t.partitions}


def test_a_replaced_generation_or_member_cannot_commit_offsets_in_a_transaction(
    broker: BrokerProcess,
) -> None:
    with client(broker) as producer, client(broker) as a, client(broker) as b:
        txn = Txn(producer, "fencing-tx")
        txn.add_offsets("g")
        first = join(a, "g")
        sync(a, "g", first)
        assert txn.commit_offset("g", 0, 10, member=first.member_id, generation=first.generation_id) == (
            ErrorCode.none
        )

        # B joins; A learns of the rebalance from its heartbeat, as a consumer does, and rejoins: the
        # generation moves on, A keeps its member id.
        with ThreadPoolExecutor(1) as pool:
            b_joining = pool.submit(join, b, "g")
            wait_for(
                "A's heartbeat to report the rebalance",
                lambda: heartbeat(a, "g", first) == ErrorCode.rebalance_in_progress,
                timeout=15,
            )
            again = join(a, "g", first.member_id)
            second = b_joining.result(timeout=20)
        assert again.member_id == first.member_id
        assert again.generation_id == second.generation_id == first.generation_id + 1
        leader, follower = (a, again), (b, second)
        if second.leader == second.member_id:
            leader, follower = follower, leader
        sync(leader[0], "g", leader[1])
        sync(follower[0], "g", follower[1])

        # The zombie: A's producer commits with the generation it had before the rebalance.
        assert txn.commit_offset("g", 0, 99, member=first.member_id, generation=first.generation_id) == (
            ErrorCode.illegal_generation
        )
        assert txn.commit_offset("g", 0, 99, member="ghost", generation=again.generation_id) == (
            ErrorCode.unknown_member_id
        )
        assert txn.commit_offset("g", 0, 20, member=again.member_id, generation=again.generation_id) == (
            ErrorCode.none
        )
        # v2 carries no identity: accepted as before KIP-447, even though the group has members.
        assert txn.commit_offset_v2("g", 1, 5) == ErrorCode.none
        txn.commit()
        assert committed(producer, "g") == {0: 20, 1: 5}


def test_a_static_instance_taken_over_by_a_new_member_is_fenced(broker: BrokerProcess) -> None:
    with client(broker) as producer, client(broker) as a, client(broker) as a2:
        txn = Txn(producer, "static-tx")
        txn.add_offsets("gs")
        old = join(a, "gs", instance="i-1")
        sync(a, "gs", old, instance="i-1")
        # A new process with the same group.instance.id joins with no member id: it replaces the old one.
        new = join(a2, "gs", instance="i-1")
        assert new.member_id != old.member_id

        def attempt(member: str, generation: int, instance: str) -> ErrorCode:
            return txn.commit_offset("gs", 0, 7, member=member, generation=generation, instance=instance)

        assert attempt(old.member_id, old.generation_id, "i-1") == ErrorCode.fenced_instance_id
        assert attempt(new.member_id, new.generation_id, "i-2") == ErrorCode.unknown_member_id
        assert attempt(new.member_id, new.generation_id, "i-1") == ErrorCode.none
        txn.commit()
        assert committed(producer, "gs") == {0: 7, 1: -1}
