"""Operator HA end to end: two operator replicas elect a leader over a Lease; the leader is SIGKILLed in the
middle of a rolling restart and the standby takes the Lease over and finishes the roll.

The chart installs the operator with its default of 2 replicas (each a process on a process node). The test
samples the Lease throughout and reads both pods' logs afterwards to check that at no time did two
processes act: the standby logs no handler activity before it became leader, the killed leader none after.
"""

from __future__ import annotations

import datetime
import itertools
import json
import os
import re
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import config as kube_config
from streamraft_operator.kube import Kube
from streamraft_operator.leaderelection import Timing
from streamraft_operator.leaderlease import LeaseElector

from tests.k8s import network
from tests.k8s.cluster import Cluster
from tests.k8s.release import (
    Release,
    installed_release,
    lease_holder_pod,
    operator_lease,
    operator_pods,
    ready,
    resource,
)
from tests.support.ports import free_port

pytestmark = [pytest.mark.k8s, pytest.mark.slow]

NAME = "ha"
BROKERS = 3
PODS = [f"{NAME}-{i}" for i in range(BROKERS)]
LEASE_DURATION_S = 15.0  # the operator's default (leaderelection.Timing)
RETRY_PERIOD_S = 2.0
# Where the pods' logs say the process acted: kopf's per-object log (every handler and timer run, status
# patch) and our reconcilers' own loggers; not the election's (main, leaderlease), which a standby writes.
_ACTION = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \w+ "
    r"(kopf\.objects|streamraft_operator\.(?!main:|leaderlease:)\S+):"
)
_LEADER = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) .*leader election: (\S+) is the leader")


@pytest.fixture(scope="module")
def release(k8s: Cluster) -> Iterator[Release]:
    with installed_release(k8s, "ha") as rel:
        yield rel


def _sigkill(k8s: Cluster, ns: str, pod: str) -> None:
    """SIGKILL the pod's container process group (no SIGTERM first, so no chance to release the Lease)."""
    pods = Path(k8s.state.directory) / "nodes" / "pods"
    (pid_file,) = pods.glob(f"{ns}_{pod}_*/pids/operator")
    os.killpg(int(pid_file.read_text()), signal.SIGKILL)


@dataclass(frozen=True)
class Sample:
    at: float
    holder: str
    transitions: int
    acquire_time: str
    renew_time: str


class LeaseSampler:
    """Reads the Lease every 0.2 s on a thread: the history of its holders as the API server saw it."""

    def __init__(self, k8s: Cluster, rel: Release) -> None:
        self.k8s, self.rel = k8s, rel
        self.samples: list[Sample] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            lease = operator_lease(self.k8s, self.rel)
            spec = (lease or {}).get("spec") or {}
            self.samples.append(
                Sample(
                    time.monotonic(),
                    str(spec.get("holderIdentity") or ""),
                    int(spec.get("leaseTransitions") or 0),
                    str(spec.get("acquireTime") or ""),
                    str(spec.get("renewTime") or ""),
                )
            )
            self.stop.wait(0.2)  # sampling period, not synchronisation

    def holders(self) -> list[str]:
        out: list[str] = []
        for s in self.samples:
            if not out or out[-1] != s.holder:
                out.append(s.holder)
        return out


def _ts(text: str) -> datetime.datetime:
    return datetime.datetime.strptime(text, "%Y-%m-%d %H:%M:%S,%f")


def _micro(text: str) -> datetime.datetime:
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ")


def _processes(log: str) -> list[list[str]]:
    """The pod's log split per container start (the agent writes a `--- start` line before each)."""
    out: list[list[str]] = []
    for line in log.splitlines():
        if line.startswith("--- start "):
            out.append([])
        elif out:
            out[-1].append(line)
    return out


def _became_leader(lines: list[str]) -> datetime.datetime | None:
    for line in lines:
        m = _LEADER.match(line)
        if m:
            return _ts(m.group(1))
    return None


def _actions(lines: list[str]) -> list[datetime.datetime]:
    return [_ts(m.group(1)) for m in map(_ACTION.match, lines) if m]


def _broker_pods(k8s: Cluster, ns: str) -> dict[str, dict[str, Any]]:
    return {p: pod for p in PODS if (pod := k8s.pod(ns, p)) is not None}


def test_standby_takes_the_lease_when_the_leader_is_killed_mid_roll_and_finishes_it(
    k8s: Cluster, release: Release
) -> None:
    ns = release.namespace
    t_start = time.monotonic()

    def two_pods() -> list[str] | None:
        pods = operator_pods(k8s, ns)
        return pods if len(pods) == 2 else None

    ops = k8s.wait_for(two_pods, 60, "2 operator pods")
    leader = k8s.wait_for(lambda: lease_holder_pod(operator_lease(k8s, release)), 60, "a leader")
    (standby,) = [p for p in ops if p != leader]
    assert k8s.pod_ready(ns, standby) is not None, "the standby answers its probes"

    sampler = LeaseSampler(k8s, release)
    sampling = threading.Thread(target=sampler.run, name="lease-sampler")
    sampling.start()
    try:
        k8s.apply(
            resource("StreamCluster", NAME, {"replicas": BROKERS, "storage": {"size": "1Gi"}}), namespace=ns
        )
        cluster = k8s.wait_for(lambda: ready(k8s, ns, "streamclusters", NAME), 120, "StreamCluster Ready")
        old_hash = cluster["status"]["configHash"]
        before = {p: pod["metadata"]["uid"] for p, pod in _broker_pods(k8s, ns).items()}
        assert len(before) == BROKERS
        t_ready = time.monotonic()

        patch = '{"spec":{"config":{"num.partitions":2}}}'
        k8s.kubectl("patch", "streamcluster", NAME, "-n", ns, "--type=merge", "-p", patch)

        def first_restart_begun() -> bool:
            pods = _broker_pods(k8s, ns)
            return any(
                p not in pods
                or pods[p]["metadata"]["uid"] != uid
                or pods[p]["metadata"].get("deletionTimestamp")
                for p, uid in before.items()
            )

        k8s.wait_for(first_restart_begun, 90, "the rolling restart to take its first broker down")
        assert lease_holder_pod(operator_lease(k8s, release)) == leader
        _sigkill(k8s, ns, leader)
        t_kill = time.monotonic()

        k8s.wait_for(
            lambda: lease_holder_pod(operator_lease(k8s, release)) == standby,
            40,
            f"{standby} to hold the Lease",
        )
        takeover_s = time.monotonic() - t_kill

        def rolled() -> dict[str, Any] | None:
            obj = ready(k8s, ns, "streamclusters", NAME)
            if obj is None or obj["status"].get("configHash") == old_hash:
                return None
            pods = {p: k8s.pod_ready(ns, p) for p in PODS}
            for p, pod in pods.items():
                if pod is None or pod["metadata"]["uid"] == before[p]:
                    return None
                annotations = pod["metadata"].get("annotations") or {}
                if annotations.get("streamraft.io/config-hash") != obj["status"]["configHash"]:
                    return None
            return obj

        k8s.wait_for(rolled, 150, "every broker restarted on the new config and the cluster Ready")
        roll_s = time.monotonic() - t_kill
    finally:
        sampler.stop.set()
        sampling.join(10)
    print(
        f"\noperator HA: cluster Ready {t_ready - t_start:.1f}s after start; standby held the Lease "
        f"{takeover_s:.1f}s after the SIGKILL; roll finished {roll_s:.1f}s after it"
    )

    # The standby waited out the lease (it cannot tell a dead leader from a slow one), but not much longer:
    # it saw the leader's last renew within one retry period of it (before the kill), and looks again
    # every retry period; plus 2 s for request latency on a loaded machine and our sampling.
    assert takeover_s <= LEASE_DURATION_S + 2 * RETRY_PERIOD_S + 2.0, takeover_s

    # The Lease's history: one holder at a time, the killed leader, then the standby (the killed pod's
    # restarted container came back as a new, later candidate and did not win).
    holders = sampler.holders()
    assert [h.rsplit("_", 1)[0] for h in holders] == [leader, standby], holders
    assert all(a.transitions <= b.transitions for a, b in itertools.pairwise(sampler.samples))
    last_of_old = [s for s in sampler.samples if s.holder == holders[0]][-1]
    first_of_new = next(s for s in sampler.samples if s.holder == holders[1])
    assert first_of_new.transitions == last_of_old.transitions + 1
    # Wall clock of one host: the standby acquired at least a lease duration after the leader's last renew.
    waited = (_micro(first_of_new.acquire_time) - _micro(last_of_old.renew_time)).total_seconds()
    assert waited >= LEASE_DURATION_S - 0.01, waited

    # Both pods' logs: never two acting at once.
    killed_runs = _processes(k8s.pod_log(ns, leader, "operator"))
    standby_runs = _processes(k8s.pod_log(ns, standby, "operator"))
    assert len(standby_runs) == 1, "the standby never restarted"
    (standby_log,) = standby_runs
    took_over = _became_leader(standby_log)
    assert took_over is not None, "\n".join(standby_log[-30:])
    first_run, *later_runs = killed_runs
    assert _became_leader(first_run) is not None
    old_actions, new_actions = _actions(first_run), _actions(standby_log)
    assert old_actions and new_actions, "both leaders reconciled"
    assert max(old_actions) < took_over, "the killed leader acted after the standby took over"
    assert min(new_actions) >= took_over, "the standby acted before it held the Lease"
    for run in later_runs:  # the killed pod restarted as a standby
        assert _became_leader(run) is None and not _actions(run), run[-20:]
    print(json.dumps({"holders": holders, "transitions": first_of_new.transitions}))

    # Pods came and went under the bridge, and its MAC (the pods' gateway, where the apiserver relay
    # listens) stayed put: it used to follow the lowest port MAC, cutting every pod off the API server
    # until their ARP entries expired, longer than a lease duration.
    shown = network.ip("-br", "link", "show", k8s.subnet.bridge).stdout.split()
    assert network.bridge_mac(k8s.subnet) in shown, shown


# --- The election's I/O shell against the real API server (no operator pods): fast, seconds each.

FAST = Timing(lease_duration_s=3.0, renew_deadline_s=2.0, renew_period_s=0.5, retry_period_s=0.5)


def _kube(k8s: Cluster, server: str | None = None) -> Kube:
    api = kube_config.new_client_from_config(config_file=str(k8s.kubeconfig))
    if server is not None:
        api.configuration.host = server
    return Kube(api)


def _elector(k8s: Cluster, ns: str, identity: str, server: str | None = None) -> LeaseElector:
    return LeaseElector(_kube(k8s, server), namespace=ns, name="race", identity=identity, timing=FAST)


def test_candidates_racing_for_one_lease_never_both_win(k8s: Cluster, k8s_namespace: str) -> None:
    """Four candidates write at the same instant, again and again: resourceVersion preconditions let
    exactly one hold the Lease each time; a release hands it to one of the others at once."""
    electors = [_elector(k8s, k8s_namespace, f"c{i}") for i in range(4)]
    for round_ in range(3):
        barrier = threading.Barrier(len(electors))
        won: dict[str, bool] = {}

        def attempt(
            e: LeaseElector, barrier: threading.Barrier = barrier, won: dict[str, bool] = won
        ) -> None:
            barrier.wait(10)
            won[e.identity] = e.try_acquire_or_renew()

        threads = [threading.Thread(target=attempt, args=(e,)) for e in electors]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        winners = [who for who, ok in won.items() if ok]
        assert len(won) == len(electors) and len(winners) == 1, (round_, won)
        path = f"/apis/coordination.k8s.io/v1/namespaces/{k8s_namespace}/leases/race"
        lease = k8s.api.get(path)
        assert lease is not None and lease["spec"]["holderIdentity"] == winners[0]
        holder = next(e for e in electors if e.identity == winners[0])
        holder.release()  # empties the holder: the next round is free for all again
        assert k8s.api.get(path)["spec"]["holderIdentity"] == ""
        electors = [e for e in electors if e is not holder] + [_elector(k8s, k8s_namespace, f"n{round_}")]


def test_holder_steps_down_when_another_takes_the_lease_or_the_api_is_unreachable(
    k8s: Cluster, k8s_namespace: str
) -> None:
    ns = k8s_namespace
    lost: list[tuple[str, float]] = []
    # 1. Someone else overwrote the Lease (an operator bug, a human): the holder's next renew sees it.
    holder = _elector(k8s, ns, "holder")
    assert holder.try_acquire_or_renew()
    holder.start_renewing(lambda why: lost.append((why, time.monotonic())))
    path = f"/apis/coordination.k8s.io/v1/namespaces/{ns}/leases/race"
    lease = k8s.api.get(path)
    assert lease is not None
    k8s.kubectl("patch", "lease", "race", "-n", ns, "--type=merge", "-p",
                '{"spec":{"holderIdentity":"intruder"}}')  # fmt: skip
    k8s.wait_for(lambda: lost, 5, "the holder to notice the other holder")
    assert "now held by intruder" in lost[0][0]
    holder.release()
    assert k8s.api.get(path)["spec"]["holderIdentity"] == "intruder"  # not cleared

    # 2. Cut off from the API server (a closed port: every renew fails): it steps down at the renew
    # deadline after its last renew, before a standby (3 s lease) could take over.
    k8s.kubectl("delete", "lease", "race", "-n", ns)
    cut = _elector(k8s, ns, "cut")
    assert cut.try_acquire_or_renew()
    acquired = time.monotonic()
    port = free_port()
    cut._kube = _kube(k8s, f"https://127.0.0.1:{port}")  # the partition
    lost.clear()
    cut.start_renewing(lambda why: lost.append((why, time.monotonic())))
    k8s.wait_for(lambda: lost, 10, "the cut-off holder to step down")
    why, when = lost[0]
    assert "not renewed for 2s" in why
    assert FAST.renew_deadline_s - 0.1 <= when - acquired < FAST.lease_duration_s, when - acquired
    cut.release()  # cannot reach the API: gives up quietly, the Lease expires
    standby = _elector(k8s, ns, "standby")
    assert not standby.try_acquire_or_renew(), "the lease still looks live to a fresh observer"
    k8s.wait_for(standby.try_acquire_or_renew, 10, "the standby to take the expired lease")
