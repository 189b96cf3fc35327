"""Sweeps that keep their outputs in a store: what writing them costs, in one run.

    python benchmarks/bench_store_writes.py [--repeats 5] [--smoke]

For an MLP 32 -> 256 -> 784 (200 anchors x 32 latents x 21 steps = 134,400 points, float32 outputs,
422 MB) and ``keep_outputs=True``, prints the best time of each way to get the outputs:
``traverse`` in memory, into a zarr store (each unit's chunks written as files, see
streamed_chunks.py), into the same store with every chunk written through zarr's own
``Array.__setitem__`` (what the stores did before; the library's switch, ``stores.raw_chunks``,
set to refuse), into an ``.npy`` store, and what a user would write instead: the grid decoded in
batches, each batch assigned to a zarr array with the same chunks. Two batch sizes: one that
whole traversals fill (chunks of one batch) and one they do not (chunks of one unit).

Then the long-traversal case (a unit of one traversal of many steps, S > 4 x batch): the peak
resident memory of a store sweep in a fresh process, with its units held and written through zarr
(before) and streamed to their chunk files, against the unit's size.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
import zarr
from _timing import add_smoke_option, best_seconds

import latentsweep as ls
from latentsweep import stores

STEPS = 21


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    add_smoke_option(parser)
    return parser


def user_loop(decoder, codes: torch.Tensor, batch: int, path: Path, chunk_rows: int) -> None:
    """What a user writes: decode the grid in batches, assign each to a zarr array."""
    array = zarr.create_array(str(path), shape=(codes.shape[0], 784), chunks=(chunk_rows, 784), dtype="float32",
                              compressors=None, fill_value=0, overwrite=True)
    with torch.no_grad():
        for start in range(0, codes.shape[0], batch):
            array[start : start + batch] = decoder(codes[start : start + batch]).numpy()


PEAK_SCRIPT = """
import json, sys, torch, latentsweep as ls
from latentsweep import stores
sys.path.insert(0, {benchmarks!r})
from _memory import peak_kib, reset_peak, resident_kib
steps, side, batch, out, before = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
if before == "1":
    stores.raw_chunks = lambda array: None  # every chunk through zarr, a unit held whole (before)
torch.manual_seed(0)
decoder = torch.nn.Sequential(torch.nn.Linear(8, 3 * side * side), torch.nn.Unflatten(1, (3, side, side)))
anchors = torch.randn(1, 8)
ls.traverse(decoder, anchors, dims=[0], steps=5, batch_size=batch, out=out + ".warm", progress=False)
resident = resident_kib()
reset_peak()
ls.traverse(decoder, anchors, dims=[0], steps=steps, batch_size=batch, out=out, progress=False)
print(json.dumps({{"growth": (peak_kib() - resident) * 1024}}))
"""


def main() -> None:
    args = build_parser().parse_args()
    repeats = 1 if args.smoke else args.repeats
    anchors_n, latent = (4, 8) if args.smoke else (200, 32)
    torch.manual_seed(0)
    decoder = torch.nn.Sequential(torch.nn.Linear(latent, 256), torch.nn.ReLU(), torch.nn.Linear(256, 784)).eval()
    anchors = torch.randn(anchors_n, latent)
    points = anchors_n * latent * STEPS
    codes = ls.traversal_codes(anchors, torch.arange(latent), ls.traversal_values(anchors, steps=STEPS))
    codes = codes.reshape(-1, latent)
    print(f"MLP {latent}-256-784, {anchors_n} anchors x {latent} latents x {STEPS} steps = {points:,} points, "
          f"keep_outputs=True, {points * 784 * 4 / 1e6:.0f} MB of outputs, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, best of {repeats}\n")
    folder = Path(tempfile.mkdtemp())
    raw_chunks = stores.raw_chunks
    try:
        print("| batch | chunks | method | best time | vs in memory |")
        print("| ---: | --- | --- | ---: | ---: |")
        for batch in (1029, 1024):  # 1029 = 49 traversals: chunks of a batch; 1024: chunks of a unit
            def into(name: str, **options):
                def run():
                    stores.remove_store(folder / name)  # (what overwrite=True removes)
                    ls.traverse(decoder, anchors, steps=STEPS, batch_size=batch, keep_outputs=True,
                                out=folder / name, progress=False, **options)
                return run

            def through_zarr():
                stores.raw_chunks = lambda array: None
                try:
                    into("z.zarr")()
                finally:
                    stores.raw_chunks = raw_chunks

            into("s.zarr")()
            plan = ls.stores.SweepStore(folder / "s.zarr", writable=False).plan
            chunks = "a batch" if plan.chunk_rows == plan.batch_size else f"a unit ({plan.chunk_rows} rows)"
            rows = {
                "`traverse` in memory": lambda: ls.traverse(decoder, anchors, steps=STEPS, batch_size=batch,
                                                            keep_outputs=True, progress=False),
                "`traverse(out='s.zarr')`": into("s.zarr"),
                "`traverse(out='s.zarr')`, every chunk through zarr (before)": through_zarr,
                "`traverse(out='s.npy')`": into("s.npy"),
                "user loop: decode batches, assign each to a zarr array": lambda: user_loop(
                    decoder, codes, batch, folder / "u.zarr", plan.chunk_rows),
            }
            times = {name: best_seconds(fn, repeats) for name, fn in rows.items()}
            memory = times["`traverse` in memory"]
            for name, seconds in times.items():
                print(f"| {batch} | {chunks} | {name} | {seconds:.3f} s | {seconds / memory:.2f}x |")
        steps, side, batch = (41, 16, 4) if args.smoke else (4001, 64, 16)
        unit_bytes = steps * 3 * side * side * 4
        print("\n| one traversal, steps | outputs a row | batch | unit (one chunk) | writes | peak RSS growth | "
              "growth / unit |")
        print("| ---: | --- | ---: | ---: | --- | ---: | ---: |")
        for before in ("1", "0"):
            out = folder / f"long{before}.zarr"
            done = subprocess.run([sys.executable, "-c", PEAK_SCRIPT.format(benchmarks=str(Path(__file__).parent)),
                                   str(steps), str(side), str(batch), str(out), before],
                                  capture_output=True, text=True, check=True)
            growth = json.loads(done.stdout.strip().splitlines()[-1])["growth"]
            writes = "through zarr, unit held (before)" if before == "1" else "streamed to the chunk's file"
            print(f"| {steps} | 3x{side}x{side} float32 | {batch} | {unit_bytes / 2**20:.0f} MiB | {writes} | "
                  f"{growth / 2**20:.0f} MiB | {growth / unit_bytes:.2f} |")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
