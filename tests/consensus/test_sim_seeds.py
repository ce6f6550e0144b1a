"""CI gate: the deterministic simulator passes 2,000 seeds (safety after every step, liveness after heal)."""

from __future__ import annotations

import subprocess
import sys


def test_two_thousand_seeds() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "streamraft_consensus.sim", "--seeds", "0-1999", "--jobs", "2"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    print(proc.stdout)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    header, row = proc.stdout.splitlines()[:2]
    stats = dict(zip(header.split()[:2], row.split()[:2], strict=True))
    assert stats == {"seeds": "2000", "failed": "0"}, proc.stdout


def test_cli_reports_a_bad_seed_range() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "streamraft_consensus.sim", "--seeds", "9-3"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "seed range '9-3'" in proc.stderr
