"""python -m tests.k8s.nodeagent --kubeconfig K --state-dir D --nodes N --subnet OCTET --apiserver-port P"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path
from types import FrameType

from tests.k8s import network
from tests.k8s.nodeagent.agent import Agent
from tests.k8s.nodeagent.api import Api

REPO_ROOT = Path(__file__).resolve().parents[3]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.k8s.nodeagent", description=__doc__)
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--nodes", type=int, default=1)
    parser.add_argument("--node-prefix", default="node")
    parser.add_argument(
        "--subnet", type=int, required=True, help="third octet of the 10.244.x.0/24 pod subnet"
    )
    parser.add_argument("--apiserver-port", type=int, required=True)
    parser.add_argument(
        "--workdir", type=Path, default=REPO_ROOT, help="containers' default working directory"
    )
    parser.add_argument("--kubelet-version", default="v1.36.3")
    parser.add_argument(
        "--host-dns",
        action="store_true",
        help="also publish pod/Service DNS names in the host's /etc/hosts (tagged block, removed on exit)",
    )
    args = parser.parse_args(argv)
    if not 1 <= args.nodes <= 16:
        parser.error(f"--nodes must be between 1 and 16, got {args.nodes}")
    if not 1 <= args.subnet <= 254:
        parser.error(f"--subnet must be an octet between 1 and 254, got {args.subnet}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args.state_dir.mkdir(parents=True, exist_ok=True)
    names = [f"{args.node_prefix}-{i}" for i in range(args.nodes)]
    agent = Agent(
        Api(args.kubeconfig),
        state_dir=args.state_dir.resolve(),
        node_names=names,
        subnet=network.Subnet(args.subnet),
        apiserver_port=args.apiserver_port,
        workdir=args.workdir.resolve(),
        kubelet_version=args.kubelet_version,
        host_dns=args.host_dns,
    )

    def on_signal(signum: int, frame: FrameType | None) -> None:
        agent.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    agent.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
