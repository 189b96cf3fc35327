"""Unsupervised scores from the codes alone: Gaussian total correlation, Gaussian Wasserstein
correlation and the mean mutual information between latents."""

from __future__ import annotations

import math

import torch

from . import _inputs
from ._threads import one_cpu_thread
from ._information import discretize, information

_FN = "latentsweep.metrics.unsupervised"

# An eigenvalue of a correlation matrix at most this times D times its largest is a zero one to
# float64's rounding: the covariance and eigvalsh resolve about eps x D of the largest (singular
# codes came out within 0.8 of it, of either sign). The Gaussian scores take such eigenvalues
# as 0 (total correlation +inf); a fixed 1e-13 x D called x and x + 5e-7 noise (1.4e-13, 150
# of these units) singular, for a total correlation of 14.47.
SINGULAR_CORRELATION = 4 * torch.finfo(torch.float64).eps


@one_cpu_thread()
def unsupervised(codes, *, bins: int = 20) -> dict:
    """Scores of how dependent the latents are, without ground-truth factors.

    Definition (as in disentanglement_lib's ``unsupervised_metrics.py``), with ``C`` the sample
    covariance of the codes (``ddof=1``) and ``diag(C)`` its diagonal:

    - ``gaussian_total_correlation``: KL between N(0, C) and the product of its marginals,
      ``0.5 * (sum_d log C_dd - log det C)``; ``inf`` when C is singular (latents linearly
      dependent, or N <= D), where the reference returns the logarithm of rounding noise.
    - ``gaussian_wasserstein_correlation``: squared 2-Wasserstein distance between N(0, C) and
      N(0, diag(C)), ``2 tr C - 2 tr sqrt(C diag(C))`` (computed without that cancellation: see
      :func:`gaussian_wasserstein_correlation`).
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
    active = _correlation(cov)
    wasserstein = _wasserstein(active)
    trace = float(torch.diagonal(cov).sum())
    d = x.shape[1]
    mi = information(*(2 * [discretize(x, bins)]))
    mi.fill_diagonal_(0.0)
    return {
        "gaussian_total_correlation": _total_correlation(active),
        "gaussian_wasserstein_correlation": wasserstein,
        # Every latent constant: tr C = 0 and the distance 0; the latents are independent.
        "gaussian_wasserstein_correlation_norm": wasserstein / trace if trace > 0 else 0.0,
        "mutual_info": float(mi.sum() / (d * d - d)),
    }


def _correlation(cov: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(variances ``[D']``, correlation matrix ``[D', D']``) of the latents with variance > 0,
    or None when none has one. The others are independent of every latent: left out of both
    scores (the reference returns NaN), and 0 when no latent is left."""
    keep = torch.diagonal(cov) > 0
    if not bool(keep.any()):
        return None
    c = cov[keep][:, keep]
    variances = torch.diagonal(c)
    s = torch.sqrt(variances)
    return variances, c / s[:, None] / s[None, :]


def gaussian_total_correlation(cov) -> float:
    """Total correlation (nats) of a zero-mean Gaussian with covariance ``cov [D, D]`` (symmetric
    positive semi-definite, finite; latents with zero variance are left out); ``inf`` when the
    rest is singular."""
    return _total_correlation(_correlation(_inputs.covariance("latentsweep.metrics.gaussian_total_correlation", cov)))


def _total_correlation(active: tuple[torch.Tensor, torch.Tensor] | None) -> float:
    if active is None:
        return 0.0
    correlation = active[1]
    # sum_d log C_dd - log det C = -log det R, R the correlation matrix: its unit diagonal keeps
    # the eigenvalues free of the latents' scales. A singular R (latents linearly dependent, or
    # N <= D points) has total correlation +inf; its smallest eigenvalue then comes back as
    # rounding noise, whose logarithm was returned as a finite score.
    eigenvalues = torch.linalg.eigvalsh(correlation)
    if bool(_rounding_zeros(eigenvalues)[0]):
        return math.inf
    return float(-0.5 * torch.log(eigenvalues).sum())


def _rounding_zeros(eigenvalues: torch.Tensor) -> torch.Tensor:
    """Which of a correlation matrix's ascending eigenvalues ``[D]`` are 0 to rounding (see
    SINGULAR_CORRELATION)."""
    return eigenvalues <= SINGULAR_CORRELATION * eigenvalues.shape[0] * eigenvalues[-1]


def gaussian_wasserstein_correlation(cov) -> float:
    """``2 tr C - 2 tr sqrt(C diag(C))`` for a covariance ``cov [D, D]``: the squared
    2-Wasserstein distance between N(0, C) and N(0, diag(C)).

    Computed as a sum of squares, ``min_U ||S - F U||_F^2`` over orthogonal U with
    ``S = diag(C)^(1/2)`` and ``F F^T = C`` (the coupling's Procrustes form), so it is never
    negative and keeps its relative accuracy when latents' scales differ by many orders (the
    trace difference cancels: with SDs 1, 1 and 1e4 it came out negative). ``cov`` must be a
    finite symmetric positive semi-definite matrix; latents with zero variance are left out.
    """
    return _wasserstein(_correlation(_inputs.covariance("latentsweep.metrics.gaussian_wasserstein_correlation", cov)))


def formed_covariance_wasserstein_correlation(cov: torch.Tensor) -> float:
    """:func:`gaussian_wasserstein_correlation` of a float64 covariance the library formed from
    codes (``X^T X / (N - 1)``: positive semi-definite by construction, symmetric to rounding),
    without the checks of a caller's matrix: the same value, symmetrised as they symmetrise it,
    and no ``D x D`` eigvalsh of the check (a tenth of ``diagnose``'s time at D = 1024)."""
    return _wasserstein(_correlation((cov + cov.T) / 2))


def _wasserstein(active: tuple[torch.Tensor, torch.Tensor] | None) -> float:
    # W^2(N(0, C), N(0, S^2)), S = diag(C)^(1/2), is min over orthogonal U of ||S - F U||_F^2 for
    # any F with F F^T = C (Procrustes), the minimum at U = Q P^T from the SVD S F = P Sigma Q^T.
    # The residual is summed as squares, never negative, and errors in U change it only to
    # second order; 2 tr C - 2 tr sqrt(S C S) cancelled to nothing (even below 0) for latents
    # of very different scales.
    if active is None:
        return 0.0
    variances, correlation = active
    # Homogeneous of degree 1 in C: computed for unit largest variance (S F cannot overflow).
    scale = variances.max()
    s = torch.sqrt(variances / scale)
    eigenvalues, vectors = torch.linalg.eigh(correlation)
    # Rounding noise in place of a zero eigenvalue (1e-16) put its square root (1e-8) into F,
    # and a relative error of 3e-8 into the distance of two proportional latents.
    f = s[:, None] * vectors * torch.where(_rounding_zeros(eigenvalues), 0.0, eigenvalues).sqrt()
    p, _, qh = torch.linalg.svd(s[:, None] * f)
    residual = torch.diag(s) - f @ (qh.T @ p.T)
    return float(scale * (residual * residual).sum())
