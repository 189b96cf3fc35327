"""Statistical tests of the generator, with fixed seeds so they are deterministic.

Each helper turns a statistic into a z-score (or a p-value) and reports the ones beyond a
limit. The limits (|z| > 6, p < 1e-7) make a false failure of a correct generator negligible
(about 2e-9 per statistic, under 1e-6 for the whole module), while a broken generator moves
these statistics by tens of standard deviations at these sample sizes (4M draws): the
"bad generator" tests at the bottom check that each helper does fail on one.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.special
import scipy.stats
import torch

import latentsweep
import reference as R
from conftest import run_with_capability

Z_LIMIT = 6.0
P_LIMIT = 1e-7
ROWS, DIM = 2**16, 64  # 4M draws per sample


# --------------------------------------------------------------------------- helpers


def moment_failures(x: torch.Tensor, limit: float = Z_LIMIT) -> list[str]:
    """Mean, variance, skewness and excess kurtosis against N(0, 1), as z-scores."""
    x = x.double().flatten()
    n = x.numel()
    mean = float(x.mean())
    c = x - mean
    var = float((c**2).mean())
    skew = float((c**3).mean()) / var**1.5
    kurt = float((c**4).mean()) / var**2 - 3.0
    z = {
        "mean": mean * math.sqrt(n),
        "variance": (var - 1.0) / math.sqrt(2.0 / n),
        "skewness": skew / math.sqrt(6.0 / n),
        "kurtosis": kurt / math.sqrt(24.0 / n),
    }
    return [f"{name}: z = {value:.2f}" for name, value in z.items() if not abs(value) < limit]


def normality_failures(x: torch.Tensor, p_limit: float = P_LIMIT, bins: int = 256) -> list[str]:
    """Kolmogorov–Smirnov and a chi-square over equiprobable bins against N(0, 1)."""
    x = x.double().flatten().numpy()
    failures = []
    ks = scipy.stats.kstest(x, "norm")
    if not ks.pvalue > p_limit:
        failures.append(f"Kolmogorov-Smirnov: D = {ks.statistic:.3g}, p = {ks.pvalue:.3g}")
    edges = scipy.special.ndtri(np.linspace(0, 1, bins + 1)[1:-1])
    counts = np.bincount(np.searchsorted(edges, x), minlength=bins)
    chi = scipy.stats.chisquare(counts)
    if not chi.pvalue > p_limit:
        failures.append(f"chi-square ({bins} bins): stat = {chi.statistic:.1f}, p = {chi.pvalue:.3g}")
    return failures


TAIL_THRESHOLDS = (2.0, 3.0, 4.0, 4.5)


def tail_failures(x: torch.Tensor, limit: float = Z_LIMIT) -> list[str]:
    """Frequencies of |z| > t against 2 * Phi(-t), as binomial z-scores."""
    x = x.double().flatten()
    n = x.numel()
    failures = []
    for t in TAIL_THRESHOLDS:
        p = 2 * scipy.special.ndtr(-t)
        count = int((x.abs() > t).sum())
        z = (count - n * p) / math.sqrt(n * p * (1 - p))
        if not abs(z) < limit:
            failures.append(f"|z| > {t}: {count} draws, expected {n * p:.1f} (z = {z:.2f})")
    return failures


def correlation_failures(pairs: dict[str, tuple[torch.Tensor, torch.Tensor]], limit: float = Z_LIMIT) -> list[str]:
    """Pearson correlations of each pair, and of their squares (dependence that a linear
    correlation misses, e.g. a shared Box–Muller radius), as z = r * sqrt(n)."""
    failures = []
    for name, (a, b) in pairs.items():
        a, b = a.double().flatten(), b.double().flatten()
        n = a.numel()
        for label, (u, v) in (("", (a, b)), (" (squares)", (a * a, b * b))):
            r = float(torch.corrcoef(torch.stack([u, v]))[0, 1])
            z = r * math.sqrt(n)
            if not abs(z) < limit:
                failures.append(f"{name}{label}: r = {r:.4g}, z = {z:.2f}")
    return failures


def dim_lag_pairs(x: torch.Tensor, lags=(1, 2, 7, 8, 16, 24, 31, 32)) -> dict:
    """Neighbouring dims of [M, D] draws. Lags 8/16/24 are the other words of the same Philox
    block (8: the other half of the Box–Muller pair), 1 and 32 neighbouring blocks."""
    return {f"dims d, d+{lag}": (x[:, :-lag], x[:, lag:]) for lag in lags if lag < x.shape[1]}


def all_failures(x: torch.Tensor) -> list[str]:
    return moment_failures(x) + normality_failures(x) + tail_failures(x) + correlation_failures(dim_lag_pairs(x))


# --------------------------------------------------------------------------- the generator


@pytest.fixture(scope="module")
def prior64():
    return latentsweep.sample_prior(ROWS, DIM, seed=20240611, dtype=torch.float64)


def test_prior_float64_is_standard_normal(prior64):
    assert all_failures(prior64) == []


@pytest.mark.parametrize("capability", ["this process", "default"])
def test_prior_float32_is_standard_normal(capability):
    """This process's kernels (the best the CPU has) and the portable ones (a subprocess)."""
    call = ("sample_prior", (ROWS, DIM), dict(seed=777, dtype=torch.float32))
    if capability == "this process":
        x = latentsweep.sample_prior(*call[1], **call[2])
    else:
        (x,), _ = run_with_capability(capability, [call])
    assert all_failures(x) == []


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_posterior_eps_is_standard_normal(dtype):
    """sample() with mu = 0, logvar = 0 over rows x samples x dims (D not a multiple of 32)."""
    mu = torch.zeros(1024, 40, dtype=dtype)
    eps = latentsweep.sample(mu, torch.zeros_like(mu), 100, seed=31337, row_offset=2**33, sample_offset=2**40)
    flat = eps.reshape(-1, 40)
    assert all_failures(flat) == []


def test_standardised_samples_of_a_posterior_are_standard_normal():
    g = torch.Generator().manual_seed(4)
    mu = torch.randn(512, 64, generator=g, dtype=torch.float64) * 3
    logvar = torch.rand(512, 64, generator=g, dtype=torch.float64) * 6 - 4
    z = latentsweep.sample(mu, logvar, 128, seed=99)
    eps = (z - mu[:, None]) / torch.exp(0.5 * logvar)[:, None]
    assert moment_failures(eps) + normality_failures(eps) + tail_failures(eps) == []


def test_no_correlation_between_neighbouring_samples_and_rows():
    mu = torch.zeros(4096, 32, dtype=torch.float64)
    eps = latentsweep.sample(mu, torch.zeros_like(mu), 32, seed=5)  # [rows, samples, dims]
    pairs = {
        "samples j, j+1": (eps[:, :-1], eps[:, 1:]),
        "rows i, i+1": (eps[:-1], eps[1:]),
        "rows i, i+1 (dim d, d+1)": (eps[:-1, :, :-1], eps[1:, :, 1:]),
        "row i sample j+1 vs row i+1 sample j": (eps[:-1, 1:], eps[1:, :-1]),
    }
    assert correlation_failures(pairs) == []


def test_no_correlation_between_seeds(prior64):
    pairs = {}
    for other in (20240611 + 1, 20240611 + 2**32, 20240611 ^ (1 << 63)):
        y = latentsweep.sample_prior(ROWS, DIM, seed=other, dtype=torch.float64)
        pairs[f"seed vs {other}"] = (prior64, y)
    pairs["seed 0 vs 1"] = (
        latentsweep.sample_prior(ROWS // 4, DIM, seed=0, dtype=torch.float64),
        latentsweep.sample_prior(ROWS // 4, DIM, seed=1, dtype=torch.float64),
    )
    assert correlation_failures(pairs) == []


def test_no_correlation_between_prior_and_posterior_streams(prior64):
    """Same seed, row and (sample 0) counter: only the stream bit differs."""
    zeros = torch.zeros(ROWS, DIM, dtype=torch.float64)
    posterior = latentsweep.sample(zeros, zeros, 1, seed=20240611)[:, 0]
    assert correlation_failures({"prior vs posterior stream": (prior64, posterior)}) == []


def test_no_correlation_across_high_counter_words():
    """Rows 2^32 apart and samples 2^32 apart share their low counter words."""
    mu = torch.zeros(ROWS // 4, DIM, dtype=torch.float64)
    lv = torch.zeros_like(mu)
    base = latentsweep.sample(mu, lv, 1, seed=8)
    pairs = {
        "row + 2^32": (base, latentsweep.sample(mu, lv, 1, seed=8, row_offset=2**32)),
        "row + 2^40": (base, latentsweep.sample(mu, lv, 1, seed=8, row_offset=2**40)),
        "sample + 2^32": (base, latentsweep.sample(mu, lv, 1, seed=8, sample_offset=2**32)),
        "sample + 2^46": (base, latentsweep.sample(mu, lv, 1, seed=8, sample_offset=2**46)),
    }
    assert correlation_failures(pairs) == []


def test_draws_are_distinct(prior64):
    """Counter aliasing (two coordinates mapping to one counter) would repeat whole blocks."""
    assert torch.unique(prior64).numel() >= prior64.numel() - 2


def test_extremes_are_bounded_by_the_uniforms():
    """u >= 2^-32 bounds |z| by sqrt(64 ln 2) = 6.66: never infinite or NaN."""
    x = latentsweep.sample_prior(ROWS, DIM, seed=3, dtype=torch.float32)
    assert torch.isfinite(x).all()
    assert float(x.abs().max()) <= math.sqrt(64 * math.log(2)) + 1e-5


# --------------------------------------------------------------------------- the helpers can fail

N_BAD = ROWS * DIM


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_helpers_pass_torch_randn():
    """Sanity: a good generator passes every helper (so the limits are not too tight)."""
    assert all_failures(torch.randn(ROWS, DIM, generator=_gen(1), dtype=torch.float64)) == []


def test_uniform_generator_fails():
    x = (torch.rand(ROWS, DIM, generator=_gen(), dtype=torch.float64) - 0.5) * math.sqrt(12)
    assert moment_failures(x)  # kurtosis -1.2
    assert normality_failures(x)
    assert tail_failures(x)


def test_shifted_and_scaled_generators_fail_the_moments():
    x = torch.randn(N_BAD, generator=_gen(2), dtype=torch.float64)
    assert any("mean" in f for f in moment_failures(x + 0.01))
    assert any("variance" in f for f in moment_failures(x * 1.01))
    assert normality_failures(x + 0.01)


def test_truncated_tails_fail():
    x = torch.randn(N_BAD, generator=_gen(3), dtype=torch.float64)
    truncated = torch.where(x.abs() > 4.0, x / 2, x)  # no draws beyond 4 sigma
    assert tail_failures(truncated)


def test_correlated_neighbours_fail():
    x = torch.randn(ROWS, DIM, generator=_gen(4), dtype=torch.float64)
    y = x.clone()
    y[:, 1:] = 0.99 * x[:, 1:] + 0.141 * x[:, :-1]  # corr ~0.14 between neighbouring dims
    assert correlation_failures(dim_lag_pairs(y))


def test_shared_radius_fails_only_on_squares():
    """Box–Muller with one radius for both pairs of a block: uncorrelated, but dependent."""
    g = _gen(5)
    r = torch.sqrt(-2 * torch.log(torch.rand(N_BAD // 2, generator=g, dtype=torch.float64)))
    a = r * torch.cos(2 * math.pi * torch.rand(N_BAD // 2, generator=g, dtype=torch.float64))
    b = r * torch.cos(2 * math.pi * torch.rand(N_BAD // 2, generator=g, dtype=torch.float64))
    failures = correlation_failures({"shared radius": (a, b)})
    assert failures and all("squares" in f for f in failures)


def test_aliased_counters_fail():
    """The reference generator with rows r and r + 1 mapped to one counter."""
    rows = torch.arange(1024) // 2
    eps = R.reference_eps(1, rows, torch.arange(1), torch.arange(64), R.POSTERIOR_STREAM)[:, 0]
    assert correlation_failures({"rows i, i+1": (eps[0::2], eps[1::2])})
    assert torch.unique(eps).numel() < eps.numel()
