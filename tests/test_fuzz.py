"""Random garbage through the public functions in a subprocess: only Python exceptions, never
a crash or a hang (issue 2 item 6). See fuzz_worker.py for what is generated."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

WORKER = Path(__file__).with_name("fuzz_worker.py")
TIMEOUT_S = 240
# "Valid but enormous" requests (e.g. sample_prior(2**31, 18)) fail to allocate under the
# worker's 8 GiB address-space cap: a clean RuntimeError from torch's allocator, not bad input.
ALLOCATION_FAILURES = ("can't allocate memory", "not enough memory", "DefaultCPUAllocator")


def run_worker(seed: int, iterations: int, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(WORKER), str(seed), str(iterations)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        env={**os.environ, **(env or {})},
        cwd=WORKER.parent,
    )


def check_worker(result: subprocess.CompletedProcess) -> dict:
    """The worker exited normally and printed its summary; returns the summary."""
    assert result.returncode == 0, (
        f"fuzz worker died with exit code {result.returncode} (negative: killed by signal)\n"
        f"stderr tail:\n{result.stderr[-3000:]}"
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("seed", [0, 1])
def test_fuzz_public_functions_never_crash(seed):
    summary = check_worker(run_worker(seed, 2500))
    outcomes = summary["outcomes"]
    assert set(outcomes) == {"sample", "sample_prior", "traversal_codes", "traversal_values"}
    for name, counts in outcomes.items():
        # The fuzz reaches both the checks and the kernels of every function.
        assert counts.get("ValueError", 0) > 10 and counts.get("TypeError", 0) > 10, (name, counts)
        assert counts.get("ok", 0) > 10, (name, counts)
    other = [u for u in summary["unexpected"] if not any(s in u["error"] for s in ALLOCATION_FAILURES)]
    assert other == [], "exceptions other than ValueError/TypeError:\n" + "\n".join(
        f"{u['call']}\n    -> {u['error']}" for u in other
    )


def test_fuzz_harness_detects_a_crash():
    """The check above fails when the interpreter dies (here: a real segfault)."""
    result = run_worker(0, 10, env={"LATENTSWEEP_FUZZ_CRASH": "1"})
    assert result.returncode != 0
    with pytest.raises(AssertionError, match="fuzz worker died"):
        check_worker(result)
