"""Unsupervised scores from the codes alone: Gaussian total correlation, Gaussian Wasserstein
correlation and the mean mutual information between latents."""

from __future__ import annotations

import torch

from . import _inputs
from ._threads import one_cpu_thread
from ._information import discretize, information

_FN = "latentsweep.metrics.unsupervised"


@one_cpu_thread()
def unsupervised(codes, *, bins: int = 20) -> dict:
    """Scores of how dependent the latents are, without ground-truth factors.

    Definition (as in disentanglement_lib's ``unsupervised_metrics.py``), with ``C`` the sample
    covariance of the codes (``ddof=1``) and ``diag(C)`` its diagonal:

    - ``gaussian_total_correlation``: KL between N(0, C) and the product of its marginals,
      ``0.5 * (sum_d log C_dd - log det C)``.
    - ``gaussian_wasserstein_correlation``: squared 2-Wasserstein distance between N(0, C) and
      N(0, diag(C)), ``2 tr C - 2 tr sqrt(C diag(C))``.
    - ``gaussian_wasserstein_correlation_norm``: the former divided by ``tr C``.
    - ``mutual_info``: mean discrete MI (nats) between distinct pairs of latents, each
      discretised into ``bins`` histogram bins (diagonal excluded).

    Latents with zero variance (e.g. a ReLU head that is always 0) are independent of the rest
    and are left out of the two Gaussian scores, where the reference would return NaN; when every
    latent is constant the Gaussian scores are 0 (the joint is its product of marginals).

    Args:
        codes: ``[N, D]`` codes, D >= 2.
        bins: histogram bins per latent (study default 20; at most 100,000).

    Returns:
        dict with the four scores (floats).

    Reference: F. Locatello et al., "Challenging Common Assumptions in the Unsupervised Learning
    of Disentangled Representations", ICML 2019 (disentanglement_lib).
    """
    x = _inputs.codes(_FN, "codes", codes, min_latents=2)
    bins = _inputs.bins(_FN, bins)
    cov = torch.cov(x.T)
    wasserstein = _wasserstein(cov)
    trace = float(torch.diagonal(cov).sum())
    d = x.shape[1]
    mi = information(*(2 * [discretize(x, bins)]))
    mi.fill_diagonal_(0.0)
    return {
        "gaussian_total_correlation": _total_correlation(cov),
        "gaussian_wasserstein_correlation": wasserstein,
        # Every latent constant: tr C = 0 and the distance 0; the latents are independent.
        "gaussian_wasserstein_correlation_norm": wasserstein / trace if trace > 0 else 0.0,
        "mutual_info": float(mi.sum() / (d * d - d)),
    }


def _active(cov: torch.Tensor) -> torch.Tensor:
    keep = torch.diagonal(cov) > 0
    return cov[keep][:, keep]


def gaussian_total_correlation(cov) -> float:
    """Total correlation (nats) of a zero-mean Gaussian with covariance ``cov [D, D]`` (square,
    finite; latents with zero variance are left out)."""
    return _total_correlation(_inputs.covariance("latentsweep.metrics.gaussian_total_correlation", cov))


def _total_correlation(cov: torch.Tensor) -> float:
    c = _active(cov)
    if c.shape[0] == 0:
        return 0.0
    return float(0.5 * (torch.log(torch.diagonal(c)).sum() - torch.linalg.slogdet(c).logabsdet))


def gaussian_wasserstein_correlation(cov) -> float:
    """``2 tr C - 2 tr sqrt(C diag(C))`` for a covariance ``cov [D, D]``.

    ``C diag(C)`` is similar to the symmetric ``S C S`` with ``S = diag(C)^(1/2)``, so the trace of
    its square root is the sum of the square roots of ``S C S``'s eigenvalues. ``cov`` must be
    square and finite; latents with zero variance are left out.
    """
    return _wasserstein(_inputs.covariance("latentsweep.metrics.gaussian_wasserstein_correlation", cov))


def _wasserstein(cov: torch.Tensor) -> float:
    c = _active(cov)
    if c.shape[0] == 0:
        return 0.0
    # The distance is homogeneous of degree 1 in C, and S C S of degree 2: computed for C scaled
    # to unit largest variance, so that S C S cannot overflow, then scaled back.
    scale = torch.diagonal(c).max()
    c = c / scale
    s = torch.sqrt(torch.diagonal(c))
    eigenvalues = torch.linalg.eigvalsh(s[:, None] * c * s[None, :])
    return float(scale * (2 * torch.trace(c) - 2 * eigenvalues.clamp_min(0).sqrt().sum()))
