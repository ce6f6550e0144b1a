"""Producer-id allocation (InitProducerId) that never hands out an id twice, even across restarts.

Ids are reserved in blocks: before the first id of a block is handed out, the end of the block is written
(atomically) to the state file, so after a crash allocation resumes past every id that may have been given
out; the unused rest of the block is skipped, as Kafka's block allocation does.

Non-transactional producers get a fresh id at epoch 0 on every InitProducerId, whatever id/epoch they send
(Kafka's behaviour for `transactional_id = null`). A transactional id keeps its producer id and has its epoch
bumped on each InitProducerId (fencing the older instance); when the epoch would pass 32766 a new producer id
is allocated at epoch 0. A request naming a (producer id, epoch) other than the current or just-previous one
of that transactional id is answered PRODUCER_FENCED (KIP-360)."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path

from kio.schema.errors import ErrorCode

from streamraft_broker.log.fileio import atomic_write
from streamraft_broker.producer.types import MAX_EPOCH, NO_PRODUCER_EPOCH, NO_PRODUCER_ID

BLOCK_SIZE = 1000
FORMAT_VERSION = 1


@dataclass(frozen=True, slots=True)
class InitProducerIdResult:
    error_code: ErrorCode
    producer_id: int
    producer_epoch: int


@dataclass(slots=True)
class _TxnState:
    producer_id: int
    epoch: int
    previous: tuple[int, int] | None = None


class ProducerIdAllocator:
    def __init__(self, path: Path, *, block_size: int = BLOCK_SIZE) -> None:
        assert block_size > 0
        self._path = path
        self._block_size = block_size
        self._lock = threading.Lock()
        self._next = 0
        self._block_end = 0  # exclusive; ids in [_next, _block_end) are reserved on disk
        self._txn: dict[str, _TxnState] = {}
        if path.exists():
            self._load()

    def _load(self) -> None:
        try:
            doc = json.loads(self._path.read_bytes())
            if doc["version"] != FORMAT_VERSION:
                raise ValueError(f"unsupported version {doc['version']!r}")
            reserved = int(doc["reserved_until"])
            txn = {
                str(k): _TxnState(int(v[0]), int(v[1]), (int(v[2]), int(v[3])) if len(v) == 4 else None)
                for k, v in doc["transactional"].items()
            }
        except (OSError, ValueError, KeyError, TypeError) as exc:
            # Guessing a starting point could reuse ids; refusing to start is the safe answer.
            raise ValueError(f"producer-id state file {self._path} is unreadable: {exc}") from exc
        self._next = self._block_end = reserved
        self._txn = txn

    def _persist(self) -> None:
        txn = {
            k: [s.producer_id, s.epoch, *(s.previous if s.previous else ())]
            for k, s in sorted(self._txn.items())
        }
        doc = {"version": FORMAT_VERSION, "reserved_until": self._block_end, "transactional": txn}
        self._path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self._path, json.dumps(doc, separators=(",", ":")).encode())

    def _allocate(self) -> int:
        if self._next >= self._block_end:
            self._block_end = self._next + self._block_size
            self._persist()
        pid = self._next
        self._next += 1
        return pid

    def allocate(self) -> int:
        with self._lock:
            return self._allocate()

    def init_producer_id(
        self,
        transactional_id: str | None,
        producer_id: int = NO_PRODUCER_ID,
        producer_epoch: int = NO_PRODUCER_EPOCH,
    ) -> InitProducerIdResult:
        with self._lock:
            if transactional_id is None:
                return InitProducerIdResult(ErrorCode.none, self._allocate(), 0)
            if not transactional_id:
                return InitProducerIdResult(ErrorCode.invalid_request, NO_PRODUCER_ID, NO_PRODUCER_EPOCH)
            state = self._txn.get(transactional_id)
            if state is None:
                state = _TxnState(self._allocate(), 0)
            else:
                given = (producer_id, producer_epoch)
                if producer_id != NO_PRODUCER_ID and given not in (
                    (state.producer_id, state.epoch),
                    state.previous,
                ):
                    return InitProducerIdResult(ErrorCode.producer_fenced, NO_PRODUCER_ID, NO_PRODUCER_EPOCH)
                if state.previous is not None and given == state.previous:
                    # A retry of the InitProducerId that produced the current epoch: answer it again.
                    return InitProducerIdResult(ErrorCode.none, state.producer_id, state.epoch)
                previous = (state.producer_id, state.epoch)
                if state.epoch + 1 >= MAX_EPOCH:
                    state = _TxnState(self._allocate(), 0, previous)
                else:
                    state = _TxnState(state.producer_id, state.epoch + 1, previous)
            self._txn[transactional_id] = state
            self._persist()
            return InitProducerIdResult(ErrorCode.none, state.producer_id, state.epoch)
