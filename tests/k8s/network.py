"""Pod networking for the process node agent: one Linux bridge per cluster on a private /24 inside
10.244.0.0/16, one network namespace + veth pair per pod.

The subnet exists only on this machine: pods get no default route and IP forwarding is never
enabled, so a pod can reach other pods and the bridge address, nothing else. Several clusters may run
at once (parallel test sessions), so each reserves its third octet with an atomic mkdir under
/run/streamraft-k8s; a reservation whose owner process is gone is reclaimed.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

RESERVATIONS = Path("/run/streamraft-k8s")
NETNS_ETC = Path("/etc/netns")
_FIRST_OCTET, _LAST_OCTET = 100, 250


class NetworkError(RuntimeError):
    pass


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise NetworkError(f"ip {' '.join(args)} failed: {result.stderr.strip()}")
    return result


@dataclass(frozen=True)
class Subnet:
    """10.244.<octet>.0/24; .1 is the bridge (the host side), pods get .2 to .254."""

    octet: int

    @property
    def bridge(self) -> str:
        return f"srk-br{self.octet}"

    @property
    def gateway(self) -> str:
        return f"10.244.{self.octet}.1"

    def address(self, host: int) -> str:
        assert 2 <= host <= 254, host
        return f"10.244.{self.octet}.{host}"

    @property
    def netns_prefix(self) -> str:
        return f"srk{self.octet}-"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _octets_in_use() -> set[int]:
    used: set[int] = set()
    for line in ip("-o", "-4", "addr", "show").stdout.splitlines():
        for word in line.split():
            if word.startswith("10.244."):
                with contextlib.suppress(ValueError, IndexError):
                    used.add(int(word.split(".")[2]))
    return used


def _owner_alive(marker: Path) -> bool:
    try:
        return _pid_alive(int((marker / "owner").read_text()))
    except (OSError, ValueError):
        # Reservations are made under the lock with the owner written at once: a marker without an
        # owner is from a reserver that crashed in between.
        return False


def reserve_subnet(owner_pid: int) -> Subnet:
    """Atomically claims a free /24 for a cluster whose lifetime is tied to `owner_pid`."""
    RESERVATIONS.mkdir(parents=True, exist_ok=True)
    # One reserver at a time, so two sessions never both reclaim (and tear down) the same subnet.
    with open(RESERVATIONS / "reserve.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _reserve(owner_pid)


def _reserve(owner_pid: int) -> Subnet:
    in_use = _octets_in_use()
    for octet in range(_FIRST_OCTET, _LAST_OCTET + 1):
        marker = RESERVATIONS / f"subnet-{octet}"
        if marker.exists():
            if _owner_alive(marker):
                continue
            # A dead cluster's subnet (its owner was killed): remove what it left behind, reuse it.
            teardown_subnet(Subnet(octet))
        elif octet in in_use:
            continue  # an address we did not reserve: not ours to touch
        try:
            marker.mkdir()
        except FileExistsError:
            continue
        (marker / "owner").write_text(str(owner_pid))
        return Subnet(octet)
    raise NetworkError("no free 10.244.x.0/24 subnet left for a test cluster")


def set_subnet_owner(subnet: Subnet, owner_pid: int) -> None:
    (RESERVATIONS / f"subnet-{subnet.octet}" / "owner").write_text(str(owner_pid))


def bridge_mac(subnet: Subnet) -> str:
    """A fixed, locally administered MAC per subnet ("srk" + the octet)."""
    return f"02:73:72:6b:00:{subnet.octet:02x}"


def create_bridge(subnet: Subnet) -> None:
    if ip("link", "show", subnet.bridge, check=False).returncode == 0:
        return
    ip("link", "add", subnet.bridge, "type", "bridge")
    # A bridge without an address of its own takes the lowest MAC among its ports, so it changed each
    # time a pod's veth came or went; every pod's ARP entry for the gateway (the apiserver relay, DNS)
    # then pointed at a MAC that was gone until it expired: tens of seconds without the API server.
    ip("link", "set", subnet.bridge, "address", bridge_mac(subnet))
    ip("addr", "add", f"{subnet.gateway}/24", "dev", subnet.bridge)
    ip("link", "set", subnet.bridge, "up")


def netns_name(subnet: Subnet, host: int) -> str:
    return f"{subnet.netns_prefix}{host}"


def create_pod_netns(subnet: Subnet, host: int) -> str:
    """Creates namespace + veth for pod address .host; returns the namespace name."""
    name = netns_name(subnet, host)
    delete_pod_netns(subnet, host)
    veth = f"srk{subnet.octet}v{host}"
    ip("netns", "add", name)
    ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", name)
    ip("link", "set", veth, "master", subnet.bridge, "up")
    ip("-n", name, "addr", "add", f"{subnet.address(host)}/24", "dev", "eth0")
    # Announce the new MAC (gratuitous ARP on link up) and drop the host's entry for a previous pod
    # that had this address, so the host never sends to a MAC that is gone.
    ip("netns", "exec", name, "sysctl", "-q", "-w", "net.ipv4.conf.eth0.arp_notify=1")
    ip("neigh", "flush", "to", subnet.address(host), check=False)
    ip("-n", name, "link", "set", "eth0", "up")
    ip("-n", name, "link", "set", "lo", "up")
    (NETNS_ETC / name).mkdir(parents=True, exist_ok=True)
    return name


def delete_pod_netns(subnet: Subnet, host: int) -> None:
    name = netns_name(subnet, host)
    # Deleting the namespace destroys the pod end of the veth, which destroys the host end too.
    ip("netns", "delete", name, check=False)
    ip("link", "delete", f"srk{subnet.octet}v{host}", check=False)
    shutil.rmtree(NETNS_ETC / name, ignore_errors=True)


def teardown_subnet(subnet: Subnet) -> None:
    """Removes every namespace, veth and the bridge of a cluster, and its reservation."""
    for line in ip("netns", "list", check=False).stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        if name.startswith(subnet.netns_prefix):
            ip("netns", "delete", name, check=False)
            shutil.rmtree(NETNS_ETC / name, ignore_errors=True)
    for line in ip("-o", "link", "show", check=False).stdout.splitlines():
        parts = line.split(":")
        if len(parts) > 1:
            link = parts[1].strip().split("@")[0]
            if link.startswith(f"srk{subnet.octet}v"):
                ip("link", "delete", link, check=False)
    ip("link", "delete", subnet.bridge, check=False)
    shutil.rmtree(RESERVATIONS / f"subnet-{subnet.octet}", ignore_errors=True)
