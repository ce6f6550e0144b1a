"""The transaction coordinator of a single-node broker: every transactional id's `TxnMetadata`, persisted to
one state file (rewritten atomically, fsynced, after every transition and before the answer goes out).

A state file rather than Kafka's `__transaction_state` topic: one node holds a few thousand ids at most
here, and a whole-file atomic replace makes recovery trivial (no compaction, no replay). Markers and the
commit of transactional offsets are the caller's I/O, passed in as callables, so the decisions stay
testable without a broker.

End of a transaction is synchronous: PrepareCommit/PrepareAbort is persisted, every partition's marker is
written, the group offsets are committed, then CompleteCommit/CompleteAbort is persisted and EndTxn is
answered. A crash between the two leaves Prepare* in the file; `recover()` finishes it at start-up (a
marker written twice is harmless: the second closes no open transaction)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path

from kio.schema.errors import ErrorCode

from streamraft_broker.log.fileio import atomic_write
from streamraft_broker.producer.types import MAX_EPOCH
from streamraft_broker.transactions.state import (
    TRANSACTION_MAX_TIMEOUT_MS,
    TRANSACTIONAL_ID_EXPIRATION_MS,
    TxnError,
    TxnMetadata,
    TxnState,
    add_partitions,
    check_timeout,
    complete_end,
    prepare_end,
)

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
MAX_TRANSACTIONAL_ID_BYTES = 32_767

Offsets = dict[tuple[str, int], tuple[int, int, str]]
# (topic, partition, producer id, producer epoch, commit) -> None; raises OSError/ValueError on failure.
WriteMarker = Callable[[str, int, int, int, bool], None]
# (group, offsets) committed as the group's offsets.
CommitOffsets = Callable[[str, Offsets], Awaitable[None]]


class TransactionCoordinator:
    def __init__(
        self,
        path: Path,
        *,
        allocate_producer_id: Callable[[], int],
        write_marker: WriteMarker,
        commit_offsets: CommitOffsets,
        clock: Callable[[], int],
        max_timeout_ms: int = TRANSACTION_MAX_TIMEOUT_MS,
        id_expiration_ms: int = TRANSACTIONAL_ID_EXPIRATION_MS,
    ) -> None:
        self._path = path
        self._allocate = allocate_producer_id
        self._write_marker = write_marker
        self._commit_offsets = commit_offsets
        self._clock = clock
        self.max_timeout_ms = max_timeout_ms
        self.id_expiration_ms = id_expiration_ms
        self._txns: dict[str, TxnMetadata] = {}
        # The async requests (they await offset commits) run one at a time, so an InitProducerId never
        # finishes a transaction an EndTxn is still completing. The sync ones see Prepare* meanwhile and
        # answer CONCURRENT_TRANSACTIONS, as Kafka does during a pending transition.
        self._lock = asyncio.Lock()
        if path.exists():
            self._load()

    # --- persistence -------------------------------------------------------------------------------
    def _load(self) -> None:
        try:
            doc = json.loads(self._path.read_bytes())
            if doc["version"] != FORMAT_VERSION:
                raise ValueError(f"unsupported version {doc['version']!r}")
            for tid, m in doc["transactions"].items():
                self._txns[str(tid)] = TxnMetadata(
                    transactional_id=str(tid),
                    producer_id=int(m["producer_id"]),
                    epoch=int(m["epoch"]),
                    timeout_ms=int(m["timeout_ms"]),
                    state=TxnState(m["state"]),
                    last_producer_id=int(m["last_producer_id"]),
                    last_epoch=int(m["last_epoch"]),
                    partitions={(str(t), int(p)) for t, p in m["partitions"]},
                    pending_offsets={
                        str(g): {(str(t), int(p)): (int(o), int(e), str(md)) for t, p, o, e, md in offs}
                        for g, offs in m["pending_offsets"].items()
                    },
                    start_ms=int(m["start_ms"]),
                    last_update_ms=int(m["last_update_ms"]),
                )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            # Guessing would let a fenced producer back in or lose an in-doubt transaction: refuse to start.
            raise ValueError(f"transaction state file {self._path} is unreadable: {exc}") from exc

    def _persist(self) -> None:
        doc = {
            "version": FORMAT_VERSION,
            "transactions": {
                tid: {
                    "producer_id": m.producer_id,
                    "epoch": m.epoch,
                    "timeout_ms": m.timeout_ms,
                    "state": m.state.value,
                    "last_producer_id": m.last_producer_id,
                    "last_epoch": m.last_epoch,
                    "partitions": sorted(m.partitions),
                    "pending_offsets": {
                        g: [[t, p, o, e, md] for (t, p), (o, e, md) in sorted(offs.items())]
                        for g, offs in m.pending_offsets.items()
                    },
                    "start_ms": m.start_ms,
                    "last_update_ms": m.last_update_ms,
                }
                for tid, m in sorted(self._txns.items())
            },
        }
        self._path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self._path, json.dumps(doc, separators=(",", ":")).encode())

    # --- queries -----------------------------------------------------------------------------------
    def metadata(self, transactional_id: str) -> TxnMetadata | None:
        return self._txns.get(transactional_id)

    def transactions(self) -> Iterable[TxnMetadata]:
        return self._txns.values()

    def _known(self, transactional_id: str) -> TxnMetadata:
        meta = self._txns.get(transactional_id)
        if meta is None:
            raise TxnError(
                ErrorCode.invalid_producer_id_mapping, f"unknown transactional id {transactional_id!r}"
            )
        return meta

    # --- requests ----------------------------------------------------------------------------------
    async def init_producer_id(
        self, transactional_id: str, timeout_ms: int, producer_id: int = -1, producer_epoch: int = -1
    ) -> tuple[int, int]:
        async with self._lock:
            return await self._init_producer_id(transactional_id, timeout_ms, producer_id, producer_epoch)

    async def _init_producer_id(
        self, transactional_id: str, timeout_ms: int, producer_id: int, producer_epoch: int
    ) -> tuple[int, int]:
        if not transactional_id or len(transactional_id.encode()) > MAX_TRANSACTIONAL_ID_BYTES:
            raise TxnError(ErrorCode.invalid_request, "transactional id must be a non-empty string")
        check_timeout(timeout_ms, self.max_timeout_ms)
        now = self._clock()
        meta = self._txns.get(transactional_id)
        if meta is None:
            meta = TxnMetadata(transactional_id, self._allocate(), 0, timeout_ms, last_update_ms=now)
            self._txns[transactional_id] = meta
            self._persist()
            return meta.producer_id, meta.epoch
        if producer_id != -1:
            # KIP-360: a producer re-initialising names its current id/epoch; anyone else is a zombie.
            given = (producer_id, producer_epoch)
            if given == (meta.last_producer_id, meta.last_epoch) and meta.state is not TxnState.ONGOING:
                return meta.producer_id, meta.epoch  # a retry of the InitProducerId that bumped it
            if given != (meta.producer_id, meta.epoch):
                raise TxnError(
                    ErrorCode.producer_fenced,
                    f"transaction {transactional_id!r}: producer {producer_id} epoch {producer_epoch} "
                    "is fenced",
                )
        if meta.state in (TxnState.PREPARE_COMMIT, TxnState.PREPARE_ABORT):
            await self._finish(meta)
        elif meta.state is TxnState.ONGOING:
            # An in-doubt transaction of the previous instance: fence it (epoch bump) and abort it.
            await self._abort_with_bump(meta)
        meta.bump_epoch(self._next_id_if_exhausted(meta))
        meta.timeout_ms = timeout_ms
        meta.transition(TxnState.EMPTY, now)
        self._persist()
        return meta.producer_id, meta.epoch

    def _next_id_if_exhausted(self, meta: TxnMetadata) -> int:
        return self._allocate() if meta.epoch + 1 >= MAX_EPOCH else meta.producer_id

    async def _abort_with_bump(self, meta: TxnMetadata) -> None:
        meta.bump_epoch(self._next_id_if_exhausted(meta))
        meta.transition(TxnState.PREPARE_ABORT, self._clock())
        self._persist()
        await self._finish(meta)

    def add_partitions(
        self, transactional_id: str, producer_id: int, epoch: int, partitions: set[tuple[str, int]]
    ) -> None:
        meta = self._known(transactional_id)
        meta.check_producer(producer_id, epoch)
        before = (meta.state, set(meta.partitions))
        add_partitions(meta, partitions, self._clock())
        if (meta.state, meta.partitions) != before:
            self._persist()

    def add_offsets(self, transactional_id: str, producer_id: int, epoch: int, group_id: str) -> None:
        """AddOffsetsToTxn. Single node: the offsets 'partition' is the group itself, kept with the
        transaction as pending offsets, so an empty entry marks the group as part of it."""
        meta = self._known(transactional_id)
        meta.check_producer(producer_id, epoch)
        add_partitions(meta, set(), self._clock())
        meta.pending_offsets.setdefault(group_id, {})
        self._persist()

    def txn_offset_commit(
        self, transactional_id: str, producer_id: int, epoch: int, group_id: str, offsets: Offsets
    ) -> None:
        meta = self._known(transactional_id)
        meta.check_producer(producer_id, epoch)
        if meta.state is not TxnState.ONGOING or group_id not in meta.pending_offsets:
            # Kafka's group coordinator refuses offsets of a group not added with AddOffsetsToTxn.
            raise TxnError(
                ErrorCode.invalid_txn_state,
                f"transaction {transactional_id!r}: AddOffsetsToTxn for group {group_id!r} must come first",
            )
        meta.pending_offsets[group_id].update(offsets)
        self._persist()

    async def end_txn(self, transactional_id: str, producer_id: int, epoch: int, commit: bool) -> None:
        async with self._lock:
            await self._end_txn(transactional_id, producer_id, epoch, commit)

    async def _end_txn(self, transactional_id: str, producer_id: int, epoch: int, commit: bool) -> None:
        meta = self._known(transactional_id)
        if (producer_id, epoch) != (meta.producer_id, meta.epoch):
            retry = (producer_id, epoch) == (meta.last_producer_id, meta.last_epoch)
            if retry and not commit and meta.state in (TxnState.COMPLETE_ABORT, TxnState.EMPTY):
                # The coordinator already aborted this producer's transaction (timeout): abort is a no-op.
                return
            meta.check_producer(producer_id, epoch)
        if meta.state is (TxnState.PREPARE_COMMIT if commit else TxnState.PREPARE_ABORT):
            # Requests run one at a time, so this is an earlier EndTxn whose markers failed to write (its
            # client retries): finish it now rather than answer CONCURRENT_TRANSACTIONS forever.
            await self._finish(meta)
            return
        if prepare_end(meta, commit, self._clock()):
            self._persist()
            await self._finish(meta)

    async def _finish(self, meta: TxnMetadata) -> None:
        """Write the markers (and, on commit, the offsets) of a Prepare* transaction, then complete it."""
        commit = meta.state is TxnState.PREPARE_COMMIT
        for topic, index in sorted(meta.partitions):
            try:
                self._write_marker(topic, index, meta.producer_id, meta.epoch, commit)
            except LookupError:
                log.warning(
                    "transaction %r: partition %s-%d is gone; no marker", meta.transactional_id, topic, index
                )
        if commit:
            for group, offsets in meta.pending_offsets.items():
                if offsets:
                    await self._commit_offsets(group, offsets)
        complete_end(meta, self._clock())
        self._persist()

    async def recover(self) -> None:
        """Complete transactions a crash left between Prepare* and Complete*."""
        async with self._lock:
            await self._recover()

    async def _recover(self) -> None:
        for meta in list(self._txns.values()):
            if meta.state in (TxnState.PREPARE_COMMIT, TxnState.PREPARE_ABORT):
                await self._finish(meta)

    async def abort_expired(self) -> list[str]:
        """Abort (fencing the producer with an epoch bump, as Kafka does) transactions open longer than their
        transaction.timeout.ms."""
        async with self._lock:
            return await self._abort_expired()

    async def _abort_expired(self) -> list[str]:
        now = self._clock()
        expired = [m for m in self._txns.values() if m.is_expired(now)]
        for meta in expired:
            log.info("transaction %r timed out after %d ms; aborting", meta.transactional_id, meta.timeout_ms)
            await self._abort_with_bump(meta)
        return [m.transactional_id for m in expired]

    async def remove_expired_ids(self) -> list[str]:
        """Forget transactional ids idle past transactional.id.expiration.ms (Kafka moves them to Dead and
        deletes them), so the state stays bounded however many ids clients make up."""
        async with self._lock:
            now = self._clock()
            idle = [m for m in self._txns.values() if m.is_idle_past(now, self.id_expiration_ms)]
            for meta in idle:
                meta.transition(TxnState.DEAD, now)
                del self._txns[meta.transactional_id]
            if idle:
                self._persist()
            return [m.transactional_id for m in idle]
