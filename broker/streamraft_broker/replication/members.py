"""Static cluster membership parsed from ``--cluster-members``."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from streamraft_broker.config import ConfigError, parse_host_port

MAX_MEMBERS = 1000


@dataclass(frozen=True)
class Member:
    node_id: int
    kafka_host: str
    kafka_port: int
    raft_address: str


def parse_members(text: str) -> dict[int, Member]:
    """``ID=KAFKA_HOST:PORT/RAFT_HOST:PORT,...`` -> members by node id."""
    members: dict[int, Member] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        ident, eq, rest = item.partition("=")
        kafka, slash, raft = rest.partition("/")
        if not eq or not slash or not ident.strip().isdigit():
            raise ConfigError(f"--cluster-members: {item!r} must look like ID=HOST:PORT/HOST:PORT")
        node = int(ident)
        if node < 1:
            raise ConfigError(f"--cluster-members: node id {node} must be >= 1")
        if node in members:
            raise ConfigError(f"--cluster-members: node id {node} appears twice")
        host, port = parse_host_port(kafka, f"--cluster-members kafka address of {node}")
        rhost, rport = parse_host_port(raft, f"--cluster-members raft address of {node}")
        members[node] = Member(node, host, port, f"{rhost}:{rport}")
    if not members:
        raise ConfigError("--cluster-members is required with --replication raft")
    if len(members) > MAX_MEMBERS:
        raise ConfigError(f"--cluster-members: more than {MAX_MEMBERS} members")
    return members


def cluster_id_of(members: dict[int, Member]) -> str:
    """One id for the whole cluster (clients refuse brokers reporting different ids), from the members.
    Only the controller voters (the first three ids) count, so a broker that joins later with a longer
    member list reports the same id."""
    founders = sorted(members.values(), key=lambda m: m.node_id)[:3]
    canonical = ",".join(f"{m.node_id}={m.raft_address}" for m in founders)
    return hashlib.sha256(canonical.encode()).hexdigest()[:22]
