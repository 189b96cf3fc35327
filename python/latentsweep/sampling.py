"""Reparameterised sampling from diagonal Gaussians, and from the N(0, 1) prior.

Every draw is a pure function of (seed, row, sample, dim) (Philox4x32-10 + Box–Muller), so a
slice computed with the matching offsets is bitwise equal to that slice of the full result,
whatever the number of threads or the way work is split.
"""

from __future__ import annotations

import math

import torch

from . import _checks
from ._extension import ops


def _max_logvar(dtype: torch.dtype) -> float:
    """Largest logvar whose standard deviation exp(logvar / 2) is finite in the compute dtype."""
    compute = torch.float64 if dtype == torch.float64 else torch.float32
    return 2.0 * math.log(torch.finfo(compute).max)


def sample(
    mu: torch.Tensor,
    logvar: torch.Tensor,
    n: int,
    *,
    seed: int = 0,
    row_offset: int = 0,
    sample_offset: int = 0,
) -> torch.Tensor:
    """Draws ``n`` reparameterised samples per row of a diagonal Gaussian posterior.

    ``z[i, j, d] = mu[i, d] + exp(0.5 * logvar[i, d]) * eps(seed, row_offset + i,
    sample_offset + j, d)`` with ``eps`` a standard normal from a counter-based generator.
    Differentiable like ``torch.distributions.Normal.rsample``: gradients reach ``mu``
    (``dz/dmu = 1``) and ``logvar`` (``dz/dlogvar = (z - mu) / 2``); the backward pass
    recomputes ``eps`` from its counters rather than keeping it.

    Args:
        mu, logvar: ``[N, D]`` (or ``[D]`` for one row), same shape, dtype and device;
            float32/float64/float16/bfloat16 (low precision is computed in float32).
        n: samples per row, ``>= 0``.
        seed: any integer in ``[0, 2**64)``.
        row_offset, sample_offset: where this call starts in the row and sample counters, so
            that pieces of one big draw can be computed separately
            (``row_offset + N <= 2**48``, ``sample_offset + n <= 2**47``).

    Returns:
        ``[N, n, D]`` in ``mu``'s dtype and device (``[n, D]`` for 1-D inputs).
    """
    fn = "latentsweep.sample"
    mu = _checks.dense_tensor(fn, "mu", mu)
    logvar = _checks.dense_tensor(fn, "logvar", logvar)
    n = _checks.integer(fn, "n", n)
    seed = _checks.seed(fn, seed)
    row_offset = _checks.integer(fn, "row_offset", row_offset)
    sample_offset = _checks.integer(fn, "sample_offset", sample_offset)
    one_row = mu.dim() == 1 and logvar.dim() == 1
    if one_row:
        mu, logvar = mu[None], logvar[None]
    # The data scans; everything else is checked by the op.
    _checks.finite(fn, "mu", mu)
    extremes = _checks.finite(fn, "logvar", logvar)
    limit = _max_logvar(mu.dtype)
    if extremes is not None and extremes[1] > limit:
        raise ValueError(
            f"{fn}: logvar must be <= {limit:.1f} so that exp(0.5 * logvar) is finite, "
            f"got a maximum of {extremes[1]}"
        )
    with _checks.allocation_named(fn, "the samples [N, n, D]", "draw fewer (n=), or in parts with sample_offset="):
        z = ops.sample(mu, logvar, n, seed, row_offset, sample_offset)
    return z[0] if one_row else z


def sample_prior(
    n: int,
    latent_size: int,
    *,
    seed: int = 0,
    offset: int = 0,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Draws ``n`` codes from the N(0, 1) prior: ``[n, D]`` with ``D = latent_size``.

    Row ``i`` is ``eps(seed, offset + i, d)`` from a stream separate from :func:`sample`'s, so
    ``sample_prior(n, D, offset=k)`` equals rows ``k .. k+n`` of a larger draw
    (``offset + n <= 2**48``). ``dtype`` defaults to torch's default dtype, ``device`` to the
    CPU.
    """
    fn = "latentsweep.sample_prior"
    n = _checks.integer(fn, "n", n)
    latent_size = _checks.integer(fn, "latent_size", latent_size)
    seed = _checks.seed(fn, seed)
    offset = _checks.integer(fn, "offset", offset)
    if dtype is not None and not isinstance(dtype, torch.dtype):
        raise TypeError(f"{fn}: dtype must be a torch.dtype, got {type(dtype).__name__}")
    device = _checks.device(fn, device)
    with _checks.allocation_named(fn, "the samples [n, D]", "draw fewer (n=), or in parts with offset="):
        return ops.sample_prior(n, latent_size, seed, offset, dtype=dtype, device=device)
