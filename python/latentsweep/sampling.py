"""Reparameterised sampling from diagonal Gaussians, and from the N(0, 1) prior.

Every draw is a pure function of (seed, row, sample, dim) (Philox4x32-10 + Box–Muller), so a
slice computed with the matching offsets is bitwise equal to that slice of the full result,
whatever the number of threads or the way work is split.
"""

from __future__ import annotations

import math

import torch

from . import _checks
from ._extension import _C, ops

MAX_ROW = 2**48  # counter limits of the generator (see cpp/latentsweep/normal_stream.h)
MAX_SAMPLE = 2**47
MAX_DIM = 2**34


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

    Args:
        mu, logvar: ``[N, D]`` (or ``[D]`` for one row), same shape, dtype and device;
            float32/float64/float16/bfloat16 (low precision is computed in float32).
        n: samples per row, ``>= 0``.
        seed: any integer in ``[0, 2**64)``.
        row_offset, sample_offset: where this call starts in the row and sample counters, so
            that pieces of one big draw can be computed separately.

    Returns:
        ``[N, n, D]`` in ``mu``'s dtype and device (``[n, D]`` for 1-D inputs).
    """
    fn = "latentsweep.sample"
    mu = _checks.tensor(fn, "mu", mu, ndims=(1, 2))
    logvar = _checks.tensor(fn, "logvar", logvar, ndims=(1, 2))
    if logvar.shape != mu.shape:
        raise ValueError(
            f"{fn}: logvar must have mu's shape {tuple(mu.shape)}, got {tuple(logvar.shape)}"
        )
    if logvar.dtype != mu.dtype:
        raise TypeError(f"{fn}: mu is {mu.dtype} but logvar is {logvar.dtype}; use one dtype")
    _checks.same_device(fn, mu=mu, logvar=logvar)
    n = _checks.integer(fn, "n", n, low=0, high=MAX_SAMPLE)
    seed = _checks.seed(fn, seed)
    rows = mu.shape[0] if mu.dim() == 2 else 1
    row_offset = _checks.integer(fn, "row_offset", row_offset, low=0, high=MAX_ROW - rows)
    sample_offset = _checks.integer(fn, "sample_offset", sample_offset, low=0, high=MAX_SAMPLE - n)
    if mu.shape[-1] > MAX_DIM:
        raise ValueError(f"{fn}: D must be <= 2**34, got {mu.shape[-1]}")
    itemsize = 8 if mu.dtype == torch.float64 else 4  # the compute dtype's
    if rows * n * mu.shape[-1] * itemsize > _checks.INT64_MAX:
        raise ValueError(
            f"{fn}: N * n * D = {rows * n * mu.shape[-1]} values, whose size in bytes "
            "overflows int64"
        )
    _checks.finite(fn, "mu", mu)
    extremes = _checks.finite(fn, "logvar", logvar)
    limit = _max_logvar(mu.dtype)
    if extremes is not None and extremes[1] > limit:
        raise ValueError(
            f"{fn}: logvar must be <= {limit:.1f} so that exp(0.5 * logvar) is finite, "
            f"got a maximum of {extremes[1]}"
        )
    if mu.dim() == 1:
        return ops.sample(mu[None], logvar[None], n, seed, row_offset, sample_offset)[0]
    return ops.sample(mu, logvar, n, seed, row_offset, sample_offset)


def sample_prior(
    n: int,
    dim: int,
    *,
    seed: int = 0,
    offset: int = 0,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Draws ``n`` codes from the N(0, 1) prior: ``[n, dim]``.

    Row ``i`` is ``eps(seed, offset + i, d)`` from a stream separate from :func:`sample`'s, so
    ``sample_prior(n, dim, offset=k)`` equals rows ``k .. k+n`` of a larger draw.
    ``dtype`` defaults to torch's default dtype, ``device`` to the CPU.
    """
    fn = "latentsweep.sample_prior"
    n = _checks.integer(fn, "n", n, low=0, high=MAX_ROW)
    dim = _checks.integer(fn, "dim", dim, low=0, high=MAX_DIM)
    seed = _checks.seed(fn, seed)
    offset = _checks.integer(fn, "offset", offset, low=0, high=MAX_ROW - n)
    dtype = torch.get_default_dtype() if dtype is None else dtype
    if dtype not in _checks.FLOAT_DTYPES:
        raise TypeError(f"{fn}: dtype must be a floating-point dtype, got {dtype}")
    itemsize = 8 if dtype == torch.float64 else 4  # the compute dtype's
    if n * dim * itemsize > _checks.INT64_MAX:
        raise ValueError(
            f"{fn}: n * dim = {n * dim} values, whose size in bytes overflows int64"
        )
    out = _empty(n, dim, dtype=dtype, device=device)
    ops.sample_prior_(out, seed, offset)
    return out


def _empty(*sizes: int, dtype: torch.dtype, device) -> torch.Tensor:
    device = _checks.device("latentsweep.sample_prior", device) or torch.device("cpu")
    if device.type == "cpu":  # large CPU results prefer huge pages (fewer page faults)
        return _C.empty_prefer_huge_pages(list(sizes), dtype)
    return torch.empty(sizes, dtype=dtype, device=device)
