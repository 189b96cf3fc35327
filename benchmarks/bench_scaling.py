"""Scaling of a sweep on this machine: 1 process x T threads against N processes x 1 thread.

    python benchmarks/bench_scaling.py [--anchors 200] [--repeats 3]

The same statistics-only sweep (MLP decoder 32 -> 256 -> 784, 32 latents x 21 steps) runs
  (a) in one process with torch using all N cores (OMP_NUM_THREADS=N),
  (b) under `python -m torch.distributed.run --standalone --nproc-per-node N` (gloo), one
      thread per process: the ranks split the work units and merge the statistics,
and prints points/s and the efficiency of (b) relative to (a) as a Markdown table. Each
configuration runs in fresh processes, `repeats` times (median). No allocator or other
environment tuning beyond the thread counts the rows name.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

LATENT, DIMS, STEPS = 32, 32, 21


def worker(anchors: int, report: Path) -> None:
    import torch
    import torch.distributed as dist
    from torch import nn

    import latentsweep as ls

    torch.manual_seed(0)
    decoder = nn.Sequential(nn.Linear(LATENT, 256), nn.ReLU(), nn.Linear(256, 784), nn.Sigmoid())
    codes = torch.randn(anchors, LATENT, generator=torch.Generator().manual_seed(1))
    ls.traverse(decoder, codes[:2], steps=3, keep_outputs=False, progress=False)  # warm-up (and the group)
    if dist.is_initialized():
        dist.barrier()
    started = time.perf_counter()
    result = ls.traverse(decoder, codes, steps=STEPS, keep_outputs=False, progress=False)
    seconds = time.perf_counter() - started
    if not dist.is_initialized() or dist.get_rank() == 0:
        report.write_text(json.dumps({"seconds": seconds, "points": result.num_points,
                                      "batch": result.batch_size}))


def run(command: list[str], threads: int, report: Path) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    subprocess.run(command, check=True, env=env, capture_output=True, text=True, timeout=900)
    return json.loads(report.read_text())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--anchors", type=int, default=200)
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--worker", type=Path)
    args = parser.parse_args()
    if args.worker:
        return worker(args.anchors, args.worker)
    n = args.processes
    report = Path(f"/tmp/latentsweep-scaling-{os.getpid()}.json")
    me = [__file__, "--anchors", str(args.anchors), "--worker", str(report)]
    configs = {
        f"1 process x {n} threads": ([sys.executable, *me], n),
        f"{n} processes x 1 thread (torchrun, gloo)": (
            [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={n}", *me], 1),
    }
    rows = {}
    for name, (command, threads) in configs.items():
        runs = [run(command, threads, report) for _ in range(args.repeats)]
        seconds = statistics.median(r["seconds"] for r in runs)
        rows[name] = (runs[0]["points"] / seconds, seconds, runs[0]["batch"])
    report.unlink(missing_ok=True)
    base = next(iter(rows.values()))[0]
    print(f"MLP 32->256->784, {args.anchors} anchors x {DIMS} latents x {STEPS} steps "
          f"= {args.anchors * DIMS * STEPS:,} points, keep_outputs=False, median of {args.repeats}\n")
    print("| configuration | seconds | points/s | batch | efficiency vs 1 process |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, (pps, seconds, batch) in rows.items():
        print(f"| {name} | {seconds:.2f} | {pps:,.0f} | {batch} | {pps / base:.2f} |")


if __name__ == "__main__":
    main()
