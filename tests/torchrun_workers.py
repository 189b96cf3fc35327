"""A worker script under torchrun (CPU, gloo, one thread a process), for the tests of what
several processes do; each rank writes what its calls raised to OUT/said-rank<r>.txt."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run_worker(worker: Path, processes: int, out: Path, timeout: float = 150) -> Path:
    """``worker OUT`` under ``torch.distributed.run --standalone``; asserts it succeeded."""
    completed = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}", str(worker),
         str(out)],
        capture_output=True, text=True, timeout=timeout, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert completed.returncode == 0, (completed.stdout + completed.stderr)[-6000:]
    return out


def said(out: Path, rank: int) -> list[str]:
    """What rank ``rank``'s calls raised (or returned), one line each."""
    return (out / f"said-rank{rank}.txt").read_text().splitlines()
