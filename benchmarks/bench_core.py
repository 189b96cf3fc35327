"""Core ops against the torch idioms people write by hand, in one run.

    python benchmarks/bench_core.py [--device cpu|cuda] [--repeats 7] [--smoke]

Prints Markdown tables (medians, ratios, bandwidth) for BENCHMARKS.md:
- latentsweep.sample vs mu + exp(0.5*logvar) * randn   (N=100000, n=16, D=64, float32), and at
  latent sizes that are not a multiple of 32 (D = 4, 10, 40)
- the same with gradients: forward + backward of both (N=25000), since sample's backward
  recomputes eps where the idiom keeps it
- latentsweep.traversal_codes vs expand + clone + index assignment (A=1000, K=64, S=21, D=64),
  both allocating and into a reused buffer, with out.fill_() on the same buffer as the
  bandwidth yardstick.
- latentsweep.direction_codes vs the broadcast expression anchors + (values - <anchors, u>) u
  and its fused form torch.addcmul (same grid size, K random unit directions).
"""

from __future__ import annotations

import argparse
import math
import platform

import torch

import latentsweep
from _timing import add_smoke_option, median_seconds, print_table


def torch_sample(mu: torch.Tensor, logvar: torch.Tensor, n: int) -> torch.Tensor:
    eps = torch.randn(mu.shape[0], n, mu.shape[1], device=mu.device, dtype=mu.dtype)
    return mu.unsqueeze(1) + torch.exp(0.5 * logvar).unsqueeze(1) * eps


def torch_traversal_grid(anchors, dims, values, out=None):
    """The vectorised torch construction: expand + clone + index assignment."""
    num_anchors, latent = anchors.shape
    num_dims, steps = dims.numel(), values.shape[2]
    expanded = anchors[:, None, None, :].expand(num_anchors, num_dims, steps, latent)
    if out is None:
        grid = expanded.clone()
    else:
        grid = out.view(num_anchors, num_dims, steps, latent)
        grid.copy_(expanded)
    # advanced indices (k, d) separated by a slice come first: the target is [K, A, S]
    grid[:, torch.arange(num_dims, device=anchors.device), :, dims] = values.permute(1, 0, 2)
    return grid.view(-1, latent)


def torch_traversal_grid_indexed(anchors, dims, values):
    """The same with one advanced-index assignment over the whole grid (index tensors for a, k
    and s broadcast against each other), the fully vectorised form most people write first."""
    num_anchors, latent = anchors.shape
    num_dims, steps = dims.numel(), values.shape[2]
    grid = anchors[:, None, None, :].repeat(1, num_dims, steps, 1)
    a = torch.arange(num_anchors, device=anchors.device)[:, None, None]
    k = torch.arange(num_dims, device=anchors.device)[None, :, None]
    s = torch.arange(steps, device=anchors.device)[None, None, :]
    grid[a, k, s, dims[k]] = values
    return grid.view(-1, latent)


def torch_direction_grid(anchors, directions, values):
    """The vectorised torch expression of the definition: anchors + (values - <anchors, u>) u."""
    coefficient = values - (anchors @ directions.T)[:, :, None]  # [A, K, S]
    grid = anchors[:, None, None, :] + coefficient[..., None] * directions[None, :, None, :]
    return grid.view(-1, anchors.shape[1])


def torch_direction_grid_addcmul(anchors, directions, values, out):
    """The same fused into one broadcast torch.addcmul writing into a reused buffer."""
    num_anchors, latent = anchors.shape
    coefficient = values - (anchors @ directions.T)[:, :, None]
    grid = out.view(num_anchors, directions.shape[0], values.shape[2], latent)
    torch.addcmul(anchors[:, None, None, :], coefficient[..., None], directions[None, :, None, :], out=grid)
    return out


# the measured sizes, and --smoke's (every row and table on tiny tensors: a check that it runs)
SAMPLE, SMOKE_SAMPLE = (100_000, 16, 64), (200, 4, 8)  # N, n, D
SAMPLE_BACKWARD, SMOKE_SAMPLE_BACKWARD = (25_000, 16, 64), (100, 4, 8)
GRID, SMOKE_GRID = (1000, 64, 21, 64), (4, 4, 3, 8)  # A, K, S, D


def bench_sample(device: torch.device, repeats: int, size: tuple[int, int, int] = SAMPLE) -> list[list[str]]:
    rows_n, samples, latent = size
    gen = torch.Generator().manual_seed(0)
    mu = torch.randn(rows_n, latent, generator=gen).to(device)
    logvar = (torch.randn(rows_n, latent, generator=gen) - 3).to(device)
    elements = rows_n * samples * latent
    t_torch = median_seconds(lambda: torch_sample(mu, logvar, samples), repeats=repeats, device=device)
    t_ls = median_seconds(lambda: latentsweep.sample(mu, logvar, samples, seed=1), repeats=repeats, device=device)
    buffer = torch.empty(rows_n * samples, latent, device=device)
    t_prior = median_seconds(
        lambda: torch.ops.latentsweep.sample_prior_(buffer, 1, 0), repeats=repeats, device=device
    )
    t_randn = median_seconds(lambda: torch.randn(rows_n, samples, latent, device=device), repeats=repeats, device=device)
    t_fill = median_seconds(lambda: buffer.fill_(1.0), repeats=repeats, device=device)
    gbs = lambda t: f"{elements * 4 / t / 1e9:.1f} GB/s"  # noqa: E731
    return [
        ["torch idiom `mu + exp(0.5*lv)*randn`", f"{t_torch * 1e3:.0f} ms", gbs(t_torch), "1.0x"],
        ["`torch.randn` alone", f"{t_randn * 1e3:.0f} ms", gbs(t_randn), f"{t_torch / t_randn:.1f}x"],
        ["**`latentsweep.sample`**", f"**{t_ls * 1e3:.0f} ms**", gbs(t_ls), f"**{t_torch / t_ls:.1f}x**"],
        ["`sample_prior_` into a reused buffer (no allocation)", f"{t_prior * 1e3:.0f} ms", gbs(t_prior), f"{t_torch / t_prior:.1f}x"],
        ["`out.fill_(1.0)` (bandwidth yardstick)", f"{t_fill * 1e3:.0f} ms", gbs(t_fill), "-"],
    ]


# sample at latent sizes that are not a multiple of 32 (the kernel's groups): the demo models'
# D = 4 and 10, and D = 40 (one group and a tail); about 25.6 M values each.
SMALL_LATENTS, SMOKE_SMALL_LATENTS = (4, 10, 40), (4,)
SMALL_LATENT_VALUES, SMOKE_SMALL_LATENT_VALUES = 25_600_000, 6_400


def bench_sample_small_latents(device: torch.device, repeats: int, latents=SMALL_LATENTS,
                               values: int = SMALL_LATENT_VALUES) -> list[list[str]]:
    rows = []
    for latent in latents:
        samples = 16
        rows_n = max(1, values // (samples * latent))
        gen = torch.Generator().manual_seed(0)
        mu = torch.randn(rows_n, latent, generator=gen).to(device)
        logvar = (torch.randn(rows_n, latent, generator=gen) - 3).to(device)
        t_torch = median_seconds(lambda: torch_sample(mu, logvar, samples), repeats=repeats, device=device)
        t_ls = median_seconds(lambda: latentsweep.sample(mu, logvar, samples, seed=1), repeats=repeats, device=device)
        per_value = lambda t: f"{t / (rows_n * samples * latent) * 1e9:.2f} ns"  # noqa: E731
        rows.append([f"D={latent} (N={rows_n}, n={samples})", f"{t_torch * 1e3:.0f} ms ({per_value(t_torch)})",
                     f"{t_ls * 1e3:.0f} ms ({per_value(t_ls)})", f"{t_torch / t_ls:.2f}x"])
    return rows


def bench_sample_backward(device: torch.device, repeats: int,
                          size: tuple[int, int, int] = SAMPLE_BACKWARD) -> list[list[str]]:
    rows_n, samples, latent = size
    gen = torch.Generator().manual_seed(0)
    mu = torch.randn(rows_n, latent, generator=gen).to(device).requires_grad_()
    logvar = (torch.randn(rows_n, latent, generator=gen) - 3).to(device).requires_grad_()
    weights = torch.randn(rows_n, samples, latent, generator=gen).to(device)

    def step(draw):
        mu.grad = logvar.grad = None
        (draw() * weights).sum().backward()

    t_torch = median_seconds(lambda: step(lambda: torch_sample(mu, logvar, samples)), repeats=repeats, device=device)
    t_ls = median_seconds(lambda: step(lambda: latentsweep.sample(mu, logvar, samples, seed=1)), repeats=repeats, device=device)
    return [
        ["torch idiom, forward + backward", f"{t_torch * 1e3:.0f} ms", "1.0x"],
        ["**`latentsweep.sample`, forward + backward**", f"**{t_ls * 1e3:.0f} ms**", f"**{t_torch / t_ls:.1f}x**"],
    ]


def bench_traversal(device: torch.device, repeats: int,
                    size: tuple[int, int, int, int] = GRID) -> list[list[str]]:
    num_anchors, num_dims, steps, latent = size
    gen = torch.Generator().manual_seed(0)
    anchors = torch.randn(num_anchors, latent, generator=gen).to(device)
    dims = torch.arange(num_dims, device=device)
    values = torch.randn(num_anchors, num_dims, steps, generator=gen).to(device)
    rows = num_anchors * num_dims * steps
    reference = torch_traversal_grid(anchors, dims, values)
    assert torch.equal(latentsweep.traversal_codes(anchors, dims, values), reference)
    assert torch.equal(torch_traversal_grid_indexed(anchors, dims, values), reference)
    out = torch.empty(rows, latent, device=device)
    t_torch = median_seconds(lambda: torch_traversal_grid(anchors, dims, values), repeats=repeats, device=device)
    t_indexed = median_seconds(lambda: torch_traversal_grid_indexed(anchors, dims, values), repeats=repeats, device=device)
    t_torch_out = median_seconds(lambda: torch_traversal_grid(anchors, dims, values, out), repeats=repeats, device=device)
    t_ls = median_seconds(lambda: latentsweep.traversal_codes(anchors, dims, values), repeats=repeats, device=device)
    t_ls_out = median_seconds(lambda: latentsweep.traversal_codes(anchors, dims, values, out=out), repeats=repeats, device=device)
    t_fill = median_seconds(lambda: out.fill_(1.0), repeats=repeats, device=device)
    gbs = lambda t: f"{rows * latent * 4 / t / 1e9:.1f} GB/s"  # noqa: E731
    return [
        ["torch repeat + one 4-index assignment", f"{t_indexed * 1e3:.1f} ms", gbs(t_indexed), f"{t_torch / t_indexed:.2f}x", f"{t_fill / t_indexed:.0%}"],
        ["torch expand + clone + index assignment", f"{t_torch * 1e3:.1f} ms", gbs(t_torch), "1.0x", f"{t_fill / t_torch:.0%}"],
        ["torch, into a reused buffer", f"{t_torch_out * 1e3:.1f} ms", gbs(t_torch_out), f"{t_torch / t_torch_out:.1f}x", f"{t_fill / t_torch_out:.0%}"],
        ["**`latentsweep.traversal_codes`**", f"**{t_ls * 1e3:.1f} ms**", gbs(t_ls), f"**{t_torch / t_ls:.1f}x** ({t_indexed / t_ls:.1f}x vs 4-index)", f"{t_fill / t_ls:.0%}"],
        ["`traversal_codes(..., out=buffer)`", f"{t_ls_out * 1e3:.1f} ms", gbs(t_ls_out), f"{t_torch / t_ls_out:.1f}x ({t_indexed / t_ls_out:.1f}x vs 4-index)", f"**{t_fill / t_ls_out:.0%}**"],
        ["`out.fill_(1.0)` on the same buffer (the limit)", f"{t_fill * 1e3:.1f} ms", gbs(t_fill), f"{t_torch / t_fill:.1f}x", "100%"],
    ]


def bench_directions(device: torch.device, repeats: int,
                     size: tuple[int, int, int, int] = GRID) -> list[list[str]]:
    num_anchors, num_dims, steps, latent = size
    gen = torch.Generator().manual_seed(0)
    anchors = torch.randn(num_anchors, latent, generator=gen).to(device)
    directions = latentsweep.unit_directions(torch.randn(num_dims, latent, generator=gen)).to(device)
    values = torch.randn(num_anchors, num_dims, steps, generator=gen).to(device)
    rows = num_anchors * num_dims * steps
    out = torch.empty(rows, latent, device=device)
    expected = torch_direction_grid(anchors.double(), directions.double(), values.double())
    for got in (latentsweep.direction_codes(anchors, directions, values),
                torch_direction_grid(anchors, directions, values),
                torch_direction_grid_addcmul(anchors, directions, values, out)):
        assert torch.allclose(got.double(), expected, atol=1e-5)
    t_torch = median_seconds(lambda: torch_direction_grid(anchors, directions, values), repeats=repeats, device=device)
    t_addcmul = median_seconds(lambda: torch_direction_grid_addcmul(anchors, directions, values, out), repeats=repeats, device=device)
    t_ls = median_seconds(lambda: latentsweep.direction_codes(anchors, directions, values), repeats=repeats, device=device)
    t_ls_out = median_seconds(lambda: latentsweep.direction_codes(anchors, directions, values, out=out), repeats=repeats, device=device)
    t_fill = median_seconds(lambda: out.fill_(1.0), repeats=repeats, device=device)
    gbs = lambda t: f"{rows * latent * 4 / t / 1e9:.1f} GB/s"  # noqa: E731
    return [
        ["torch `anchors + (values - <anchors, u>) u`", f"{t_torch * 1e3:.1f} ms", gbs(t_torch), "1.0x", f"{t_fill / t_torch:.0%}"],
        ["torch `addcmul(..., out=buffer)` (fused, reused buffer)", f"{t_addcmul * 1e3:.1f} ms", gbs(t_addcmul), f"{t_torch / t_addcmul:.1f}x", f"{t_fill / t_addcmul:.0%}"],
        ["**`latentsweep.direction_codes`**", f"**{t_ls * 1e3:.1f} ms**", gbs(t_ls), f"**{t_torch / t_ls:.1f}x**", f"{t_fill / t_ls:.0%}"],
        ["`direction_codes(..., out=buffer)`", f"{t_ls_out * 1e3:.1f} ms", gbs(t_ls_out), f"{t_torch / t_ls_out:.1f}x ({t_addcmul / t_ls_out:.1f}x vs addcmul)", f"**{t_fill / t_ls_out:.0%}**"],
        ["`out.fill_(1.0)` on the same buffer (the limit)", f"{t_fill * 1e3:.1f} ms", gbs(t_fill), f"{t_torch / t_fill:.1f}x", "100%"],
    ]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=7)
    add_smoke_option(parser)
    return parser


def main() -> None:
    args = build_parser().parse_args()
    if args.smoke:
        args.repeats = 1
    device = torch.device(args.device)
    sample = SMOKE_SAMPLE if args.smoke else SAMPLE
    backward = SMOKE_SAMPLE_BACKWARD if args.smoke else SAMPLE_BACKWARD
    grid = SMOKE_GRID if args.smoke else GRID
    rows = grid[0] * grid[1] * grid[2]
    info = latentsweep.build_info()
    print(f"device: {device}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"CPU {platform.processor() or platform.machine()}, CPU kernels: {info['cpu_capability']}")
    print(f"\nsample: N={sample[0]}, n={sample[1]}, D={sample[2]}, float32 "
          f"({math.prod(sample) / 1e6:.1f} M values, {math.prod(sample) * 4 / 1e6:.0f} MB)\n")
    print_table(["method", "median", "output bandwidth", "speed-up vs torch idiom"],
                bench_sample(device, args.repeats, sample))
    print("\nsample at latent sizes that are not a multiple of 32, float32 (value = one output number)\n")
    print_table(["latents", "torch idiom (per value)", "`latentsweep.sample` (per value)", "speed-up"],
                bench_sample_small_latents(device, args.repeats, *((SMOKE_SMALL_LATENTS, SMOKE_SMALL_LATENT_VALUES)
                                                                   if args.smoke else ())))
    print(f"\nsample with gradients: N={backward[0]}, n={backward[1]}, D={backward[2]}, float32, loss (z * w).sum()\n")
    print_table(["method", "median", "speed-up vs torch idiom"], bench_sample_backward(device, args.repeats, backward))
    size = (f"A={grid[0]}, K={grid[1]}, S={grid[2]}, D={grid[3]}, float32", f"{rows / 1e6:.2f} M rows, "
            f"{rows * grid[3] * 4 / 1e6:.0f} MB")
    print(f"\ntraversal_codes: {size[0]} ({size[1]})\n")
    print_table(
        ["method", "median", "bandwidth", "speed-up vs torch", "share of fill_ bandwidth"],
        bench_traversal(device, args.repeats, grid),
    )
    print(f"\ndirection_codes: {size[0]}, random unit directions ({size[1]})\n")
    print_table(
        ["method", "median", "bandwidth", "speed-up vs torch", "share of fill_ bandwidth"],
        bench_directions(device, args.repeats, grid),
    )


if __name__ == "__main__":
    main()
