"""CLI: ``python -m streamraft_consensus.sim --seeds 0-1999 [--jobs 2]`` or ``--seed N --verbose``."""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from dataclasses import asdict

from streamraft_consensus.sim.world import Stats, Violation, run_seed

DEFAULT_FAULT_TICKS = 200


def _parse_seeds(text: str) -> range:
    lo, sep, hi = text.partition("-")
    try:
        a = int(lo)
        b = int(hi) if sep else a
    except ValueError:
        raise argparse.ArgumentTypeError(f"seed range {text!r} is not N or N-M") from None
    if a < 0 or b < a:
        raise argparse.ArgumentTypeError(f"seed range {text!r} is empty or negative")
    return range(a, b + 1)


def _one(args: tuple[int, int]) -> tuple[int, Stats | None, str, float]:
    seed, fault_ticks = args
    t0 = time.perf_counter()
    try:
        stats = run_seed(seed, fault_ticks=fault_ticks)
    except Violation as v:
        return seed, None, f"{v.invariant}: {v.detail}", time.perf_counter() - t0
    except Exception as e:  # any crash of the core or simulator is a failure of the seed, not of the run
        return seed, None, f"unexpected {type(e).__name__}: {e}", time.perf_counter() - t0
    return seed, stats, "", time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m streamraft_consensus.sim", description=__doc__)
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--seeds", type=_parse_seeds, help="inclusive seed range, e.g. 0-1999")
    g.add_argument("--seed", type=int, help="replay one seed")
    ap.add_argument("--verbose", action="store_true", help="print every event of the run (with --seed)")
    ap.add_argument("--jobs", type=int, default=1, help="worker processes")
    ap.add_argument("--fault-ticks", type=int, default=DEFAULT_FAULT_TICKS, help="ticks of the fault phase")
    ns = ap.parse_args(argv)
    ft: int = ns.fault_ticks
    if ns.seed is not None:
        seeds = range(ns.seed, ns.seed + 1)
        if ns.verbose:
            try:
                stats = run_seed(ns.seed, fault_ticks=ft, verbose=True)
            except Violation as v:
                return _report(ns.seed, f"{v.invariant}: {v.detail}", ft)
            except Exception as e:
                _report(ns.seed, f"unexpected {type(e).__name__}: {e}", ft)
                raise
            print(f"seed {ns.seed} ok: {asdict(stats)}")
            return 0
    else:
        seeds = ns.seeds
    t0 = time.perf_counter()
    work = [(s, ft) for s in seeds]
    if ns.jobs > 1:
        with multiprocessing.get_context("fork").Pool(ns.jobs) as pool:
            results = pool.map(_one, work, chunksize=8)
    else:
        results = [_one(w) for w in work]
    elapsed = time.perf_counter() - t0
    failures = [(s, why) for s, _, why, _ in results if why]
    totals = Stats()
    slowest = max(results, key=lambda r: r[3])
    heal_max = 0
    for _, st, _, _ in results:
        if st is None:
            continue
        for k, n in asdict(st).items():
            setattr(totals, k, getattr(totals, k) + n)
        heal_max = max(heal_max, st.heal_to_commit_ticks)
    cols = [
        ("seeds", str(len(results))),
        ("failed", str(len(failures))),
        ("wall s", f"{elapsed:.1f}"),
        ("slowest", f"{slowest[3]:.2f}s #{slowest[0]}"),
        ("ticks", str(totals.ticks)),
        ("acked", str(totals.acked)),
        ("leaders", str(totals.leaders)),
        ("crashes", str(totals.crashes)),
        ("torn", str(totals.torn)),
        ("snaps", str(totals.snapshots_sent)),
        ("reads", str(totals.reads)),
        ("xfers", str(totals.transfers)),
        ("confs", str(totals.conf_changes)),
        ("quiesced", str(totals.quiesced)),
        ("heal->commit max ticks", str(heal_max)),
    ]
    print(" ".join(f"{h:>{max(len(h), len(v))}}" for h, v in cols))
    print(" ".join(f"{v:>{max(len(h), len(v))}}" for h, v in cols))
    for s, why in failures[:20]:
        _report(s, why, ft)
    return 1 if failures else 0


def _report(seed: int, why: str, fault_ticks: int) -> int:
    extra = f" --fault-ticks {fault_ticks}" if fault_ticks != DEFAULT_FAULT_TICKS else ""
    print(f"VIOLATION seed={seed} {why}")
    print(f"  replay: python -m streamraft_consensus.sim --seed {seed} --verbose{extra}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
