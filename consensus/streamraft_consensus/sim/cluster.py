"""A scripted cluster of RawNodes over MemoryStorage, wired by an explicit in-memory network.

For etcd-raft style interaction tests: nothing moves until the test ticks a node or delivers messages,
so every scenario is exact. The full fault-injecting simulator lives in ``sim.world``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable

from streamraft_consensus.core.memory_storage import MemoryStorage
from streamraft_consensus.core.node import Config, RawNode
from streamraft_consensus.core.types import (
    ConfChange,
    ConfState,
    Entry,
    EntryType,
    Message,
    MessageType,
    ReadState,
    Role,
)


class Cluster:
    def __init__(
        self,
        voters: Iterable[int],
        learners: Iterable[int] = (),
        *,
        seed: int = 0,
        config: Callable[[int], Config] | None = None,
    ) -> None:
        self.conf = ConfState(voters=tuple(voters), learners=tuple(learners))
        self.rand = random.Random(seed)
        self.make_config = config or (lambda i: Config(id=i))
        self.nodes: dict[int, RawNode] = {}
        self.storages: dict[int, MemoryStorage] = {}
        self.applied: dict[int, list[Entry]] = {}
        self.read_states: dict[int, list[ReadState]] = {}
        self.outbox: list[Message] = []
        self.cut: set[tuple[int, int]] = set()
        # Message filter: return False to drop (tests use it to drop by type).
        self.filter: Callable[[Message], bool] = lambda m: True
        for i in (*self.conf.voters, *self.conf.learners):
            self.add(i, MemoryStorage.bootstrap(self.conf))

    def add(self, node_id: int, storage: MemoryStorage) -> RawNode:
        node = RawNode(self.make_config(node_id), storage, random.Random(self.rand.getrandbits(64)))
        self.nodes[node_id] = node
        self.storages[node_id] = storage
        self.applied.setdefault(node_id, [])
        self.read_states.setdefault(node_id, [])
        return node

    def add_fresh(self, node_id: int) -> RawNode:
        """A brand-new empty node that learns the membership from the leader (snapshot or log)."""
        return self.add(node_id, MemoryStorage(ConfState()))

    # --- driving --------------------------------------------------------------------------------------
    def process(self, node_id: int) -> None:
        """Run the Ready loop of one node: persist, queue messages, apply, advance."""
        node = self.nodes[node_id]
        st = self.storages[node_id]
        while node.has_ready():
            rd = node.ready()
            if rd.snapshot is not None:
                st.apply_snapshot(rd.snapshot)
            st.append(rd.entries)
            if rd.hard_state is not None:
                st.set_hard_state(rd.hard_state)
            self.outbox.extend(rd.messages)
            for e in rd.committed_entries:
                self.applied[node_id].append(e)
                if e.type == EntryType.CONF_CHANGE:
                    cs = node.apply_conf_change(ConfChange.decode(e.data))
                    # Snapshot each membership change, so a node added later gets its config from it.
                    if e.index > st.snapshot().meta.index:
                        st.create_snapshot(e.index, cs, b"")
            self.read_states[node_id].extend(rd.read_states)
            node.advance(rd)

    def compact(self, node_id: int) -> int:
        """Snapshot the applied state of ``node_id`` and drop its log up to there; returns the index."""
        node = self.nodes[node_id]
        st = self.storages[node_id]
        applied = node.status().applied
        st.create_snapshot(applied, node.raft.applied_conf, b"")
        st.compact(applied)
        return applied

    def process_all(self) -> None:
        for i in list(self.nodes):
            self.process(i)

    def take(self, to: int | None = None, mtype: MessageType | None = None) -> list[Message]:
        """Remove and return queued messages (optionally only those to ``to`` / of ``mtype``)."""
        self.process_all()
        keep: list[Message] = []
        out: list[Message] = []
        for m in self.outbox:
            if (to is None or m.to == to) and (mtype is None or m.type == mtype):
                out.append(m)
            else:
                keep.append(m)
        self.outbox = keep
        return out

    def deliver(self, msgs: Iterable[Message]) -> None:
        for m in msgs:
            if (m.frm, m.to) in self.cut or m.to not in self.nodes or not self.filter(m):
                continue
            self.nodes[m.to].step(m)

    def stabilize(self, max_rounds: int = 200) -> int:
        """Deliver messages until none are left; returns how many were delivered."""
        n = 0
        for _ in range(max_rounds):
            msgs = self.take()
            if not msgs:
                return n
            n += len(msgs)
            self.deliver(msgs)
        raise AssertionError(f"network did not settle within {max_rounds} rounds")

    def tick(self, node_id: int, n: int = 1) -> None:
        for _ in range(n):
            self.nodes[node_id].tick()

    def tick_all(self, n: int = 1, stabilize: bool = True) -> None:
        for _ in range(n):
            for node in self.nodes.values():
                node.tick()
            if stabilize:
                self.stabilize()

    def elect(self, node_id: int) -> None:
        self.nodes[node_id].campaign()
        self.stabilize()
        role = self.nodes[node_id].status().soft_state.role
        assert role == Role.LEADER, f"node {node_id} did not win the election ({role.name})"

    # --- partitions -----------------------------------------------------------------------------------
    def isolate(self, node_id: int) -> None:
        for j in self.nodes:
            if j != node_id:
                self.cut.add((node_id, j))
                self.cut.add((j, node_id))

    def heal(self) -> None:
        self.cut.clear()

    # --- inspection -----------------------------------------------------------------------------------
    def leader(self) -> int | None:
        """The leader with the highest term, if any node believes it leads."""
        leaders = [i for i, n in self.nodes.items() if n.status().soft_state.role == Role.LEADER]
        if not leaders:
            return None
        return max(leaders, key=lambda i: self.nodes[i].status().hard_state.term)

    def data(self, node_id: int) -> list[bytes]:
        """Payloads of applied normal entries (empty leader no-ops left out)."""
        return [e.data for e in self.applied[node_id] if e.type == EntryType.NORMAL and e.data]
