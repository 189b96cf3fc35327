"""What the merge costs as the number of work units grows, so the plan is known to hold at
cluster scale.

    python benchmarks/bench_merge.py [--features 64] [--dims 16] [--smoke]

Measured for 10^2 and 10^4 units on real stores (a statistics-only sweep with one-row batches,
so the grid has that many units): the time to check every unit's record and checksums
(`sweep_status`, what a resume and `open_sweep` do), to merge the records in unit order
(`open_sweep`), and a `resume=True` of the finished sweep (check at opening, merge at the end:
the merge and the result's effect rows reuse what the check read) and of the sweep with every
100th unit's record deleted (those units decoded again; the units after each gap wait in memory
for it). Simulated for 10^2, 10^4 and 10^6 units: the ordered in-memory merge alone
(K x F float64 sums per unit, as for units of K traversals or more, added unit after unit),
which is what rank 0 does after reading the records. Prints a Markdown table; per-unit costs
show whether the merge grows linearly.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import torch
from _timing import add_smoke_option

import latentsweep as ls
from latentsweep.merge import OrderedMerge, UnitStatistics
from latentsweep.plan import make_plan


def decoder(codes: torch.Tensor) -> torch.Tensor:
    return codes.sum(1, keepdim=True).expand(-1, FEATURES) * 0.5


FEATURES = 64


def store_with_units(folder: Path, units: int, dims: int) -> tuple[Path, dict]:
    """A finished statistics-only store whose plan has `units` work units, and the arguments of
    `traverse` that made it."""
    steps, batch = 2, 1
    rows_per_unit = make_plan(10**9, steps, batch, padded=False).unit_rows
    anchors = max(1, units * rows_per_unit // (dims * steps))
    path = folder / f"units{units}.zarr"
    codes = torch.randn(anchors, dims, generator=torch.Generator().manual_seed(0))
    arguments = dict(steps=steps, batch_size=batch, keep_outputs=False, out=path, progress=False)
    ls.traverse(decoder, codes, **arguments)
    return path, {"anchors": codes, **arguments}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    parser.add_argument("--features", type=int, default=64)
    parser.add_argument("--dims", type=int, default=16)
    parser.add_argument("--store-units", type=int, nargs="*", default=[100, 10_000])
    parser.add_argument("--simulated-units", type=int, nargs="*", default=[100, 10_000, 1_000_000])
    add_smoke_option(parser)
    return parser


def main() -> None:
    global FEATURES
    args = build_parser().parse_args()
    if args.smoke:  # one store of ~100 units (the every-100th deletion still removes one), small sums
        args.features, args.dims, args.store_units, args.simulated_units = 8, 4, [100], [100]
    FEATURES = args.features
    print(f"K = {args.dims} latents, F = {args.features} features (a unit's sums: n x F float64, n <= K the latents "
          "its traversals touch; K x F in the simulated merge)\n")
    print("| units | what | seconds | per unit |")
    print("| ---: | --- | ---: | ---: |")
    folder = Path(tempfile.mkdtemp())
    try:
        for units in args.store_units:
            path, arguments = store_with_units(folder, units, args.dims)
            real = ls.sweep_status(path).num_units
            started = time.perf_counter()
            ls.sweep_status(path)
            status_seconds = time.perf_counter() - started
            started = time.perf_counter()
            ls.open_sweep(path)  # checks again, then reads and merges every record
            open_seconds = time.perf_counter() - started
            print(f"| {real:,} | store: check records + checksums (resume, open) | {status_seconds:.3f} | "
                  f"{status_seconds / real * 1e6:.0f} µs |")
            print(f"| {real:,} | store: open_sweep (check + read + merge) | {open_seconds:.3f} | "
                  f"{open_seconds / real * 1e6:.0f} µs |")
            started = time.perf_counter()
            ls.traverse(decoder, resume=True, **arguments)
            seconds = time.perf_counter() - started
            print(f"| {real:,} | store: resume=True of the finished sweep (check + merge) | {seconds:.3f} | "
                  f"{seconds / real * 1e6:.0f} µs |")
            for record in sorted((path / "units").glob("*.rec"))[::100]:
                record.unlink()
            started = time.perf_counter()
            ls.traverse(decoder, resume=True, **arguments)
            seconds = time.perf_counter() - started
            print(f"| {real:,} | store: resume=True, every 100th unit missing (check + decode 1% + merge) | "
                  f"{seconds:.3f} | {seconds / real * 1e6:.0f} µs |")
            shutil.rmtree(path)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    for units in args.simulated_units:
        partial = UnitStatistics(torch.rand(args.dims, dtype=torch.float64),  # (a unit touching every latent)
                                 torch.rand(args.dims, args.features, dtype=torch.float64), first=0)
        merged = OrderedMerge(args.dims, args.features)
        started = time.perf_counter()
        for unit in range(units):
            merged.add(unit, partial)
        seconds = time.perf_counter() - started
        print(f"| {units:,} | simulated: ordered in-memory merge | {seconds:.3f} | {seconds / units * 1e6:.1f} µs |")


if __name__ == "__main__":
    main()
