"""Scaling of a sweep on this machine: 1 process x T threads against N processes x 1 thread.

    python benchmarks/bench_scaling.py [--anchors 200] [--repeats 3] [--smoke]

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
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

LATENT, DIMS, STEPS = 32, 32, 21
# --smoke: a tiny grid, 2 processes, one run each, and a shorter wait for a process that hangs
SMOKE_ANCHORS, SMOKE_PROCESSES, SMOKE_TIMEOUT_S, TIMEOUT_S = 2, 2, 60, 900


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


def run(command: list[str], threads: int, report: Path, timeout: float = TIMEOUT_S) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    report.unlink(missing_ok=True)  # a run that writes none must not read the previous one's
    # its own process group: a run past the timeout is ended with torchrun's workers, not without
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          start_new_session=True) as process:
        try:
            _, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise SystemExit(f"{' '.join(command)} ran past {timeout} s: ended") from None
    if process.returncode != 0:  # the workers' own error, not only their exit status
        raise SystemExit(f"{' '.join(command)} failed (exit {process.returncode}):\n{stderr}")
    return json.loads(report.read_text())


def build_parser() -> argparse.ArgumentParser:
    from _timing import add_smoke_option  # here, not at the top: it imports torch, which the launcher needs not

    parser = argparse.ArgumentParser()
    parser.add_argument("--anchors", type=int, default=200)
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--worker", type=Path)
    add_smoke_option(parser)
    return parser


def main() -> None:
    args = build_parser().parse_args()
    if args.worker:
        return worker(args.anchors, args.worker)
    if args.smoke:
        args.anchors, args.processes, args.repeats = SMOKE_ANCHORS, SMOKE_PROCESSES, 1
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
        runs = [run(command, threads, report, SMOKE_TIMEOUT_S if args.smoke else TIMEOUT_S)
                for _ in range(args.repeats)]
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
