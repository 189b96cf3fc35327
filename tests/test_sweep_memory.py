"""Bounded memory: a statistics-only sweep, or one writing its outputs to a store, uses memory
that does not grow with the grid beyond the small per-point results (effect and values, 8
bytes per point), while keeping the outputs would take 4 * F bytes per point."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).parent
FEATURES = 512  # keeping outputs would cost 2 KiB per point

SCRIPT = """
import json, resource, sys, torch, latentsweep as ls
sys.path.insert(0, {tests!r})
from sweep_models import wide_rowwise_decoder
torch.set_num_threads(1)
anchors = torch.randn({anchors}, 8, generator=torch.Generator().manual_seed(0))
result = ls.traverse(wide_rowwise_decoder({features}), anchors, steps=40, batch_size=2048,
                     keep_outputs={keep}, out={out!r}, progress=False)
print(json.dumps({{"points": result.num_points, "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}}))
"""


def peak_rss(anchors: int, *, keep: bool, out: str | None) -> tuple[int, int]:
    script = SCRIPT.format(tests=str(TESTS), anchors=anchors, features=FEATURES, keep=keep, out=out)
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True)
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    return report["points"], report["peak_rss_kib"] * 1024


@pytest.mark.parametrize("store", [False, True], ids=["statistics-only", "outputs-to-zarr"])
def test_peak_memory_does_not_grow_with_the_grid(tmp_path, store):
    keep = store
    small_points, small_rss = peak_rss(125, keep=keep, out=str(tmp_path / "small.zarr") if store else None)
    large_points, large_rss = peak_rss(1000, keep=keep, out=str(tmp_path / "large.zarr") if store else None)
    extra_points = large_points - small_points  # 280,000 points
    growth = large_rss - small_rss
    outputs_bytes = extra_points * FEATURES * 4  # what keeping the outputs in memory would add
    # Allowance: 16 bytes per point, plus run-to-run noise of the allocator and zarr's threads
    # (seen up to +-25 MiB); a leak of the outputs would add 547 MiB.
    assert growth < 16 * extra_points + 48 * 2**20, (growth, extra_points)
    assert growth < outputs_bytes / 8
