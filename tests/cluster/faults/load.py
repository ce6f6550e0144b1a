"""Client load during the schedules: an idempotent acks=all producer, consumers reading along (one of them
committing its position as a consumer group), and a high-watermark sampler. Everything they are told goes
into the History."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from tests.cluster.faults.kinds import PARTITIONS, TOPIC
from tests.support.history import History

MAX_PER_SCHEDULE = 400
"""Produce attempts per schedule at most (the faults, not the volume, are the point)."""
PRODUCE_INTERVAL_S = 0.01
MESSAGE_TIMEOUT_MS = 30_000
COMMIT_INTERVAL_S = 0.3
SAMPLE_INTERVAL_S = 0.2
GROUP = "faults-group"


def quiet_logger() -> logging.Logger:
    """librdkafka logs every broker disconnect the faults cause; only errors are worth showing."""
    log = logging.getLogger("tests.cluster.faults.librdkafka")
    log.setLevel(logging.CRITICAL)
    return log


class Load:
    """The producer runs only while a schedule runs; readers and the sampler for the whole run."""

    def __init__(self, bootstraps: list[str], history: History, series: Callable[[], int]) -> None:
        self.history = history
        self.series = series
        self.bootstrap = ",".join(bootstraps)
        self.producer = self._new_producer()
        self._lock = threading.Lock()
        self._stop_all = threading.Event()
        self._producing = threading.Event()
        self._counter = 0
        self.delivery_errors: list[str] = []
        self.readers = [
            _Reader(f"reader-{i}", b, history, self._stop_all, series if i == 0 else None)
            for i, b in enumerate(bootstraps[:2])
        ]
        self._sampler = threading.Thread(target=self._sample, name="hw-sampler", daemon=True)
        self._producer_thread: threading.Thread | None = None

    def _new_producer(self) -> Producer:
        return Producer(
            {
                "bootstrap.servers": self.bootstrap,
                "acks": "all",
                "enable.idempotence": True,
                "message.timeout.ms": MESSAGE_TIMEOUT_MS,
                "linger.ms": 5,
                "logger": quiet_logger(),
            }
        )

    def start(self) -> None:
        for r in self.readers:
            r.start()
        self._sampler.start()

    def stop(self) -> None:
        self._stop_all.set()
        self.stop_producing()
        for r in self.readers:
            r.join(10)
        self._sampler.join(10)
        self.producer.flush(5)

    # ---------------------------------------------------------------- producing

    def on_delivery(self, err: Any, msg: Any) -> None:
        if err is None and msg.offset() is None:
            # librdkafka's idempotent producer acknowledges earlier batches implicitly when a later one
            # succeeds after their own responses were lost (rd_kafka_dr_implicit_ack): no offset is known.
            # The broker never answers success without one (its produce handler refuses and logs
            # produce_ack_without_offset); the checker holds these records to be read back by value.
            with self._lock:
                self.history.acked_unplaced.append((int(msg.partition()), bytes(msg.value())))
            return
        if err is None:
            with self._lock:
                self.history.acked.append((int(msg.partition()), int(msg.offset()), bytes(msg.value())))
        elif err.fatal():
            self.delivery_errors.append(f"fatal producer error: {err.str()}")
        # Retriable errors (a message timed out during a fault) leave the write unacknowledged: not checked.

    def produce_one(self, tag: str, partition: int) -> None:
        value = f"{tag}-{self._counter}".encode()
        self._counter += 1
        try:
            self.producer.produce(TOPIC, value=value, partition=partition, on_delivery=self.on_delivery)
        except BufferError:
            pass  # queue full while the cluster cannot accept writes: this attempt is simply not made
        except KafkaException as exc:
            if exc.args[0].fatal():
                self.delivery_errors.append(f"fatal producer error: {exc.args[0].str()}")
                self.producer = self._new_producer()
        self.producer.poll(0)

    def start_producing(self, tag: str, budget_s: float) -> None:
        self._producing.set()

        def run() -> None:
            deadline = time.monotonic() + budget_s
            for i in range(MAX_PER_SCHEDULE):
                if not self._producing.is_set() or time.monotonic() > deadline:
                    return
                self.produce_one(tag, i % PARTITIONS)
                time.sleep(PRODUCE_INTERVAL_S)  # the load's rate

        self._producer_thread = threading.Thread(target=run, name="producer", daemon=True)
        self._producer_thread.start()

    def stop_producing(self) -> None:
        self._producing.clear()
        if self._producer_thread is not None:
            self._producer_thread.join(10)
            self._producer_thread = None

    def flush(self, timeout: float) -> int:
        """Messages still unanswered after ``timeout``; a fatal producer is replaced afterwards."""
        left = int(self.producer.flush(timeout))
        if any("fatal" in e for e in self.delivery_errors):
            self.producer = self._new_producer()
        return left

    # ---------------------------------------------------------------- sampling

    def _sample(self) -> None:
        consumer = Consumer(
            {"bootstrap.servers": self.bootstrap, "group.id": "hw-sampler", "logger": quiet_logger()}
        )
        try:
            while not self._stop_all.wait(SAMPLE_INTERVAL_S):
                for p in range(PARTITIONS):
                    try:
                        _low, high = consumer.get_watermark_offsets(TopicPartition(TOPIC, p), timeout=1)
                    except KafkaException:
                        continue  # no leader reachable during the fault: nothing to sample
                    self.history.watermarks[p].append(int(high))
        finally:
            consumer.close()

    def read_ends(self) -> dict[str, dict[int, int]]:
        return {r.name: {p: (v[-1][0] + 1 if v else 0) for p, v in r.view.items()} for r in self.readers}


class _Reader(threading.Thread):
    """Reads the topic from offset 0 for the whole run; the first also commits its position (group)."""

    def __init__(
        self,
        name: str,
        bootstrap: str,
        history: History,
        stop: threading.Event,
        series: Callable[[], int] | None,
    ) -> None:
        super().__init__(name=name, daemon=True)
        self.bootstrap = bootstrap
        self.history = history
        self.stop = stop
        self.series = series
        self.view: dict[int, list[tuple[int, bytes]]] = {p: [] for p in range(PARTITIONS)}
        history.reads[name] = self.view
        self.errors: list[str] = []

    def run(self) -> None:
        consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": GROUP if self.series is not None else f"{self.name}-unused",
                "enable.auto.commit": False,
                # A spurious out-of-range would restart at 0: the checker sees offsets go back.
                "auto.offset.reset": "earliest",
                "logger": quiet_logger(),
            }
        )
        consumer.assign([TopicPartition(TOPIC, p, 0) for p in range(PARTITIONS)])
        last_commit = time.monotonic()
        try:
            while not self.stop.is_set():
                msg = consumer.poll(0.2)
                if msg is not None and msg.error() is None:
                    part, offset, value = msg.partition(), msg.offset(), msg.value()
                    assert part is not None and offset is not None and isinstance(value, bytes), msg
                    self.view[part].append((offset, value))
                if self.series is not None and time.monotonic() - last_commit > COMMIT_INTERVAL_S:
                    last_commit = time.monotonic()
                    self._commit(consumer, self.series())
        finally:
            consumer.close()

    def _commit(self, consumer: Consumer, series: int) -> None:
        positions = [TopicPartition(TOPIC, p, v[-1][0] + 1) for p, v in self.view.items() if v]
        if not positions:
            return
        try:
            consumer.commit(offsets=positions, asynchronous=False)
            got = consumer.committed([TopicPartition(TOPIC, p) for p in range(PARTITIONS)], timeout=2)
        except KafkaException:
            return  # the coordinator is unreachable during a fault: nothing committed, nothing sampled
        for tp in got:
            if tp.error is None and tp.offset >= 0:
                self.history.committed[(series, tp.partition)].append(int(tp.offset))
