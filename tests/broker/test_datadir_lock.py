"""One broker per data directory: a second process waits for the first to exit (a force-deleted pod's
replacement starting early), and gives up with a message naming the directory and the holder."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from streamraft_broker.server import datadir_lock

from tests.support.broker_process import BrokerProcess

pytestmark = pytest.mark.timeout(120)


def _wait_for_log(broker: BrokerProcess, text: str, limit_s: float = 30) -> None:
    deadline = time.monotonic() + limit_s
    while text not in broker.log_tail(200):
        assert time.monotonic() < deadline, f"{text!r} not logged:\n{broker.log_tail()}"
        time.sleep(0.05)  # polling a log file written by another process


def test_second_broker_waits_for_the_first_to_die_then_serves_its_data(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = BrokerProcess(data, node_id=1).start()
    second = BrokerProcess(data, node_id=2)
    try:
        admin = AdminClient({"bootstrap.servers": first.bootstrap})
        admin.create_topics([NewTopic("locked", 1, 1)])["locked"].result(30)
        producer = Producer({"bootstrap.servers": first.bootstrap, "acks": "all"})
        failed: list[object] = []

        def delivered(err: object, _msg: object) -> None:
            if err is not None:
                failed.append(err)

        for i in range(50):
            producer.produce("locked", value=f"v{i}".encode(), on_delivery=delivered)
        assert producer.flush(30) == 0 and not failed, failed
        errors: list[BaseException] = []

        def start_second() -> None:
            try:
                second.start(timeout=60)
            except BaseException as exc:  # reported by the assertion below
                errors.append(exc)

        starter = threading.Thread(target=start_second)
        starter.start()
        _wait_for_log(second, "data directory locked by another process")
        assert second.port == 0, "the second broker served while the first held the directory"
        first.kill()  # SIGKILL: the kernel drops the lock with the process
        starter.join(90)
        assert not errors, errors
        assert second.port != 0
        consumer = Consumer(
            {"bootstrap.servers": second.bootstrap, "group.id": "g", "auto.offset.reset": "earliest"}
        )
        consumer.subscribe(["locked"])
        seen: list[bytes] = []
        deadline = time.monotonic() + 30
        while len(seen) < 50 and time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is not None and msg.error() is None:
                seen.append(msg.value())
        consumer.close()
        assert seen == [f"v{i}".encode() for i in range(50)]
    finally:
        first.kill()
        second.kill()


async def test_gives_up_naming_the_directory_and_the_holder(tmp_path: Path) -> None:
    held = await datadir_lock.acquire(tmp_path, 0)
    try:
        with pytest.raises(datadir_lock.DataDirLocked) as info:
            await datadir_lock.acquire(tmp_path, 0.3)
        assert str(info.value) == (
            f"data directory {tmp_path} is locked by another broker process (pid {os.getpid()}); "
            "gave up after 0.3 s"
        )
    finally:
        datadir_lock.release(held)
    again = await datadir_lock.acquire(tmp_path, 0)  # released: free again
    datadir_lock.release(again)
