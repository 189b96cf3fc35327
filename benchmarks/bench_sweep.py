"""The sweep engine against the ways people traverse latents by hand, in one run.

    python benchmarks/bench_sweep.py [--quick] [--skip-rss]

For an MLP decoder (32 -> 256 -> 784, sigmoid) and a small transposed-conv decoder producing
64x64 images, compares `traverse(..., keep_outputs=False)` with
  (floor) the same decoder on pre-built codes at the same batch size (nothing else done),
  (b) a per-dimension Python loop that builds each dimension's grid and decodes it in one call,
  (c) a per-point loop (timed on a prefix of the grid: it is slow),
all computing the same effect statistic. Then the peak RSS of a 10-million-point
statistics-only sweep, in a subprocess. Prints Markdown tables for BENCHMARKS.md.

glibc adapts its malloc thresholds to the allocation history, so the same decoder loop takes
anywhere from 0 to 350k page faults per run (measured: 1.34 s vs 1.79 s for the MLP loop
alone). The script re-runs itself with fixed thresholds (MALLOC_MMAP_THRESHOLD_,
MALLOC_TRIM_THRESHOLD_) so every method sees the same allocator; the same setting speeds up
CPU sweeps in general.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import torch
from torch import nn

import latentsweep as ls
from _timing import median_seconds, print_table

LATENT = 32


def mlp_decoder() -> nn.Module:
    return nn.Sequential(nn.Linear(LATENT, 256), nn.ReLU(), nn.Linear(256, 784), nn.Sigmoid())


def conv_decoder() -> nn.Module:
    """32 -> 128x4x4 -> 64x8x8 -> 32x16x16 -> 16x32x32 -> 1x64x64."""
    return nn.Sequential(
        nn.Linear(LATENT, 128 * 4 * 4), nn.ReLU(), nn.Unflatten(1, (128, 4, 4)),
        nn.ConvTranspose2d(128, 64, 4, stride=2, padding=1), nn.ReLU(),
        nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1), nn.ReLU(),
        nn.ConvTranspose2d(32, 16, 4, stride=2, padding=1), nn.ReLU(),
        nn.ConvTranspose2d(16, 1, 4, stride=2, padding=1), nn.Sigmoid(),
    )


def decoder_floor(decoder, codes: torch.Tensor, batch: int) -> None:
    with torch.inference_mode():
        for start in range(0, len(codes), batch):
            decoder(codes[start : start + batch])


def per_dimension_loop(decoder, anchors: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """What existing tools do: for each latent, build its grid (anchors x steps) and decode it."""
    num_anchors, steps = anchors.shape[0], values.shape[2]
    with torch.inference_mode():
        x0 = decoder(anchors).flatten(1)
        effects = []
        for k in range(anchors.shape[1]):
            grid = anchors.repeat_interleave(steps, dim=0)
            grid[:, k] = values[:, k].reshape(-1)
            x = decoder(grid).flatten(1).view(num_anchors, steps, -1)
            effects.append((x - x0[:, None]).abs().mean(-1))
    return torch.stack(effects, dim=1)


def per_point_loop(decoder, anchors: torch.Tensor, values: torch.Tensor, limit: int) -> int:
    """One decoder call per grid point; stops after `limit` points. Returns points done."""
    done = 0
    with torch.inference_mode():
        x0 = decoder(anchors).flatten(1)
        for a in range(anchors.shape[0]):
            for k in range(anchors.shape[1]):
                for s in range(values.shape[2]):
                    z = anchors[a].clone()
                    z[k] = values[a, k, s]
                    (decoder(z[None]).flatten(1) - x0[a]).abs().mean()
                    done += 1
                    if done == limit:
                        return done
    return done


def bench_decoder(name: str, decoder: nn.Module, num_anchors: int, steps: int, batch: int, repeats: int) -> list[list[str]]:
    torch.manual_seed(0)
    decoder.eval()
    anchors = torch.randn(num_anchors, LATENT)
    values = ls.traversal_values(anchors, steps=steps)
    points = values.numel()
    codes = ls.traversal_codes(anchors, range(LATENT), values)
    t_floor = median_seconds(lambda: decoder_floor(decoder, codes, batch), repeats=repeats, device=codes.device)
    t_ls = median_seconds(
        lambda: ls.traverse(decoder, anchors, values=values, batch_size=batch, keep_outputs=False, progress=False),
        repeats=repeats, device=codes.device,
    )
    t_dims = median_seconds(lambda: per_dimension_loop(decoder, anchors, values), repeats=repeats, device=codes.device)
    limit = min(points, 2000)
    start = time.perf_counter()
    per_point_loop(decoder, anchors, values, limit)
    t_point = (time.perf_counter() - start) * points / limit  # extrapolated to the whole grid
    rate = lambda t: f"{points / t:,.0f}"  # noqa: E731
    return [
        [name, "decoder alone on pre-built codes (floor)", f"{t_floor:.2f} s", rate(t_floor), "-"],
        [name, "**`traverse(keep_outputs=False)`**", f"**{t_ls:.2f} s**", rate(t_ls), f"**{(t_ls / t_floor - 1) * 100:+.1f}% vs floor**"],
        [name, "per-dimension Python loop", f"{t_dims:.2f} s", rate(t_dims), f"traverse {t_dims / t_ls:.2f}x faster"],
        [name, f"per-point loop (timed on {limit} points)", f"{t_point:.1f} s", rate(t_point), f"traverse {t_point / t_ls:.0f}x faster"],
    ]


RSS_SCRIPT = """
import json, resource, time, torch, latentsweep as ls
from torch import nn
torch.manual_seed(0)
decoder = nn.Sequential(nn.Linear(32, 256), nn.ReLU(), nn.Linear(256, 784), nn.Sigmoid()).eval()
anchors = torch.randn({anchors}, 32)
start = time.perf_counter()
result = ls.traverse(decoder, anchors, steps={steps}, keep_outputs=False, progress=False)
print(json.dumps({{"points": result.num_points, "seconds": time.perf_counter() - start,
                  "batch": result.batch_size,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def bench_rss(anchors: int, steps: int) -> dict:
    script = RSS_SCRIPT.format(anchors=anchors, steps=steps)
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return json.loads(completed.stdout.strip().splitlines()[-1])


FIXED_MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(1 << 30)}


def main() -> None:
    if any(os.environ.get(k) != v for k, v in FIXED_MALLOC.items()):  # see the module docstring
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **FIXED_MALLOC})
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller grids, one repeat")
    parser.add_argument("--skip-rss", action="store_true", help="skip the 10M-point memory run")
    args = parser.parse_args()
    repeats = 1 if args.quick else 3
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU, malloc thresholds fixed")
    rows = bench_decoder("MLP 32-256-784", mlp_decoder(), 64 if args.quick else 256, 21, 4096, repeats)
    rows += bench_decoder("deconv 64x64", conv_decoder(), 4 if args.quick else 16, 11, 256, repeats)
    print("\nA anchors x 32 dims x S steps (MLP: 256 x 32 x 21 = 172,032 points, batch 4096; "
          "deconv: 16 x 32 x 11 = 5,632 points, batch 256)\n")
    print_table(["decoder", "method", "median time", "points/s", "comparison"], rows)
    if not args.skip_rss:
        small = bench_rss(anchors=1000, steps=31)
        large = bench_rss(anchors=10_000, steps=31)
        print("\nPeak RSS of statistics-only sweeps (MLP 32-256-784, `keep_outputs=False`, auto batch)\n")
        print_table(
            ["points", "wall time", "points/s", "peak RSS", "outputs would take"],
            [
                [f"{r['points']:,}", f"{r['seconds']:.1f} s", f"{r['points'] / r['seconds']:,.0f}",
                 f"{r['peak_rss_mib']:.0f} MiB", f"{r['points'] * 784 * 4 / 2**30:.1f} GiB"]
                for r in (small, large)
            ],
        )


if __name__ == "__main__":
    main()
