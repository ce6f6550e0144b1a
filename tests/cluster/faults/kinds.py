"""The fault kinds, in one registry: each knows how to draw a step from a seeded RNG and how to run it
(inject, hold, heal). Adding a kind is one entry in ``REGISTRY``."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from tests.cluster.faults.cluster import ProxiedCluster
from tests.cluster.faults.net import Link
from tests.support.history import History

MAX_HOLD_S = 2.0
"""How long one fault stays in place, at most: a schedule is a few seconds."""
TOPIC = "faults"
PARTITIONS = 2
CREATE_DEADLINE_S = 20.0
REBUILD_WAIT_S = 60.0
"""How long an empty_disk step waits for an earlier rebuild to finish before it wipes another disk."""


@dataclass(frozen=True)
class Step:
    kind: str
    target: int
    """A broker id; 0 when the kind picks its victim when it runs (the current leader)."""
    hold: float
    arg: str = ""

    def line(self) -> str:
        if self.kind == "overlap":
            return "overlap        " + " + ".join(f"[{sub.line()}]" for sub in _subs(self))
        # Target 0: the kind picks its victims when it runs, its arg says which (of=..., all brokers).
        target = f"broker={self.target} " if self.target else ""
        return f"{self.kind:<14} {target}hold={self.hold:.2f}s {self.arg}".rstrip()


@dataclass
class Env:
    """What a running step may touch."""

    cluster: ProxiedCluster
    history: History
    name: str
    """Unique per schedule (names topics the step creates)."""
    note: Callable[[str], None]
    coordinator_may_move: Callable[[], None] = lambda: None
    """Called by each fault that may move the consumer group's coordinator (the driver's committed series)."""
    created: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Kind:
    name: str
    weight: int
    draw: Callable[[random.Random, list[int]], tuple[int, float, str]]
    """rng, broker ids -> (target, hold, arg)."""
    run: Callable[[Env, Step], None]
    enabled: bool = True


def _hold(rng: random.Random, low: float = 0.3) -> float:
    return round(rng.uniform(low, MAX_HOLD_S), 2)


def _one(rng: random.Random, brokers: list[int]) -> tuple[int, float, str]:
    return rng.choice(brokers), _hold(rng), ""


# ---------------------------------------------------------------------------------- process faults


def _kill(env: Env, step: Step) -> None:
    broker = env.cluster.brokers[step.target]
    env.coordinator_may_move()
    broker.kill()
    time.sleep(step.hold)  # the fault's duration
    broker.start()


def _empty_disk(env: Env, step: Step) -> None:
    broker = env.cluster.brokers[step.target]
    # A disk is only wiped once every other copy is whole again: a second lost disk while the first is
    # still being rebuilt is a majority of a 3-replica group's copies gone, which no Raft system survives
    # (the rejoin design's one assumption). A rebuild still running after the deadline turns this into a kill.
    whole = env.cluster.wait_fully_replicated(REBUILD_WAIT_S)
    env.coordinator_may_move()
    broker.kill()
    if not whole:
        env.note(
            f"empty_disk on broker {step.target}: a rebuild still ran after {REBUILD_WAIT_S:.0f}s, "
            "so it was killed only"
        )
        time.sleep(step.hold)  # the fault's duration
        broker.start()
        return
    env.cluster.wipe(step.target)
    time.sleep(step.hold)  # the fault's duration
    broker.start()


def _term(env: Env, step: Step) -> None:
    broker = env.cluster.brokers[step.target]
    env.coordinator_may_move()
    code = broker.terminate()
    if code != 0:
        env.history.violations.append(f"broker {step.target} exited with {code} on SIGTERM")
    time.sleep(step.hold)  # the fault's duration
    broker.start()


def _crash_all(env: Env, step: Step) -> None:
    """Every broker SIGKILLed at once (a power cut), then all restarted: state comes back from disk only."""
    env.coordinator_may_move()
    for broker in env.cluster.brokers.values():
        broker.kill()
    time.sleep(step.hold)  # the fault's duration
    for broker in env.cluster.brokers.values():
        broker.start()


def _pause(env: Env, step: Step) -> None:
    env.coordinator_may_move()
    env.cluster.pause(step.target)
    try:
        time.sleep(step.hold)  # the fault's duration
    finally:
        env.cluster.resume(step.target)


# ---------------------------------------------------------------------------------- network faults


def _links_of(n: int, brokers: list[int]) -> list[Link]:
    return [(n, m) for m in brokers if m != n] + [(m, n) for m in brokers if m != n]


def _cut_for(env: Env, links: list[Link], hold: float) -> None:
    env.cluster.net.cut(links)
    try:
        time.sleep(hold)  # the fault's duration
    finally:
        env.cluster.net.heal()


def _draw_pair(rng: random.Random, brokers: list[int]) -> tuple[int, float, str]:
    a, b = rng.sample(brokers, 2)
    return a, _hold(rng), f"peer={b}"


def _peer(step: Step) -> int:
    return int(step.arg.split("peer=")[1].split()[0])


def _isolate(env: Env, step: Step) -> None:
    _cut_for(env, _links_of(step.target, sorted(env.cluster.brokers)), step.hold)


def _split_pair(env: Env, step: Step) -> None:
    """Symmetric cut of one pair: the third broker still reaches both (a partial partition)."""
    b = _peer(step)
    _cut_for(env, [(step.target, b), (b, step.target)], step.hold)


def _one_way(env: Env, step: Step) -> None:
    """Asymmetric: what target sends to peer is lost, what peer sends to target arrives."""
    _cut_for(env, [(step.target, _peer(step))], step.hold)


def _draw_deaf(rng: random.Random, brokers: list[int]) -> tuple[int, float, str]:
    return rng.choice(brokers), _hold(rng), rng.choice(["inbound", "outbound"])


def _deaf_or_mute(env: Env, step: Step) -> None:
    """Asymmetric isolation: the target hears nobody (inbound) or nobody hears it (outbound)."""
    others = [m for m in env.cluster.brokers if m != step.target]
    links = (
        [(m, step.target) for m in others] if step.arg == "inbound" else [(step.target, m) for m in others]
    )
    _cut_for(env, links, step.hold)


def _draw_delay(rng: random.Random, brokers: list[int]) -> tuple[int, float, str]:
    return rng.choice(brokers), _hold(rng), f"delay={rng.choice([0.02, 0.05, 0.1, 0.2, 0.3])}"


def _delay(env: Env, step: Step) -> None:
    seconds = float(step.arg.split("delay=")[1])
    env.cluster.net.delay(_links_of(step.target, sorted(env.cluster.brokers)), seconds)
    try:
        time.sleep(step.hold)  # the fault's duration
    finally:
        env.cluster.net.heal()


def _draw_leader(rng: random.Random, brokers: list[int]) -> tuple[int, float, str]:
    what = rng.choice([f"{TOPIC}-{p}" for p in range(PARTITIONS)] + ["controller"])
    return 0, _hold(rng, 0.8), f"of={what}"


def current_leader(cluster: ProxiedCluster, what: str) -> int:
    """The leader most running brokers name for ``topic-partition`` or ``controller`` (0: none named)."""
    votes: Counter[int] = Counter()
    for n, broker in cluster.brokers.items():
        if not broker.running or n in cluster.paused:
            continue
        try:
            meta = AdminClient(client_conf(f"127.0.0.1:{cluster.kafka_ports[n]}")).list_topics(timeout=2)
        except KafkaException:
            continue
        if what == "controller":
            votes[meta.controller_id] += 1
            continue
        topic, _, part = what.rpartition("-")
        tmeta = meta.topics.get(topic)
        pmeta = tmeta.partitions.get(int(part)) if tmeta is not None else None
        if pmeta is not None:
            votes[pmeta.leader] += 1
    ranked = [n for n, _ in votes.most_common() if n > 0]
    return ranked[0] if ranked else 0


def _leader_cutoff(env: Env, step: Step) -> None:
    """Every Raft link of the current leader is cut while clients keep producing to it: it must not
    acknowledge an acks=all write it cannot replicate (the checker proves none was lost)."""
    what = step.arg.split("of=")[1]
    leader = current_leader(env.cluster, what)
    env.note(f"leader of {what} is broker {leader}")
    if leader == 0:
        return
    _cut_for(env, _links_of(leader, sorted(env.cluster.brokers)), step.hold)


# ---------------------------------------------------------------------------------- admin faults


def client_conf(bootstrap: str) -> dict[str, object]:
    quiet = logging.getLogger("tests.cluster.faults.librdkafka")
    quiet.setLevel(logging.CRITICAL)
    return {"bootstrap.servers": bootstrap, "logger": quiet}


def _create_from(env: Env, n: int, topic: str, outcome: dict[int, str]) -> None:
    admin = AdminClient(client_conf(f"127.0.0.1:{env.cluster.kafka_ports[n]}"))
    deadline = time.monotonic() + CREATE_DEADLINE_S
    while time.monotonic() < deadline:
        try:
            admin.create_topics([NewTopic(topic, 1, 3)], operation_timeout=5)[topic].result(10)
            outcome[n] = "created"
            return
        except KafkaException as exc:
            code = exc.args[0].code()
            if code == KafkaError.TOPIC_ALREADY_EXISTS:
                outcome[n] = "exists"
                return
            outcome[n] = f"error {exc.args[0].str()}"  # NOT_CONTROLLER during elections: ask again
        except TimeoutError:
            outcome[n] = "timeout"
        time.sleep(0.2)  # pacing between retries


def _draw_create(rng: random.Random, brokers: list[int]) -> tuple[int, float, str]:
    return 0, 0.0, f"creators={rng.randint(2, 4)}"


def _create_topics(env: Env, step: Step) -> None:
    """Several CreateTopics of one new name at once, each client bootstrapped at a different broker."""
    topic = f"{env.name}-t{len(env.created)}"
    creators = int(step.arg.split("creators=")[1])
    brokers = [n for n in sorted(env.cluster.brokers) if env.cluster.brokers[n].running]
    outcome: dict[int, str] = {}
    threads = [
        threading.Thread(target=_create_from, args=(env, brokers[i % len(brokers)], topic, outcome))
        for i in range(creators)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(CREATE_DEADLINE_S + 15)
    env.note(f"create {topic}: {sorted(outcome.items())}")
    if any(v in ("created", "exists") for v in outcome.values()):
        env.history.created.add(topic)
        env.created.append(topic)
    else:
        env.history.violations.append(f"no CreateTopics of {topic} succeeded: {sorted(outcome.items())}")


_OVERLAPPABLE = (
    "kill",
    "term",
    "pause",
    "isolate",
    "split_pair",
    "one_way",
    "deaf_or_mute",
    "delay",
    "leader_cutoff",
)


def _draw_overlap(rng: random.Random, brokers: list[int]) -> tuple[int, float, str]:
    parts = []
    used: set[int] = set()
    for kind in rng.sample(_OVERLAPPABLE, 2):
        target, hold, arg = REGISTRY[kind].draw(rng, brokers)
        # Two process faults on one broker would race each other (a kill during its own pause).
        if target in used and len(brokers) > 1:
            target = rng.choice([b for b in brokers if b not in used])
            arg = arg if "peer=" not in arg else f"peer={rng.choice([b for b in brokers if b != target])}"
        used.add(target)
        parts.append(f"{kind}/{target}/{hold}/{arg}")
    return 0, 0.0, ";".join(parts)


def _subs(step: Step) -> list[Step]:
    subs = []
    for part in step.arg.split(";"):
        kind, target, hold, arg = part.split("/", 3)
        subs.append(Step(kind, int(target), float(hold), arg))
    return subs


def _overlap(env: Env, step: Step) -> None:
    """Two faults at once (e.g. a pause during a partition, or two brokers down: no quorum until healed).
    A network heal heals every link, so a network fault may end early when the other one heals."""
    subs = _subs(step)
    errors: list[BaseException] = []

    def one(sub: Step) -> None:
        try:
            REGISTRY[sub.kind].run(env, sub)
        except BaseException as exc:  # reraised in the caller's thread below
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(sub,)) for sub in subs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    if errors:
        raise errors[0]


REGISTRY: dict[str, Kind] = {
    k.name: k
    for k in [
        Kind("kill", 3, _one, _kill),
        Kind("term", 2, _one, _term),
        Kind("pause", 2, _one, _pause),
        Kind("crash_all", 1, lambda rng, brokers: (0, _hold(rng, 0.1), "all brokers"), _crash_all),
        Kind("isolate", 2, _one, _isolate),
        Kind("split_pair", 1, _draw_pair, _split_pair),
        Kind("one_way", 1, _draw_pair, _one_way),
        Kind("deaf_or_mute", 1, _draw_deaf, _deaf_or_mute),
        Kind("delay", 1, _draw_delay, _delay),
        Kind("leader_cutoff", 3, _draw_leader, _leader_cutoff),
        Kind("create_topics", 1, _draw_create, _create_topics),
        Kind("overlap", 2, _draw_overlap, _overlap),
        # SIGKILL, data directory deleted, restart: the broker rejoins through replication.rejoin.
        Kind("empty_disk", 1, _one, _empty_disk),
    ]
}
