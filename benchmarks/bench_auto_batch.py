"""What `batch_size="auto"` costs on the CPU: `traverse` with its defaults against the same sweep
at a fixed batch size, alternating in one process, with the batch trials' time and choice of each
round; and how much a sweep's time depends on the sweep run just before it.

    python benchmarks/bench_auto_batch.py [--decoder mlp|deconv] [--rounds 4] [--fixed 64] [--smoke]

The trials decode whole work units of each size tried; a sweep kept in memory (as here) keeps
them as its first units, so their cost is only a slower size's extra time. The first round is
the process's first sweep (one-off costs the trials may see); later rounds are what a program
sweeping repeatedly gets. The second table times a sweep at the fixed size right after one at
8192 and right after one at the fixed size (bench_sweep.py rotates its methods' order for this).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from _timing import add_smoke_option
from bench_sweep import LATENT, conv_decoder, mlp_decoder

import latentsweep as ls
from latentsweep import _batching
from latentsweep import sweep as sweep_module


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--decoder", choices=("mlp", "deconv"), default="deconv")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--fixed", type=int, default=None, help="the fixed batch size (default: 1024 mlp, 64 deconv)")
    add_smoke_option(parser)
    return parser


def main() -> None:
    args = build_parser().parse_args()
    torch.manual_seed(0)
    mlp = args.decoder == "mlp"
    decoder = (mlp_decoder() if mlp else conv_decoder()).eval()
    # --smoke: a tiny grid, one round (the choice runs, though too few rows to time any size)
    num_anchors, num_dims, steps = (2, 4, 3) if args.smoke else (200, 32, 21) if mlp else (256, 10, 21)
    if args.smoke:
        args.rounds = 1
    anchors = torch.randn(num_anchors, LATENT)
    dims = torch.arange(num_dims)
    values = ls.traversal_values(anchors, steps=steps, dims=dims)
    fixed = args.fixed or (1024 if mlp else 64)

    trial_seconds, trials = [0.0], []
    choose, chooser = sweep_module._choose_batch_size, _batching.choose_cpu_batch_size

    def timed_choice(*a, **k):  # the time of the whole choice: its trials
        began = time.perf_counter()
        result = choose(*a, **k)
        trial_seconds[0] = time.perf_counter() - began
        return result

    def recorded(*a, **k):
        choice = chooser(*a, **k)
        trials.append([(t.batch_size, round(t.rows / t.seconds)) for t in choice.trials])
        return choice

    sweep_module._choose_batch_size, _batching.choose_cpu_batch_size = timed_choice, recorded

    def traverse(batch_size) -> tuple[float, int]:
        trial_seconds[0] = 0.0
        trials.clear()
        began = time.perf_counter()
        result = ls.traverse(decoder, anchors, dims=dims, values=values, batch_size=batch_size,
                             keep_outputs=False, progress=False)
        return time.perf_counter() - began, result.batch_size

    print(f"{args.decoder} decoder, {values.numel():,} points, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads\n")
    print(f"| round | defaults | chose | trials (kept) | sizes timed (points/s) | fixed {fixed} |")
    print("| --- | --- | --- | --- | --- | --- |")
    for round_ in range(1, args.rounds + 1):
        auto, chosen = traverse("auto")
        spent, timed = trial_seconds[0], list(trials[0]) if trials else []
        alone, _ = traverse(fixed)
        print(f"| {round_} | {auto:.3f} s | {chosen} | {spent * 1e3:.0f} ms | {timed or 'none'} | {alone:.3f} s |")

    after = {"after 8192": [], f"after {fixed}": []}
    for _ in range(args.rounds * 2):
        for name, before in (("after 8192", 8192), (f"after {fixed}", fixed)):
            traverse(before)
            after[name].append(traverse(fixed)[0])
    print(f"\n| sweep at {fixed} | best | median |\n| --- | --- | --- |")
    for name, times in after.items():
        print(f"| {name} | {min(times):.3f} s | {statistics.median(times):.3f} s |")


if __name__ == "__main__":
    main()
