"""The sweep engine against the decoder alone and the ways people traverse latents by hand,
in one plain process (no environment tuning: this is what a user gets).

    python benchmarks/bench_sweep.py [--quick] [--repeats N] [--skip-rss] [--device cuda] [--decoders mlp]
                                     [--dtype float64] [--smoke]

For an MLP decoder (32 -> 256 -> 784, sigmoid) and a small transposed-conv decoder producing
64x64 images, measures, interleaved round by round (best of N; this machine is shared):
  - the decoder alone on pre-built codes, at each fixed batch size: as a plain loop, and with
    latentsweep's buffer reuse (the decoder's own cost: the floor the 5% target is held to);
  - `traverse(..., keep_outputs=False)` at each fixed batch size, and with its defaults
    (batch_size="auto": sizes timed on the first chunks);
  - plain torch "build the whole grid, decode it in one call" (+ the effect statistic);
  - a per-dimension Python loop, and a per-point loop (timed on a prefix: it is slow);
then the peak RSS of 1-million- and 10-million-point statistics-only sweeps with default
settings, each in its own process. Prints Markdown tables for BENCHMARKS.md.

With --device cuda: larger grids and batch sizes, `traverse(cuda_graph=True)` beside the
defaults, every timing ends with a device synchronisation, no buffer-reuse or RSS rows (CPU only).
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
from _timing import add_smoke_option, print_table
from latentsweep._extension import _C

LATENT = 32
MLP_BATCHES = (256, 1024, 4096, 8192)
CONV_BATCHES = (64, 256, 1024, 4096)
GPU_MLP_BATCHES = (4096, 16384, 65536)
GPU_CONV_BATCHES = (1024, 4096, 16384)
# --smoke: every row and table on tiny grids (A, K, S), two batch sizes, a short per-point loop
SMOKE_MLP_GRID, SMOKE_CONV_GRID, SMOKE_BATCHES, SMOKE_POINT_LIMIT = (2, 4, 3), (1, 2, 3), (4, 16), 5
# the RSS runs' (anchors, steps): 1 and 10 million points; --smoke's take a second each
RSS_RUNS, SMOKE_RSS_RUNS = ((1000, 31), (10_000, 31)), ((2, 3), (4, 3))


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


def decoder_alone(decoder, codes: torch.Tensor, batch: int) -> None:
    with torch.inference_mode():
        for start in range(0, len(codes), batch):
            decoder(codes[start : start + batch])
    if codes.is_cuda:
        torch.cuda.synchronize(codes.device)


def decoder_alone_reusing_buffers(decoder, codes: torch.Tensor, batch: int) -> None:
    with _C.reuse_cpu_buffers():
        decoder_alone(decoder, codes, batch)


def one_call(decoder, anchors: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Plain torch: the whole grid [A, K, S, D] built at once, one decoder call, the effect."""
    num_anchors, latent = anchors.shape
    dims = torch.arange(values.shape[1])
    with torch.inference_mode():
        grid = anchors[:, None, None, :].expand(num_anchors, len(dims), values.shape[2], latent).clone()
        grid[:, dims, :, dims] = values.permute(1, 0, 2)
        outputs = decoder(grid.view(-1, latent)).flatten(1).view(num_anchors, len(dims), values.shape[2], -1)
        return (outputs - decoder(anchors).flatten(1)[:, None, None]).abs().mean(-1)


def per_dimension_loop(decoder, anchors: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """What existing tools do: for each latent, build its grid (anchors x steps) and decode it."""
    num_anchors, steps = anchors.shape[0], values.shape[2]
    with torch.inference_mode():
        x0 = decoder(anchors).flatten(1)
        effects = []
        for k in range(values.shape[1]):
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
            for k in range(values.shape[1]):
                for s in range(values.shape[2]):
                    z = anchors[a].clone()
                    z[k] = values[a, k, s]
                    (decoder(z[None]).flatten(1) - x0[a]).abs().mean()
                    done += 1
                    if done == limit:
                        return done
    return done


def interleaved_best(methods: dict, repeats: int) -> dict[str, float]:
    """Best wall time of each method over `repeats` rounds; every round runs all methods once,
    so drifts in the machine's load fall on all of them alike, and on a shared machine other
    processes only ever add time. Each round starts one method later, so no method always runs
    after the same one: a sweep right after one at batch 8192 is slower than right after one at
    its own size (bench_auto_batch.py: 1-4% at the median), and "defaults" used to follow
    "traverse 8192" in every round. One untimed warm-up round first."""
    times: dict[str, list[float]] = {name: [] for name in methods}
    names = list(methods)
    for round_ in range(repeats + 1):
        for name in names[round_ % len(names):] + names[: round_ % len(names)]:
            fn = methods[name]
            start = time.perf_counter()
            fn()
            if round_ > 0:
                times[name].append(time.perf_counter() - start)
    return {name: min(t) for name, t in times.items()}


def synchronized(fn, device: torch.device):
    """fn, then wait for the device: a CUDA timing ends when the GPU's work does."""
    def run():
        result = fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return result
    return run


def bench_decoder(name: str, decoder: nn.Module, num_anchors: int, num_dims: int, steps: int, repeats: int,
                  batch_sizes: tuple[int, ...], point_limit: int,
                  device: torch.device = torch.device("cpu"),
                  dtype: torch.dtype = torch.float32) -> tuple[list[list[str]], list[list[str]], dict]:
    torch.manual_seed(0)
    decoder.eval().to(device=device, dtype=dtype)
    anchors = torch.randn(num_anchors, LATENT, device=device, dtype=dtype)
    cuda = device.type == "cuda"
    dims = torch.arange(num_dims, device=device)
    values = ls.traversal_values(anchors, steps=steps, dims=dims)
    points = values.numel()
    codes = ls.traversal_codes(anchors, dims, values)
    chosen = []

    def traverse(batch_size, **kwargs):
        result = ls.traverse(decoder, anchors, dims=dims, values=values, batch_size=batch_size,
                             keep_outputs=False, progress=False, **kwargs)
        if batch_size == "auto":
            chosen.append(result.batch_size)
        return result

    methods = {}
    for b in batch_sizes:
        methods[f"alone {b}"] = lambda b=b: decoder_alone(decoder, codes, b)
        # CPU only: the GPU's caching allocator already reuses buffers
        methods[f"reused {b}"] = methods[f"alone {b}"] if cuda else lambda b=b: decoder_alone_reusing_buffers(decoder, codes, b)
        methods[f"traverse {b}"] = lambda b=b: traverse(b)
    methods["traverse auto"] = lambda: traverse("auto")
    if cuda:
        methods["traverse graph"] = lambda: traverse("auto", cuda_graph=True)
    methods["one call"] = lambda: one_call(decoder, anchors, values)
    methods["per dim"] = lambda: per_dimension_loop(decoder, anchors, values)
    t = interleaved_best({key: synchronized(fn, device) for key, fn in methods.items()}, repeats)

    # the plain-torch one-call computes the same effect
    torch.testing.assert_close(one_call(decoder, anchors, values).cpu(), traverse(256).effect.cpu(), rtol=1e-4, atol=1e-5)
    limit = min(points, point_limit)
    start = time.perf_counter()
    synchronized(lambda: per_point_loop(decoder, anchors, values, limit), device)()
    t_point = (time.perf_counter() - start) * points / limit  # extrapolated to the whole grid

    rate = lambda seconds: f"{points / seconds:,.0f}"  # noqa: E731
    pct = lambda a, b: f"{(a / b - 1) * 100:+.1f}%"  # noqa: E731
    by_size = []
    for b in batch_sizes:
        by_size.append([name, str(b), f"{t[f'alone {b}']:.3f} s", f"{t[f'reused {b}']:.3f} s",
                        f"{t[f'traverse {b}']:.3f} s", pct(t[f"traverse {b}"], t[f"reused {b}"]),
                        pct(t[f"traverse {b}"], t[f"alone {b}"])])
    best_floor = min(batch_sizes, key=lambda b: t[f"reused {b}"])
    best_plain = min(batch_sizes, key=lambda b: t[f"alone {b}"])
    best_fixed = min(batch_sizes, key=lambda b: t[f"traverse {b}"])
    auto = t["traverse auto"]
    picks = ", ".join(str(c) for c in sorted(set(chosen)))
    summary = [
        [name, f"decoder alone, buffers reused, best size ({best_floor}) = **floor**",
         f"{t[f'reused {best_floor}']:.3f} s", rate(t[f"reused {best_floor}"]), "-"],
        [name, f"decoder alone, plain loop, best size ({best_plain})", f"{t[f'alone {best_plain}']:.3f} s",
         rate(t[f"alone {best_plain}"]), f"{pct(t[f'alone {best_plain}'], t[f'reused {best_floor}'])} vs floor"],
        [name, f"**`traverse(keep_outputs=False)`, defaults** (auto chose {picks})", f"**{auto:.3f} s**",
         rate(auto), f"**{pct(auto, t[f'reused {best_floor}'])} vs floor**"],
        [name, f"`traverse`, best fixed batch ({best_fixed})", f"{t[f'traverse {best_fixed}']:.3f} s",
         rate(t[f"traverse {best_fixed}"]), f"defaults {t[f'traverse {best_fixed}'] / auto:.2f}x its speed"],
    ]
    if cuda:
        summary.append([name, "`traverse(cuda_graph=True)`, batch auto", f"{t['traverse graph']:.3f} s",
                        rate(t["traverse graph"]), f"{pct(t['traverse graph'], t[f'reused {best_floor}'])} vs floor"])
    summary.append([name, "plain torch: whole grid, one decoder call", f"{t['one call']:.3f} s",
                    rate(t["one call"]), f"defaults {t['one call'] / auto:.2f}x its speed"])
    summary += [
        [name, "per-dimension Python loop", f"{t['per dim']:.3f} s", rate(t["per dim"]),
         f"defaults {t['per dim'] / auto:.2f}x its speed"],
        [name, f"per-point loop (timed on {limit} points)", f"{t_point:.1f} s", rate(t_point),
         f"defaults {t_point / auto:.0f}x its speed"],
    ]
    return by_size, summary, {"points": points}


RSS_SCRIPT = """
import json, time, torch, latentsweep as ls
from torch import nn
torch.manual_seed(0)
decoder = nn.Sequential(nn.Linear(32, 256), nn.ReLU(), nn.Linear(256, 784), nn.Sigmoid()).eval()
anchors = torch.randn({anchors}, 32)
start = time.perf_counter()
result = ls.traverse(decoder, anchors, steps={steps}, keep_outputs=False, progress=False)
# VmHWM, this process's own peak: getrusage's ru_maxrss survives exec, so a child of this
# benchmark would report the parent's peak (the one-call decode of the whole grid: gigabytes).
peak_kib = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({{"points": result.num_points, "seconds": time.perf_counter() - start,
                  "batch": result.batch_size, "peak_rss_mib": peak_kib / 1024}}))
"""


def bench_rss(anchors: int, steps: int) -> dict:
    script = RSS_SCRIPT.format(anchors=anchors, steps=steps)
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return json.loads(completed.stdout.strip().splitlines()[-1])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller grids, one repeat")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds (best of; default 3)")
    parser.add_argument("--skip-rss", action="store_true", help="skip the 1M/10M-point memory runs")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--decoders", default="mlp,deconv", help="which decoders: mlp, deconv or both (default)")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                        help="the decoders' and anchors' precision (default float32)")
    add_smoke_option(parser)
    return parser


def main() -> None:
    parser = build_parser()
    args = parser.parse_args()
    dtype = getattr(torch, args.dtype)
    tag = "" if dtype == torch.float32 else f" {args.dtype}"
    repeats = 1 if args.quick or args.smoke else args.repeats
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    where = torch.cuda.get_device_name(device) if cuda else "CPU"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {where}, no environment tuning; "
          f"load average before: {os.getloadavg()[0]:.1f}")
    # The sizes on the CPU: an MLP sweep of 134k points, a conv sweep of 256 anchors x 10 x 21;
    # ten and four times as many anchors on a GPU.
    scale = (10, 4) if cuda else (1, 1)
    mlp_grid = (16, 32, 21) if args.quick else (200 * scale[0], 32, 21)
    conv_grid = (4, 10, 21) if args.quick else (256 * scale[1], 10, 21)
    mlp_batches = GPU_MLP_BATCHES if cuda else MLP_BATCHES
    conv_batches = GPU_CONV_BATCHES if cuda else CONV_BATCHES
    mlp_limit, conv_limit = (300, 100) if cuda else (2000, 200)
    if args.smoke:
        mlp_grid, conv_grid, mlp_batches, conv_batches = SMOKE_MLP_GRID, SMOKE_CONV_GRID, SMOKE_BATCHES, SMOKE_BATCHES
        mlp_limit = conv_limit = SMOKE_POINT_LIMIT
    chosen = {name.strip() for name in args.decoders.split(",")}
    if not chosen <= {"mlp", "deconv"} or not chosen:
        parser.error(f"--decoders must name mlp and/or deconv, got {args.decoders!r}")
    by_size, summary, conv_by_size, conv_summary = [], [], [], []
    if "mlp" in chosen:
        by_size, summary, _ = bench_decoder(f"MLP 32-256-784{tag}", mlp_decoder(), *mlp_grid, repeats, mlp_batches,
                                            mlp_limit, device, dtype)
    if "deconv" in chosen:
        conv_by_size, conv_summary, _ = bench_decoder(f"deconv 64x64{tag}", conv_decoder(), *conv_grid, repeats,
                                                      conv_batches, conv_limit, device, dtype)
    print(f"\nGrids A anchors x K dims x S steps: MLP {' x '.join(map(str, mlp_grid))} = "
          f"{mlp_grid[0] * mlp_grid[1] * mlp_grid[2]:,} points; deconv {' x '.join(map(str, conv_grid))} = "
          f"{conv_grid[0] * conv_grid[1] * conv_grid[2]:,} points. Best of {repeats} interleaved rounds.\n")
    print_table(["decoder", "method", "best time", "points/s", "comparison"], summary + conv_summary)
    print("\nBy batch size: the decoder alone (plain loop; with latentsweep's buffer reuse) and `traverse`\n")
    print_table(["decoder", "batch", "alone, plain loop", "alone, buffers reused", "traverse",
                 "traverse vs reused", "traverse vs plain"], by_size + conv_by_size)
    print(f"\nload average after: {os.getloadavg()[0]:.1f}")
    if not args.skip_rss and not cuda:
        (small_anchors, small_steps), (large_anchors, large_steps) = SMOKE_RSS_RUNS if args.smoke else RSS_RUNS
        small = bench_rss(anchors=small_anchors, steps=small_steps)
        large = bench_rss(anchors=large_anchors, steps=large_steps)
        print("\nPeak RSS of statistics-only sweeps (MLP 32-256-784, `keep_outputs=False`, default settings), "
              "each in its own process\n")
        print_table(
            ["points", "wall time", "points/s", "batch (auto)", "peak RSS", "outputs would take"],
            [
                [f"{r['points']:,}", f"{r['seconds']:.1f} s", f"{r['points'] / r['seconds']:,.0f}", str(r["batch"]),
                 f"{r['peak_rss_mib']:.0f} MiB", f"{r['points'] * 784 * 4 / 2**30:.1f} GiB"]
                for r in (small, large)
            ],
        )


if __name__ == "__main__":
    main()
