"""``python -m tests.cluster.faults --schedules 50 --seed 0``: run fault schedules against a fresh
proxied 3-broker cluster; ``--only K`` reruns exactly schedule K of that seed (what a failure prints)."""

from __future__ import annotations

import argparse
import faulthandler
import signal
import sys
import tempfile
from pathlib import Path

from tests.cluster.faults.driver import run
from tests.cluster.faults.kinds import REGISTRY
from tests.cluster.faults.schedule import MAX_STEPS, default_kinds

MAX_SCHEDULES = 100_000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.cluster.faults", description=__doc__)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--schedules", type=int, default=50, help="how many schedules to run (default 50)")
    parser.add_argument("--first", type=int, default=0, help="index of the first schedule")
    parser.add_argument("--only", type=int, help="run exactly this schedule index, nothing else")
    parser.add_argument(
        "--kinds",
        default=",".join(default_kinds()),
        help=f"comma-separated fault kinds (known: {','.join(REGISTRY)})",
    )
    parser.add_argument("--max-steps", type=int, default=MAX_STEPS, help="faults per schedule at most")
    parser.add_argument(
        "--restart-dead-dialers",
        action="store_true",
        help="restart a broker whose Raft dialer died instead of failing (the fixed transport bug)",
    )
    parser.add_argument("--data-dir", type=Path, help="where broker data and logs go (default: a temp dir)")
    args = parser.parse_args(argv)
    # `kill -USR1 <pid>` prints every thread's stack: what a stuck run is waiting for.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    if not 1 <= args.schedules <= MAX_SCHEDULES:
        parser.error(f"--schedules must be in 1..{MAX_SCHEDULES}")
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in REGISTRY]
    if unknown or not kinds:
        parser.error(f"--kinds: unknown {unknown}; known: {','.join(REGISTRY)}")
    indices = [args.only] if args.only is not None else list(range(args.first, args.first + args.schedules))
    base = args.data_dir or Path(tempfile.mkdtemp(prefix="streamraft-faults-"))
    print(f"seed={args.seed} schedules={indices[0]}..{indices[-1]} data={base}", flush=True)
    outcome = run(
        args.seed,
        indices,
        base,
        kinds=kinds,
        max_steps=args.max_steps,
        say=lambda s: print(s, flush=True),
        restart_dead_dialers=args.restart_dead_dialers,
    )
    for w in outcome.workarounds:
        print(f"known bug worked around: {w}")
    print(f"{len(outcome.ran)} schedule(s) run, {'all passed' if outcome.ok else 'FAILED'}")
    return 0 if outcome.ok else 1


if __name__ == "__main__":
    sys.exit(main())
