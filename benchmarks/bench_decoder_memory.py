"""A decoder that takes tens of MB a code on the CPU (an image decoder: [4, 32, 32] latents to
3 x 256 x 256 images, upsampling convolutions): `traverse` with its defaults against the same
sweep at fixed batch sizes, each in a fresh process, with the peak resident memory above the
process's before the call, the batch used and the time.

    python benchmarks/bench_decoder_memory.py [--anchors 64] [--size 256] [--smoke]

`batch_size="auto"` keeps the decoder's memory within `memory_budget` (1 GiB on the CPU by
default): the anchors' probe measures it (its first call: two anchors). A
version that did not count it decoded 64 anchors in its probe's first call and timed 64 codes and
more in its batch trials, whatever the decoder took a code (a Stable-Diffusion VAE's decoder at
512 x 512: ~1.5 GB a code). `--method NAME` runs one method in this process (the table's rows).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch
from _memory import fresh_process_row, peak_kib, reset_peak, resident_kib
from _timing import add_smoke_option
from torch import nn

import latentsweep as ls

METHODS = {"defaults (auto)": "auto", "batch_size=64": 64, "batch_size=16": 16}


def image_decoder(size: int) -> nn.Module:
    """[4, size/8, size/8] -> 64 channels, three x2 upsamplings with a 3x3 convolution each ->
    [3, size, size]."""
    def up(inputs: int, outputs: int) -> list[nn.Module]:
        return [nn.Upsample(scale_factor=2), nn.Conv2d(inputs, outputs, 3, padding=1), nn.SiLU()]

    return nn.Sequential(nn.Conv2d(4, 64, 3, padding=1), nn.SiLU(), *up(64, 64), *up(64, 32), *up(32, 16),
                         nn.Conv2d(16, 3, 3, padding=1), nn.Sigmoid())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--anchors", type=int, default=64)
    parser.add_argument("--size", type=int, default=256, help="output height and width (default 256)")
    parser.add_argument("--method", choices=sorted(METHODS), help="run one method here and print its JSON line")
    add_smoke_option(parser)
    return parser


def run_one(method: str, anchors: int, size: int) -> dict:
    torch.manual_seed(0)
    decoder = image_decoder(size).eval()
    latents = torch.randn(anchors, 4, size // 8, size // 8)
    with torch.inference_mode():
        decoder(latents[:1])  # the first call's one-off costs (weights' layouts), outside the measure
    reset_peak()
    before = resident_kib()
    began = time.perf_counter()
    result = ls.traverse(decoder, latents, dims=[0, 1], steps=3, keep_outputs=False, progress=False,
                         batch_size=METHODS[method])
    seconds = time.perf_counter() - began
    return {"method": method, "peak_mib": (peak_kib() - before) / 1024, "seconds": seconds,
            "batch_size": result.batch_size, "points": result.num_points}


def main() -> None:
    args = build_parser().parse_args()
    if args.smoke:
        args.anchors, args.size = 4, 32
    if args.method:
        print(json.dumps(run_one(args.method, args.anchors, args.size)))
        return
    print(f"image decoder [4, {args.size // 8}, {args.size // 8}] -> [3, {args.size}, {args.size}], "
          f"{args.anchors} anchors x 2 latents x 3 steps, CPU, {torch.get_num_threads()} threads; each row in a "
          "fresh process\n")
    print("| method | batch used | peak memory above the process's | time | points/s |")
    print("| --- | --- | --- | --- | --- |")
    failed = []
    for method in METHODS:
        row, why = fresh_process_row(__file__, ["--method", method, "--anchors", str(args.anchors), "--size",
                                                str(args.size)])
        if row is None:
            print(f"| {method} | failed | | | |")
            failed.append(f"{method}: {why}")
            continue
        print(f"| {method} | {row['batch_size']} | {row['peak_mib']:,.0f} MiB | {row['seconds']:.2f} s | "
              f"{row['points'] / row['seconds']:,.0f} |")
    if failed:
        sys.exit("\n".join(failed))


if __name__ == "__main__":
    main()
