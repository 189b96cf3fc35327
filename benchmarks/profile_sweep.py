"""Where a sweep's time goes: one `traverse(keep_outputs=False)` under torch.profiler, with the
decoder alone on the same codes for comparison (the floor of bench_sweep.py).

    python benchmarks/profile_sweep.py [--device cuda] [--decoder mlp|deconv] [--rows 30] [--smoke]

Prints, for each of the two, the operators with the most self time (device time on CUDA, CPU
time on the CPU) and the total, so the engine's own work (grid codes, statistics, copies,
synchronisations) shows beside the decoder's; on CUDA also the device's timeline (time with
any kernel or copy running, idle gaps, work running side by side). ``--trace DIR`` writes each
profile as a Chrome trace (chrome://tracing, Perfetto). Profile before optimising: this is the first thing
to run on a GPU machine after scripts/gpu_check.sh.
"""

from __future__ import annotations

import argparse
import time

import torch
from _timing import add_smoke_option
from bench_sweep import LATENT, conv_decoder, decoder_alone_reusing_buffers, mlp_decoder
from torch.profiler import ProfilerActivity, profile

import latentsweep as ls


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--decoder", choices=("mlp", "deconv"), default="mlp")
    parser.add_argument("--rows", type=int, default=30, help="operators listed per table")
    parser.add_argument("--trace", help="a folder for the Chrome traces (decoder-alone.json, traverse.json)")
    add_smoke_option(parser)
    return parser


def main() -> None:
    args = build_parser().parse_args()
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    torch.manual_seed(0)
    decoder = (mlp_decoder() if args.decoder == "mlp" else conv_decoder()).eval().to(device)
    # the grids of bench_sweep.py (larger on a GPU, where small ones measure launches only)
    num_anchors = (6400 if cuda else 640) if args.decoder == "mlp" else (1024 if cuda else 256)
    if args.smoke:  # two anchors, the first rows of each table
        num_anchors, args.rows = 2, 5
    anchors = torch.randn(num_anchors, LATENT, device=device)
    dims = torch.arange(10, device=device)
    values = ls.traversal_values(anchors, steps=21, dims=dims)
    codes = ls.traversal_codes(anchors, dims, values)
    batch = ls.traverse(decoder, anchors, dims=dims, values=values, keep_outputs=False,
                        progress=False).batch_size  # a warm-up, and the default choice for this sweep

    def sweep():
        ls.traverse(decoder, anchors, dims=dims, values=values, batch_size=batch, keep_outputs=False, progress=False)

    def floor():
        decoder_alone_reusing_buffers(decoder, codes, batch)

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    sort = "self_cuda_time_total" if cuda else "self_cpu_time_total"
    print(f"{args.decoder} decoder, {codes.shape[0]:,} points, batch {batch}, on {device}")
    for name, fn in (("decoder alone", floor), ("traverse", sweep)):
        fn()  # warm
        if cuda:
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if cuda:
            torch.cuda.synchronize(device)
        wall = time.perf_counter() - start
        with profile(activities=activities) as prof:
            fn()
            if cuda:
                torch.cuda.synchronize(device)
        print(f"\n## {name}: {wall * 1e3:.1f} ms wall (unprofiled)\n")
        print(prof.key_averages().table(sort_by=sort, row_limit=args.rows, max_name_column_width=60))
        if cuda:
            print(device_timeline(prof))
        if args.trace:
            prof.export_chrome_trace(f"{args.trace}/{name.replace(' ', '-')}.json")


def device_timeline(prof) -> str:
    """The device's busy time (the union of its kernels' and copies' intervals), its idle gaps
    between the first and the last, and how much ran side by side (the sum over the union)."""
    # record_function ranges also show as CUDA events: they are not device work
    intervals = sorted((e.time_range.start, e.time_range.end) for e in prof.events()
                       if e.device_type == torch.autograd.DeviceType.CUDA and e.time_range.end > e.time_range.start
                       and not getattr(e, "is_user_annotation", False))
    if not intervals:
        return "device timeline: no device events"
    busy, gaps, (start, end) = 0.0, [], intervals[0]
    for a, b in intervals[1:]:
        if a > end:
            busy += end - start
            gaps.append(a - end)
            start, end = a, b
        else:
            end = max(end, b)
    busy += end - start
    span = max(b for _, b in intervals) - intervals[0][0]
    total = sum(b - a for a, b in intervals)
    large = sorted(gaps, reverse=True)
    return (f"device timeline: {span / 1e3:.2f} ms from the first kernel to the last, busy {busy / 1e3:.2f} ms, "
            f"idle {(span - busy) / 1e3:.2f} ms in {len(gaps)} gaps (largest, us: "
            f"{', '.join(f'{g:.0f}' for g in large[:8])}), kernels and copies side by side {total / busy:.2f}x")


if __name__ == "__main__":
    main()
