"""The sweep statistics of one chunk of outputs: the fused kernel against the device-generic
path (whole-chunk torch ops, what the engine ran on CUDA before its kernel), in one run.

    python benchmarks/bench_statistics.py [--device cpu|cuda] [--repeats 7] [--smoke]

Streams `--chunks` chunks of `--chunk` rows (an MLP sweep's outputs by default: F=784, S=21,
K=32) through SweepStatistics.update and prints per-chunk medians, the bandwidth of one read of
the outputs, and as a yardstick one `sum` over the same outputs (a single read at torch's speed).
"""

from __future__ import annotations

import argparse
import platform

import torch

import latentsweep
from _timing import add_smoke_option, median_seconds, print_table
from latentsweep._extension import _C


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--chunk", type=int, default=65536, help="rows per update (default 65536)")
    parser.add_argument("--chunks", type=int, default=4)
    parser.add_argument("--features", type=int, default=784)
    parser.add_argument("--steps", type=int, default=21)
    parser.add_argument("--dims", type=int, default=32)
    add_smoke_option(parser)
    return parser


def main() -> None:
    args = build_parser().parse_args()
    if args.smoke:
        args.repeats, args.chunk, args.chunks, args.features, args.steps, args.dims = 1, 256, 2, 16, 3, 4
    device = torch.device(args.device)
    rows = args.chunk * args.chunks
    traversals = -(-rows // args.steps)
    num_anchors = -(-traversals // args.dims)
    generator = torch.Generator().manual_seed(0)
    values = latentsweep.traversal_values(torch.randn(num_anchors, args.dims, generator=generator), steps=args.steps)
    x0 = torch.rand(num_anchors, args.features, generator=generator).to(device)
    outputs = torch.rand(rows, args.features, generator=generator).to(device)

    def sweep(generic: bool) -> None:
        stats = _C.SweepStatistics(x0, values)
        stats._set_generic_path(generic)
        for start in range(0, rows, args.chunk):
            stats.update(outputs[start : start + args.chunk], start)

    def one_read() -> None:
        for start in range(0, rows, args.chunk):
            outputs[start : start + args.chunk].sum()

    seconds = {name: median_seconds(fn, repeats=args.repeats, device=device)
               for name, fn in (("fused", lambda: sweep(False)), ("generic", lambda: sweep(True)),
                                ("sum", one_read))}
    chunk_bytes = args.chunk * args.features * outputs.element_size()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    print(f"{name}, torch {torch.__version__}, threads {torch.get_num_threads()}; {args.chunks} chunks of "
          f"{args.chunk} rows x {args.features} features, S={args.steps}, K={args.dims}, medians of {args.repeats} runs\n")

    def row(label: str, key: str) -> list[str]:
        per_chunk = seconds[key] / args.chunks
        return [label, f"{per_chunk * 1e3:.3f} ms", f"{chunk_bytes / per_chunk / 1e9:.0f} GB/s",
                f"{seconds['generic'] / seconds[key]:.1f}x", f"{seconds[key] / seconds['sum']:.2f}x"]

    print_table(["statistics of a chunk", "time per chunk", "outputs read at", "vs generic", "vs one sum"],
                [row("fused kernel (`SweepStatistics.update`)", "fused"),
                 row("device-generic path (torch ops)", "generic"),
                 row("yardstick: `outputs.sum()`", "sum")])


if __name__ == "__main__":
    main()
