"""Runs fault schedules back to back against one proxied 3-broker cluster, checking the history after each.

Per schedule: the producer runs while the steps inject, hold and heal their faults one after another; then
a produce must be acknowledged within ``LIVENESS_S`` (liveness once healed), the readers must reach every
acknowledged offset within ``CATCH_UP_S``, each broker must list every created topic with one id, and the
history checker must find nothing. The first failing schedule stops the run and is reported with its seed,
its steps and the command that reruns exactly it.
"""

from __future__ import annotations

import shlex
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka.admin import AdminClient

from tests.cluster.faults.cluster import ProxiedCluster
from tests.cluster.faults.diagnose import DIALER_SILENT_S, dead_dialers
from tests.cluster.faults.kinds import PARTITIONS, REGISTRY, TOPIC, Env, Step, client_conf
from tests.cluster.faults.load import Load
from tests.cluster.faults.schedule import MAX_STEPS, default_kinds, generate
from tests.support.history import History
from tests.support.launcher import create_topic
from tests.support.wire import metadata_topics

LIVENESS_S = 20.0
CATCH_UP_S = 30.0
TOPIC_LISTED_S = 15.0
PRODUCE_BUDGET_S = 30.0
_NO_ID = uuid.UUID(int=0)


@dataclass
class Outcome:
    seed: int
    ran: list[int] = field(default_factory=list)
    failed: int | None = None
    report: str = ""
    workarounds: list[str] = field(default_factory=list)
    """Each restart of a broker for the known dead-dialer transport bug, with what it had caused."""

    @property
    def ok(self) -> bool:
        return self.failed is None


def replay_command(
    seed: int, index: int, kinds: list[str], max_steps: int, *, upto: bool = False, workaround: bool = False
) -> str:
    cmd = ["python", "-m", "tests.cluster.faults", "--seed", str(seed)]
    cmd += ["--schedules", str(index + 1)] if upto else ["--only", str(index)]
    if sorted(kinds) != sorted(default_kinds()):
        cmd += ["--kinds", ",".join(kinds)]
    if max_steps != MAX_STEPS:
        cmd += ["--max-steps", str(max_steps)]
    if workaround:
        cmd.append("--restart-dead-dialers")
    return shlex.join(cmd)


def run(
    seed: int,
    indices: list[int],
    base: Path,
    *,
    kinds: list[str] | None = None,
    max_steps: int = MAX_STEPS,
    say: Callable[[str], None] = print,
    restart_dead_dialers: bool = False,
) -> Outcome:
    """``restart_dead_dialers``: restart a broker whose Raft dialer died (a transport bug, fixed: the dialer
    now survives any failed attempt; ``diagnose`` still detects it), recorded in ``Outcome.workarounds``.
    Off by default, so such a bug fails the run like any other."""
    kinds = kinds or default_kinds()
    outcome = Outcome(seed)
    with ProxiedCluster(base, 3) as cluster:
        create_topic(cluster, TOPIC, PARTITIONS)
        topics = AdminClient(client_conf(cluster.bootstrap)).list_topics(timeout=10)
        # Until group offsets are replicated (__consumer_offsets), each broker keeps its own: a fault that
        # can move the coordinator starts a new series of committed offsets.
        replicated_offsets = "__consumer_offsets" in topics.topics
        moves = [0]
        say(
            "group offsets: "
            + (
                "replicated (__consumer_offsets listed): one series of committed offsets"
                if replicated_offsets
                else "kept per broker: a new series of committed offsets after each process fault"
            )
        )

        def moved() -> None:
            if not replicated_offsets:
                moves[0] += 1

        history = History()
        ports = list(cluster.kafka_ports.values())
        load = Load([f"127.0.0.1:{p}" for p in ports], history, lambda: moves[0])
        load.start()
        try:
            for index in indices:
                steps = generate(seed, index, kinds, sorted(cluster.brokers), max_steps)
                notes: list[str] = []
                env = Env(cluster, history, f"s{seed}-{index}", notes.append, moved)
                started = time.monotonic()
                if restart_dead_dialers:
                    outcome.workarounds += [
                        f"before schedule {index}: {d}" for d in _restart_dead_dialers(env, False)
                    ]
                _inject(env, load, steps, index)
                mark = len(history.violations)
                problems = _verify(env, load, index)
                if problems and restart_dead_dialers and (dead := _restart_dead_dialers(env, True)):
                    outcome.workarounds += [
                        f"schedule {index}: {d}; it failed with {problems[:3]}" for d in dead
                    ]
                    say(f"schedule {index}: broker restarted for the known dead-dialer bug: {dead}")
                    del history.violations[mark:]
                    problems = _verify(env, load, index)
                outcome.ran.append(index)
                took = time.monotonic() - started
                if problems:
                    outcome.failed = index
                    outcome.report = _report(
                        seed=seed,
                        index=index,
                        steps=steps,
                        notes=notes,
                        problems=problems,
                        kinds=kinds,
                        max_steps=max_steps,
                        cluster=cluster,
                        workaround=restart_dead_dialers,
                    )
                    say(outcome.report)
                    break
                say(
                    f"schedule {index}: ok in {took:.1f}s, {len(steps)} steps "
                    f"({', '.join(s.kind for s in steps)}); so far acked {len(history.acked)}, "
                    f"read {min(sum(map(len, v.values())) for v in history.reads.values())}, "
                    f"commits sampled {sum(map(len, history.committed.values()))}, "
                    f"topics created {len(history.created)}"
                )
        finally:
            load.stop()
    return outcome


def _inject(env: Env, load: Load, steps: list[Step], index: int) -> None:
    load.start_producing(f"s{index}", PRODUCE_BUDGET_S)
    try:
        for step in steps:
            REGISTRY[step.kind].run(env, step)
    except Exception as exc:  # a step that cannot even run (e.g. a broker that will not restart) fails it
        env.history.violations.append(f"step raised {type(exc).__name__}: {exc}")
    finally:
        load.stop_producing()


def _verify(env: Env, load: Load, index: int) -> list[str]:
    """Liveness once healed, readers caught up, topics observed, then the history checker."""
    history = env.history
    for p in range(PARTITIONS):
        load.produce_one(f"s{index}-live", p)
    left = load.flush(LIVENESS_S)
    if left:
        history.violations.append(
            f"liveness: {left} produce(s) not acknowledged {LIVENESS_S:.0f}s after heal"
        )
    _catch_up(load, history)
    _observe_topics(env)
    return history.check() + load.delivery_errors


def _restart_dead_dialers(env: Env, wait: bool) -> list[str]:
    """Work-around for the known transport bug (see ``diagnose``): restart each broker whose dialer died.
    With ``wait``, first gives a dialer that died just now the time to be recognised as dead."""
    deadline = time.monotonic() + (DIALER_SILENT_S + 2 if wait else 0)
    while not (dead := dead_dialers(env.cluster)) and time.monotonic() < deadline:
        time.sleep(0.5)  # polling the broker logs against a deadline
    for n in sorted({n for n, _ in dead}):
        env.coordinator_may_move()
        env.cluster.brokers[n].kill()
        env.cluster.brokers[n].start()
    return [text for _, text in dead]


def _catch_up(load: Load, history: History) -> None:
    ends = {p: 0 for p in range(PARTITIONS)}
    for part, offset, _ in history.acked:
        ends[part] = max(ends[part], offset + 1)
    deadline = time.monotonic() + CATCH_UP_S
    while True:
        behind = {
            name: {p: have for p, have in got.items() if have < ends[p]}
            for name, got in load.read_ends().items()
        }
        if not any(behind.values()):
            return
        if time.monotonic() > deadline:
            history.violations.append(
                f"readers did not reach the acknowledged ends {ends}: stuck at {behind}"
            )
            return
        time.sleep(0.05)  # polling the readers' progress against a deadline


def _observe_topics(env: Env) -> None:
    """Each broker's own Metadata must list every created topic, all with the same id."""
    history = env.history
    if not history.created:
        return
    deadline = time.monotonic() + TOPIC_LISTED_S
    for n, port in sorted(env.cluster.kafka_ports.items()):
        while True:
            listed = _topic_ids(port)
            if all(listed.get(t) for t in history.created) or time.monotonic() > deadline:
                break
            time.sleep(0.1)  # polling the broker's metadata against a deadline
        for t in history.created:
            history.topic_ids.setdefault(t, {})[f"broker-{n}"] = listed.get(t, "")


def _topic_ids(port: int) -> dict[str, str]:
    return {
        str(t.name): str(t.topic_id) for t in metadata_topics("127.0.0.1", port, 3) if t.topic_id != _NO_ID
    }


def _report(
    *,
    seed: int,
    index: int,
    steps: list[Step],
    notes: list[str],
    problems: list[str],
    kinds: list[str],
    max_steps: int,
    cluster: ProxiedCluster,
    workaround: bool,
) -> str:
    lines = [f"FAULT SCHEDULE FAILED: seed={seed} schedule={index}", "steps:"]
    lines += [f"  {i + 1}. {s.line()}" for i, s in enumerate(steps)]
    lines += [f"  note: {n}" for n in notes]
    lines += ["violations:"] + [f"  - {p}" for p in problems]
    found = [f"  - {text}" for _, text in dead_dialers(cluster)]
    lines += ["diagnosis (from the broker logs):", *(found or ["  - nothing found"])]
    lines.append(f"replay: {replay_command(seed, index, kinds, max_steps, workaround=workaround)}")
    # Faults can leave state behind (a stuck link, a lagging replica): the whole run up to it may be needed.
    upto = replay_command(seed, index, kinds, max_steps, upto=True, workaround=workaround)
    lines.append(f"replay with the schedules before it: {upto}")
    lines.append(cluster.logs())
    return "\n".join(lines)
