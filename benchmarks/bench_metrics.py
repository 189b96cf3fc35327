"""Disentanglement metrics at disentanglement_lib's study sizes, against the obvious alternatives.

    python benchmarks/bench_metrics.py [--device cpu|cuda] [--repeats 3] [--skip-slow] [--smoke]

Array-level metrics on N = 10,000 train / 5,000 test points, D = 10 latents (5 noisy copies of
the factors + 5 noise), F = 5 factors of 10 values; each timed as a user calls it (median of
--repeats). Alternatives in the same run:
- histogram MI through ``sklearn.metrics.mutual_info_score`` per (latent, factor) pair, as
  disentanglement_lib and its ports compute it (MIG, and the D x D pairs of the unsupervised MI);
  the scores are checked equal;
- IRS as the reference computes it (numpy, np.percentile per factor value);
- DCI's faster random-forest estimator against the reference's gradient boosting;
- FactorVAE/BetaVAE on Shapes with the shipped beta-VAE: latentsweep (64 votes per encoder call)
  against the reference's loop (one encoder call per vote), on 500 votes each.
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import sklearn
import sklearn.metrics
import torch

import latentsweep as ls
from _timing import add_smoke_option, median_seconds, print_table

N, N_TEST, D, F = 10_000, 5_000, 10, 5
# the sampling metrics: votes of the FactorVAE comparison, and the study defaults
VOTES = 500
FACTOR_VAE_SIZES = dict(num_train=10_000, num_eval=5_000, num_variance_estimate=10_000)
BETA_VAE_SIZES = dict(num_train=10_000, num_eval=5_000)
# --smoke: every table and row on tiny sizes (DCI's gradient boosting skipped, as --skip-slow)
SMOKE_N, SMOKE_N_TEST, SMOKE_VOTES = 500, 250, 4
SMOKE_FACTOR_VAE_SIZES = dict(num_train=8, num_eval=4, num_variance_estimate=64)
SMOKE_BETA_VAE_SIZES = dict(num_train=8, num_eval=4)


def data(seed: int = 0):
    rng = np.random.default_rng(seed)
    factors = rng.integers(0, 10, (N + N_TEST, F))
    codes = np.concatenate([factors + 0.8 * rng.standard_normal((N + N_TEST, F)),
                            rng.standard_normal((N + N_TEST, D - F))], axis=1)
    return codes[:N], factors[:N], codes[N:], factors[N:]


def sklearn_mig(codes: np.ndarray, factors: np.ndarray, bins: int = 20) -> float:
    """disentanglement_lib's _compute_mig, as peers port it (sklearn MI per pair)."""
    discretized = np.stack([np.digitize(c, np.histogram(c, bins)[1][:-1]) for c in codes.T])
    m = np.array([[sklearn.metrics.mutual_info_score(y, d) for y in factors.T] for d in discretized])
    h = np.array([sklearn.metrics.mutual_info_score(y, y) for y in factors.T])
    top = np.sort(m, axis=0)[::-1]
    return float(np.mean((top[0] - top[1]) / h))


def sklearn_pairwise_mi(codes: np.ndarray, bins: int = 20) -> float:
    discretized = np.stack([np.digitize(c, np.histogram(c, bins)[1][:-1]) for c in codes.T])
    m = np.array([[sklearn.metrics.mutual_info_score(a, b) for b in discretized] for a in discretized])
    np.fill_diagonal(m, 0)
    return float(m.sum() / (D * D - D))


def numpy_irs(codes: np.ndarray, factors: np.ndarray, q: float = 0.99) -> float:
    """The reference's scalable_disentanglement_score (factors already 0..9, i.e. discretised)."""
    max_dev = np.max(np.abs(codes - codes.mean(axis=0)), axis=0)
    dev = np.zeros((codes.shape[1], factors.shape[1]))
    for i in range(factors.shape[1]):
        values = np.unique(factors[:, i])
        for v in values:
            group = codes[factors[:, i] == v]
            dev[:, i] += np.percentile(np.abs(group - group.mean(axis=0)), q * 100, axis=0)
        dev[:, i] /= len(values)
    per_latent = (1.0 - dev / max_dev[:, None]).max(axis=1)
    return float(np.average(per_latent, weights=max_dev))


def per_vote_factor_vae(encoder, shapes, votes: int, seed: int = 0) -> None:
    """The reference's structure: one encoder call of 64 observations per vote."""
    g = torch.Generator().manual_seed(seed)
    with torch.inference_mode():
        for _ in range(votes):
            k = int(torch.randint(5, (1,), generator=g))
            f = shapes.sample_factors(64, g)
            f[:, k] = f[0, k]
            encoder(shapes.observations(f))[0].var(dim=0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-slow", action="store_true", help="skip DCI's gradient boosting (minutes)")
    add_smoke_option(parser)
    return parser


def main() -> None:
    global N, N_TEST
    args = build_parser().parse_args()
    votes, factor_vae_sizes, beta_vae_sizes = VOTES, FACTOR_VAE_SIZES, BETA_VAE_SIZES
    if args.smoke:
        N, N_TEST, args.repeats, args.skip_slow = SMOKE_N, SMOKE_N_TEST, 1, True
        votes, factor_vae_sizes, beta_vae_sizes = SMOKE_VOTES, SMOKE_FACTOR_VAE_SIZES, SMOKE_BETA_VAE_SIZES
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, scikit-learn {sklearn.__version__}, {torch.get_num_threads()} threads, "
          f"{platform.processor() or platform.machine()}, device {device}")
    x, y, xt, yt = data()
    tx, ty = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
    rows = []

    def timed(name, fn, repeats=args.repeats):
        seconds = median_seconds(fn, repeats=repeats, device=device, warmup=1 if repeats > 1 else 0)
        return seconds

    ours = timed("mig", lambda: ls.metrics.mig(tx, ty))
    theirs = timed("sk mig", lambda: sklearn_mig(x, y))
    assert abs(ls.metrics.mig(tx, ty) - sklearn_mig(x, y)) < 1e-12
    rows.append(["MIG", f"{ours * 1e3:.0f} ms", f"sklearn MI per pair: {theirs * 1e3:.0f} ms", f"{theirs / ours:.1f}x"])
    fast_total = ours
    t = timed("sap", lambda: ls.metrics.sap(x, y, xt, yt))
    rows.append(["SAP (discrete, LinearSVC per pair)", f"{t * 1e3:.0f} ms", "-", "-"])
    fast_total += t
    t_sap_c = timed("sap c", lambda: ls.metrics.sap(x, y, xt, yt, continuous=True))
    rows.append(["SAP (continuous)", f"{t_sap_c * 1e3:.1f} ms", "-", "-"])
    t = timed("mod", lambda: ls.metrics.modularity_explicitness(x, y, xt, yt))
    t_mod = timed("mod only", lambda: ls.metrics.modularity_from_mutual_information(
        ls.metrics.mutual_information(ls.metrics.histogram_discretize(tx, 20), ty)))
    rows.append(["Modularity + explicitness", f"{t * 1e3:.0f} ms", f"modularity alone: {t_mod * 1e3:.0f} ms", "-"])
    fast_total += t
    ours = timed("unsup", lambda: ls.metrics.unsupervised(tx))
    theirs = timed("sk unsup", lambda: sklearn_pairwise_mi(x))
    assert abs(ls.metrics.unsupervised(tx)["mutual_info"] - sklearn_pairwise_mi(x)) < 1e-12
    rows.append(["Unsupervised (4 scores)", f"{ours * 1e3:.0f} ms", f"sklearn pairwise MI alone: {theirs * 1e3:.0f} ms",
                 f"{theirs / ours:.1f}x"])
    fast_total += ours
    ours = timed("irs", lambda: ls.metrics.irs(tx, ty))
    theirs = timed("np irs", lambda: numpy_irs(x, y))
    assert abs(ls.metrics.irs(tx, ty)["irs"] - numpy_irs(x, y)) < 1e-9
    rows.append(["IRS", f"{ours * 1e3:.0f} ms", f"reference numpy: {theirs * 1e3:.0f} ms", f"{theirs / ours:.1f}x"])
    rf = timed("dci rf", lambda: ls.metrics.dci(x, y, xt, yt, estimator="random_forest"), repeats=1)
    if args.skip_slow:
        rows.append(["DCI (random_forest option)", f"{rf:.1f} s", "gradient boosting: skipped", "-"])
    else:
        gb = timed("dci gb", lambda: ls.metrics.dci(x, y, xt, yt), repeats=1)
        rows.append(["DCI (reference gradient boosting)", f"{gb:.1f} s", f"random_forest option: {rf:.1f} s", f"{gb / rf:.1f}x"])
    print(f"\nArray-level metrics: N={N} train / {N_TEST} test, D={D}, F={F} (medians of {args.repeats})\n")
    print_table(["metric", "latentsweep", "alternative", "speed-up"], rows)
    print(f"\nMIG + SAP + Modularity/Explicitness + unsupervised together: {fast_total:.2f} s")

    from latentsweep.demo.shapes_vae import load_shapes_vae

    model = load_shapes_vae().to(device)
    shapes = ls.datasets.Shapes()
    started = time.perf_counter()
    shapes.observations(shapes.sample_factors(1, torch.Generator()))
    build = time.perf_counter() - started
    ours = timed("fvae", lambda: ls.metrics.factor_vae_score(model.encoder, shapes, num_train=votes, num_eval=1,
                                                             num_variance_estimate=1000, progress=False), repeats=1)
    theirs = timed("loop", lambda: per_vote_factor_vae(model.encoder, shapes, votes), repeats=1)
    full = timed("fvae full", lambda: ls.metrics.factor_vae_score(model.encoder, shapes, progress=False,
                                                                  **factor_vae_sizes), repeats=1)
    beta = timed("bvae full", lambda: ls.metrics.beta_vae_score(model.encoder, shapes, progress=False,
                                                                **beta_vae_sizes), repeats=1)
    sizes = "smoke sizes" if args.smoke else "study defaults"
    print(f"\nSampling metrics on Shapes (32x32) with the shipped beta-VAE (image table built once: {build:.2f} s)\n")
    print_table(["what", "latentsweep", "alternative", "speed-up"], [
        [f"FactorVAE, {votes} votes of 64", f"{ours:.2f} s", f"one encoder call per vote: {theirs:.2f} s", f"{theirs / ours:.1f}x"],
        [f"FactorVAE, {sizes} ({factor_vae_sizes['num_train']:,} + {factor_vae_sizes['num_eval']:,} votes, "
         f"{factor_vae_sizes['num_variance_estimate']:,} variance points)", f"{full:.1f} s", "-", "-"],
        [f"BetaVAE, {sizes} ({beta_vae_sizes['num_train']:,} + {beta_vae_sizes['num_eval']:,} points of 64 pairs)",
         f"{beta:.1f} s", "-", "-"],
    ])


if __name__ == "__main__":
    main()
