"""The three kinds of sweep (interpolation along lines and arcs) on one decoder and one number
of points, against the decoder alone, in one plain process (no environment tuning):

    python benchmarks/bench_sweep_kinds.py [--repeats N] [--batch-size B] [--smoke]

- `traverse` along the latents (the C++ executor writes each code row itself);
- `traverse(directions=...)`, K = D orthonormal directions (the direction writer: a C++ op);
- `interpolate`, A * D paths of S steps, linear and slerp (the compiled path writer; an arc's
  angles are computed with torch per chunk; the A * D path starts are decoded first, as the
  reference of `change`);
and the decoder alone on pre-built codes at the same batch size (the floor). MLP decoder
32 -> 256 -> 784 (sigmoid), A = 200 anchors, S = 21 steps: 134,400 points per sweep, all at a
fixed batch (the automatic choice is timed and would add its own spread), keep_outputs=False.
Best of N interleaved rounds; prints a Markdown table for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import time

import torch

import latentsweep as ls
from _timing import add_smoke_option, print_table
from bench_sweep import LATENT, mlp_decoder

ANCHORS, STEPS = 200, 21
SMOKE_ANCHORS, SMOKE_STEPS, SMOKE_BATCH = 2, 3, 64  # --smoke: 192 points, every row


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=1024)
    add_smoke_option(parser)
    return parser


def main() -> None:
    args = build_parser().parse_args()
    num_anchors, steps = (SMOKE_ANCHORS, SMOKE_STEPS) if args.smoke else (ANCHORS, STEPS)
    if args.smoke:
        args.repeats, args.batch_size = 1, SMOKE_BATCH
    torch.manual_seed(0)
    decoder = mlp_decoder()
    anchors = torch.randn(num_anchors, LATENT)
    directions = ls.Directions(torch.linalg.qr(torch.randn(LATENT, LATENT))[0].T.contiguous(),
                               tuple(f"u{k}" for k in range(LATENT)))
    starts, ends = anchors.repeat_interleave(LATENT, 0), torch.randn(num_anchors * LATENT, LATENT)
    codes = torch.randn(num_anchors * LATENT * steps, LATENT)
    batch = args.batch_size
    options = dict(steps=steps, keep_outputs=False, progress=False, batch_size=batch)

    def floor() -> None:
        with torch.inference_mode():
            for start in range(0, codes.shape[0], batch):
                decoder(codes[start : start + batch])

    methods = {
        "decoder alone on pre-built codes = **floor**": floor,
        "`traverse`, along the latents": lambda: ls.traverse(decoder, anchors, **options),
        f"`traverse(directions=)`, {LATENT} directions": lambda: ls.traverse(decoder, anchors, directions=directions,
                                                                      **options),
        f"`interpolate`, {len(starts):,} linear paths": lambda: ls.interpolate(decoder, starts, ends, **options),
        f"`interpolate`, {len(starts):,} slerp paths": lambda: ls.interpolate(decoder, starts, ends, path="slerp", **options),
    }
    best = dict.fromkeys(methods, float("inf"))
    for method in methods.values():  # warm-up: first calls pay one-off costs
        method()
    for _ in range(args.repeats):
        for name, method in methods.items():
            began = time.perf_counter()
            method()
            best[name] = min(best[name], time.perf_counter() - began)
    points = codes.shape[0]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {batch}, {points:,} points, "
          f"best of {args.repeats} interleaved rounds\n")
    floor_seconds = best[next(iter(methods))]
    print_table(["method", "best time", "points/s", "vs floor"],
                [[name, f"{seconds:.3f} s", f"{points / seconds:,.0f}",
                  "-" if seconds == floor_seconds else f"{seconds / floor_seconds - 1:+.1%}"]
                 for name, seconds in best.items()])


if __name__ == "__main__":
    main()
