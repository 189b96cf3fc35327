"""Every latent of a large latent space: traverse at K = D in the thousands, in one run.

    python benchmarks/bench_many_latents.py [--latents 256,1024,2048] [--repeats 3] [--smoke]

A structured latent such as ``latent_shape=(4, 16, 16)`` (D = 1024) traversed over every latent
makes K = D, so anything a work unit holds per latent grows with the grid (units ~ A*K*S) times K.
For an MLP D -> 64 -> 784 with one anchor, 11 steps and batches of 64 codes (keep_outputs=False),
prints per K: the decoder alone on the same number of codes (the floor), ``traverse`` in memory,
``traverse`` into a zarr store, the store's unit records (count and bytes) and ``open_sweep`` of
it, each with its ratio to the floor. Best of ``--repeats`` rounds.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

import torch
from _timing import add_smoke_option, best_seconds

import latentsweep as ls

STEPS, BATCH, FEATURES = 11, 64, 784


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latents", default="256,1024,2048", help="the values of K = D, comma-separated")
    parser.add_argument("--repeats", type=int, default=3)
    add_smoke_option(parser)
    return parser


def main() -> None:
    args = build_parser().parse_args()
    latents = [16] if args.smoke else [int(k) for k in args.latents.split(",")]
    repeats = 1 if args.smoke else args.repeats
    print(f"MLP D -> 64 -> {FEATURES}, 1 anchor, K = D latents x {STEPS} steps, batch {BATCH}, keep_outputs=False, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    print("| K = D | decoder alone | `traverse` in memory | `traverse` into zarr | unit records | "
          "`open_sweep` |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    folder = Path(tempfile.mkdtemp())
    try:
        for latent in latents:
            torch.manual_seed(0)
            decoder = torch.nn.Sequential(torch.nn.Linear(latent, 64), torch.nn.ReLU(), torch.nn.Linear(64, FEATURES))
            anchors = torch.randn(1, latent)
            codes = torch.randn(BATCH, latent)

            def floor():
                with torch.no_grad():
                    for _ in range(-(-latent * STEPS // BATCH)):
                        decoder(codes)

            def in_memory():
                ls.traverse(decoder, anchors, steps=STEPS, batch_size=BATCH, keep_outputs=False, progress=False)

            store = folder / f"k{latent}.zarr"

            def into_store():
                ls.traverse(decoder, anchors, steps=STEPS, batch_size=BATCH, keep_outputs=False, progress=False,
                            out=store, overwrite=True)

            t_floor, t_memory, t_store = (best_seconds(fn, repeats) for fn in (floor, in_memory, into_store))
            records = list(os.scandir(store / "units"))
            record_bytes = sum(entry.stat().st_size for entry in records)
            t_open = best_seconds(lambda: ls.open_sweep(store), repeats)
            ratio = lambda t: f"{t:.3f} s ({t / t_floor:.1f}x)"  # noqa: E731
            print(f"| {latent} | {t_floor:.3f} s | {ratio(t_memory)} | {ratio(t_store)} | "
                  f"{len(records)}, {record_bytes / 1e6:.1f} MB | {ratio(t_open)} |")
            shutil.rmtree(store, ignore_errors=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
