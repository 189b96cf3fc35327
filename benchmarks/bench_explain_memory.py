"""explain of a conv VAE with many latents ([4, size/8, size/8]) and image outputs, against what
it did before and what a user would write instead: traverse every latent with its outputs (the
recommended mode and the posterior's range beside it), then ``report`` them. Each row in a fresh
process: the peak resident memory above the process's before the call, and the time.

    python benchmarks/bench_explain_memory.py [--size 128] [--inputs 512] [--anchors 4] [--steps 7] [--smoke]

The report draws ``max_dims=12`` latents of each traversal; explain traverses every latent for the
effects and sensitivities without keeping outputs, and the 12 drawn again with their outputs
(``report(pictures=...)``). The weights are random: every latent is active. `--method NAME` runs
one method in this process (the table's rows).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
from _memory import fresh_process_row, peak_kib, reset_peak, resident_kib
from _timing import add_smoke_option
from torch import nn

import latentsweep as ls

METHODS = ("explain", "traverse every latent with its outputs, then report")


class ConvVAE(nn.Module):
    """[3, size, size] -> [4, size/8, size/8] latents (mu, logvar) -> [3, size, size]."""

    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Conv2d(3, 32, 4, 2, 1), nn.SiLU(), nn.Conv2d(32, 64, 4, 2, 1), nn.SiLU(),
                                     nn.Conv2d(64, 64, 4, 2, 1), nn.SiLU(), nn.Conv2d(64, 8, 3, 1, 1))

        def up(inputs: int, outputs: int) -> list[nn.Module]:
            return [nn.Upsample(scale_factor=2), nn.Conv2d(inputs, outputs, 3, padding=1), nn.SiLU()]

        self.decoder = nn.Sequential(nn.Conv2d(4, 64, 3, padding=1), nn.SiLU(), *up(64, 64), *up(64, 32),
                                     *up(32, 16), nn.Conv2d(16, 3, 3, padding=1), nn.Sigmoid())

    def encode(self, x):
        h = self.encoder(x)
        return h[:, :4], h[:, 4:]

    def decode(self, z):
        return self.decoder(z)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=128, help="image height and width, a multiple of 8 (default 128)")
    parser.add_argument("--inputs", type=int, default=512)
    parser.add_argument("--anchors", type=int, default=4)
    parser.add_argument("--steps", type=int, default=7)
    parser.add_argument("--method", choices=METHODS, help="run one method here and print its JSON line")
    add_smoke_option(parser)
    return parser


def run_one(method: str, args, folder: Path) -> dict:
    torch.manual_seed(0)
    vae = ConvVAE().eval()
    data = torch.rand(args.inputs, 3, args.size, args.size)
    reset_peak()
    before = resident_kib()
    began = time.perf_counter()
    if method == "explain":
        ls.explain(vae.encode, vae.decode, data, out=folder, anchors=args.anchors, steps=args.steps, progress=False)
    else:  # what explain did before, in a user's words
        posterior = ls.encode(vae.encode, data, progress=False)
        diagnosis = ls.diagnose(posterior)
        anchors = posterior[:args.anchors]
        options = dict(dims=diagnosis.traversal_options()["dims"], steps=args.steps, progress=False)
        results = {"prior": ls.traverse(vae.decode, anchors, **options),
                   "posterior": ls.traverse(vae.decode, anchors, mode="posterior", **options)}
        ls.report(folder / "report.html", diagnosis=diagnosis, results=results, posterior=posterior,
                  inputs=data[:args.anchors])
    seconds = time.perf_counter() - began
    return {"method": method, "peak_mib": (peak_kib() - before) / 1024, "seconds": seconds}


def main() -> None:
    args = build_parser().parse_args()
    if args.smoke:
        args.size, args.inputs, args.anchors, args.steps = 16, 32, 2, 3  # [4, 2, 2]: 16 latents, 12 drawn
    if args.method:
        with tempfile.TemporaryDirectory() as folder:
            print(json.dumps(run_one(args.method, args, Path(folder))))
        return
    side = args.size // 8
    print(f"conv VAE, [4, {side}, {side}] latents ({4 * side * side:,}, random weights: all active) -> "
          f"[3, {args.size}, {args.size}], {args.inputs} inputs, {args.anchors} anchors x {args.steps} steps, two "
          f"modes, CPU, {torch.get_num_threads()} threads; each row in a fresh process\n")
    print("| method | peak memory above the process's | time |")
    print("| --- | --- | --- |")
    failed, rows = [], {}
    for method in METHODS:
        row, why = fresh_process_row(__file__, ["--method", method, "--size", str(args.size), "--inputs",
                                                str(args.inputs), "--anchors", str(args.anchors), "--steps",
                                                str(args.steps)])
        if row is None:
            print(f"| {method} | failed | |")
            failed.append(f"{method}: {why}")
            continue
        rows[method] = row
        print(f"| {method} | {row['peak_mib']:,.0f} MiB | {row['seconds']:.1f} s |")
    if len(rows) == len(METHODS):
        mine, theirs = (rows[method] for method in METHODS)
        print(f"\nalternative / explain: memory {theirs['peak_mib'] / mine['peak_mib']:.2f}x, "
              f"time {theirs['seconds'] / mine['seconds']:.2f}x")
    if failed:
        sys.exit("\n".join(failed))


if __name__ == "__main__":
    main()
