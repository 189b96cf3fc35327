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


def _check_reach(fn: str, mu: torch.Tensor, logvar: torch.Tensor, mu_range, logvar_range) -> None:
    """Every draw ``mu + exp(0.5 * logvar) * eps`` (``|eps| <= MAX_ABS_NORMAL``) must be finite in
    the output dtype. The extremes decide for nearly every input; only when they cannot is each
    element checked, to name the first that can overflow."""
    if mu_range is None or logvar_range is None:
        return
    finfo, eps = torch.finfo(mu.dtype), _C.MAX_ABS_NORMAL
    if 0.5 * logvar_range[1] + math.log(eps) < math.log(finfo.max / 2) and max(-mu_range[0], mu_range[1]) <= finfo.max / 2:
        return
    # What rounds to inf: beyond the largest value by half its ulp (65520 for float16). The room
    # each mean leaves below that, in float64 without overflow: max - |mu| + half an ulp (the
    # largest float64 plus its half ulp is inf in float64, which refused any sd at mu = max).
    half_ulp = finfo.max * finfo.eps / 4.0
    room = (finfo.max - mu.detach().double().abs()) + half_ulp
    sd_reach = torch.exp(0.5 * logvar.detach().double() + math.log(eps))  # inf in float64: beyond anyway
    beyond = sd_reach >= room
    if not bool(beyond.any()):
        return
    row, latent = (int(i) for i in beyond.nonzero()[0])
    # The limit rounded down, so that a logvar said to be beyond it is beyond it as printed.
    limit = math.floor(200.0 * math.log(float(room[row, latent]) / eps)) / 100
    raise ValueError(
        f"{fn}: mu + exp(0.5 * logvar) * eps can pass the largest {mu.dtype} ({finfo.max:.4g}) at row {row}, "
        f"latent {latent} (|eps| reaches {eps}): logvar there must be <= {limit:.2f}, got {float(logvar[row, latent]):.6g}"
        + ("" if mu.dtype == torch.float64 else "; pass float64 mu and logvar for wider draws")
    )


def _bytes_per_draw(dtype: torch.dtype) -> int:
    """Bytes the ops allocate per value drawn: the result, and for float16/bfloat16 (or any
    dtype the op then refuses) the float32 buffer it is computed in and rounded from."""
    itemsize = dtype.itemsize
    return itemsize if dtype in (torch.float32, torch.float64) else itemsize + 4


def _sample_bytes(mu: torch.Tensor, n: int) -> int:
    """Bytes ``sample`` allocates for ``mu [N, D]`` and ``n`` draws per row: the draws (see
    :func:`_bytes_per_draw`), and the mean and SD in the compute dtype (float32, or float64),
    contiguous: the SD always, the mean when ``mu`` is not that already. A float16 draw of
    n = 1 needs 14 bytes per value, not the result's 2."""
    rows, latent = mu.shape
    compute = torch.float64 if mu.dtype == torch.float64 else torch.float32
    copies = 1 + (mu.dtype != compute or not mu.is_contiguous())
    return rows * latent * (n * _bytes_per_draw(mu.dtype) + copies * compute.itemsize)


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
    mu_range = _checks.finite(fn, "mu", mu)
    logvar_range = _checks.finite(fn, "logvar", logvar)
    if mu.shape == logvar.shape and mu.dtype == logvar.dtype and mu.dim() == 2 and n != 0:  # (else the op
        _check_reach(fn, mu, logvar, mu_range, logvar_range)  # says what is wrong, or there are no draws)
    advice = "draw fewer (n=), or in parts with sample_offset= (or fewer rows at a time, with row_offset=)"
    if mu.dim() == 2 and n >= 0:  # other shapes and counts: the op says what is wrong
        _checks.op_output_fits(fn, f"the samples [N={mu.shape[0]}, n={n}, D={mu.shape[1]}]",
                               _sample_bytes(mu, n), mu.device, advice,
                               lambda: ops.sample(_checks.shape_only(mu), _checks.shape_only(logvar), n, seed,
                                                  row_offset, sample_offset))
    with _checks.allocation_named(fn, "the samples [N, n, D]", advice):
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
    advice = "draw fewer (n=), or in parts with offset="
    if n >= 0 and latent_size >= 0:
        _checks.op_output_fits(fn, f"the samples [n={n}, D={latent_size}]",
                               n * latent_size * _bytes_per_draw(dtype or torch.get_default_dtype()),
                               device or torch.device("cpu"), advice,
                               lambda: ops.sample_prior(n, latent_size, seed, offset, dtype=dtype, device="meta"))
    with _checks.allocation_named(fn, "the samples [n, D]", advice):
        return ops.sample_prior(n, latent_size, seed, offset, dtype=dtype, device=device)
