"""Traversal grids: which values each latent takes (``traversal_values``) and the codes of any
chunk of the anchors x dims x steps grid (``traversal_codes``, compiled)."""

from __future__ import annotations

import math

import torch

from . import _checks
from ._extension import ops

MODES = ("prior", "absolute", "quantile", "posterior", "empirical")


def _as_anchors(fn: str, anchors) -> torch.Tensor:
    anchors = _checks.tensor(fn, "anchors", anchors, ndims=(1, 2))
    return anchors[None] if anchors.dim() == 1 else anchors


def _expand_values(fn: str, values, anchors: torch.Tensor, num_dims: int) -> torch.Tensor:
    """values [S], [K, S] or [A, K, S] -> an [A, K, S] view in the anchors' dtype."""
    values = _checks.tensor(fn, "values", values, ndims=(1, 2, 3))
    _checks.same_device(fn, anchors=anchors, values=values)
    num_anchors = anchors.shape[0]
    expected = {1: "[S]", 2: f"[K={num_dims}, S]", 3: f"[A={num_anchors}, K={num_dims}, S]"}
    leading = {1: (), 2: (num_dims,), 3: (num_anchors, num_dims)}[values.dim()]
    if tuple(values.shape[:-1]) != leading or values.shape[-1] < 1:
        raise ValueError(
            f"{fn}: values must be [S], [K, S] or [A, K, S] with S >= 1; for these anchors and "
            f"dims that is {expected[values.dim()]}, got shape {tuple(values.shape)}"
        )
    _checks.finite(fn, "values", values)
    total = num_anchors * num_dims * values.shape[-1]
    if total > _checks.INT64_MAX:  # before expand(), which cannot make such a view
        raise ValueError(f"{fn}: the grid has A * K * S = {total} rows, which overflows int64")
    values = values.to(anchors.dtype)
    return values.expand(num_anchors, num_dims, values.shape[-1])


def traversal_codes(
    anchors: torch.Tensor,
    dims,
    values: torch.Tensor,
    *,
    start: int = 0,
    count: int | None = None,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Writes rows ``[start, start + count)`` of the traversal grid.

    The grid is A anchors x K dims x S steps in row-major order: row ``g`` (with
    ``a, k, s = unravel(g, (A, K, S))``) is ``anchors[a]`` with column ``dims[k]`` replaced by
    ``values[a, k, s]``. Only the requested rows are written; the full grid never exists
    unless asked for.

    Args:
        anchors: ``[A, D]`` latent codes (``[D]`` for one anchor).
        dims: the K traversed latent indices (list of ints or 1-D integer tensor).
        values: ``[S]`` (same for all), ``[K, S]`` (per dim) or ``[A, K, S]``.
        start: first grid row. count: rows to write (``None``: to the end).
        out: optional ``[count, D]`` contiguous buffer of the anchors' dtype and device.

    Returns:
        ``[count, D]`` codes in the anchors' dtype (``out`` when given).
    """
    fn = "latentsweep.traversal_codes"
    anchors = _as_anchors(fn, anchors)
    _checks.finite(fn, "anchors", anchors)
    dims = _checks.dims(fn, dims, anchors.shape[1], anchors.device)
    values = _expand_values(fn, values, anchors, dims.numel())
    total = anchors.shape[0] * dims.numel() * values.shape[2]
    if total > _checks.INT64_MAX:
        raise ValueError(f"{fn}: the grid has A * K * S = {total} rows, which overflows int64")
    start = _checks.integer(fn, "start", start, low=0, high=total)
    if count is None:
        count = total - start
    count = _checks.integer(fn, "count", count, low=0, high=total - start)
    if count * anchors.shape[1] * anchors.element_size() > _checks.INT64_MAX:
        raise ValueError(
            f"{fn}: count * D = {count * anchors.shape[1]} values, whose size in bytes "
            "overflows int64"
        )
    if out is None:
        return ops.traversal_codes(anchors, dims, values, start, count)
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"{fn}: out must be a torch.Tensor, got {type(out).__name__}")
    expected = (count, anchors.shape[1])
    if tuple(out.shape) != expected or out.dtype != anchors.dtype or out.device != anchors.device:
        raise ValueError(
            f"{fn}: out must be {list(expected)} {anchors.dtype} on {anchors.device}, "
            f"got {list(out.shape)} {out.dtype} on {out.device}"
        )
    if not out.is_contiguous():
        raise ValueError(f"{fn}: out must be contiguous")
    ops.traversal_codes_into(anchors, dims, values, start, count, out)
    return out


def _normal_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def traversal_values(
    anchors: torch.Tensor,
    *,
    mode: str = "prior",
    span: float = 2.0,
    steps: int = 11,
    dims=None,
    logvar: torch.Tensor | None = None,
    prior_std: float = 1.0,
    reference: torch.Tensor | None = None,
) -> torch.Tensor:
    """The values each traversed latent takes: ``[A, K, S]``.

    With ``t = linspace(-span, span, steps)`` (``torch.linspace`` semantics):

    - ``"prior"`` (default): ``anchors[a, d] + t * prior_std``; centred on the inferred
      mean, over the range the prior gives a latent. Use this for VAEs.
    - ``"absolute"``: ``t * prior_std`` for every anchor: the prior's plausible range.
    - ``"quantile"``: ``prior_std * ndtri(linspace(ndtr(-span), ndtr(span), steps))``: the same
      ends, equally spaced in prior probability.
    - ``"posterior"``: ``anchors[a, d] + t * exp(0.5 * logvar[a, d])``; needs ``logvar``.
      Shows how certain the encoder is; usually moves latents far too little to see anything.
    - ``"empirical"``: per dim, the quantiles (linear interpolation, as ``torch.quantile``) of
      ``reference[:, d]`` at levels ``linspace(ndtr(-span), ndtr(span), steps)``; for plain
      autoencoders, whose latents have no prior.

    Args:
        anchors: ``[A, D]`` (``[D]`` for one anchor). dims: ``None`` for all D.
        logvar: ``[A, D]`` (mode "posterior"). reference: ``[M, D]`` codes (mode "empirical").

    Returns:
        ``[A, K, S]`` in the anchors' dtype and device.
    """
    fn = "latentsweep.traversal_values"
    anchors = _as_anchors(fn, anchors)
    _checks.finite(fn, "anchors", anchors)
    if mode not in MODES:
        raise ValueError(f"{fn}: mode must be one of {', '.join(map(repr, MODES))}, got {mode!r}")
    span = _checks.positive_float(fn, "span", span)
    steps = _checks.integer(fn, "steps", steps, low=1)
    prior_std = _checks.positive_float(fn, "prior_std", prior_std)
    # The values would not be finite in the anchors' dtype (nor could linspace be built).
    largest = torch.finfo(anchors.dtype).max
    uses_prior_std = mode in ("prior", "absolute", "quantile")
    scale = prior_std if uses_prior_std else 1.0
    if span * scale > largest:
        name = "span * prior_std" if uses_prior_std else "span"
        raise ValueError(
            f"{fn}: {name} must be <= {largest:.4g} (the largest {anchors.dtype}), "
            f"got {span * scale:.4g}"
        )
    num_anchors, latent_dim = anchors.shape
    dims = (
        torch.arange(latent_dim, device=anchors.device)
        if dims is None
        else _checks.dims(fn, dims, latent_dim, anchors.device)
    )
    num_dims = dims.numel()
    if num_anchors * num_dims * steps * 8 > _checks.INT64_MAX:
        raise ValueError(
            f"{fn}: A * K * steps = {num_anchors * num_dims * steps} values, whose size in bytes "
            "overflows int64"
        )
    # Low precision: compute in float32 and round once at the end.
    compute = torch.float64 if anchors.dtype == torch.float64 else torch.float32
    anchors_c = anchors.to(compute)
    t = torch.linspace(-span, span, steps, dtype=compute, device=anchors.device)
    levels = torch.linspace(_normal_cdf(-span), _normal_cdf(span), steps, dtype=torch.float64)

    if mode == "prior":
        values = anchors_c[:, dims, None] + t * prior_std
    elif mode == "absolute":
        values = (t * prior_std).expand(num_anchors, num_dims, steps)
    elif mode == "quantile":
        row = (prior_std * torch.special.ndtri(levels)).to(device=anchors.device, dtype=compute)
        values = row.expand(num_anchors, num_dims, steps)
    elif mode == "posterior":
        if logvar is None:
            raise ValueError(f"{fn}: mode='posterior' needs logvar ([A, D], from the encoder)")
        logvar = _checks.tensor(fn, "logvar", logvar, ndims=(1, 2))
        logvar = logvar[None] if logvar.dim() == 1 else logvar
        if logvar.shape != anchors.shape:
            raise ValueError(
                f"{fn}: logvar must have the anchors' shape {tuple(anchors.shape)}, "
                f"got {tuple(logvar.shape)}"
            )
        _checks.same_device(fn, anchors=anchors, logvar=logvar)
        _checks.finite(fn, "logvar", logvar)
        sd = torch.exp(0.5 * logvar.to(compute)[:, dims, None])
        values = anchors_c[:, dims, None] + t * sd
    else:  # empirical
        if reference is None:
            raise ValueError(f"{fn}: mode='empirical' needs reference ([M, D] codes of the data)")
        reference = _checks.tensor(fn, "reference", reference, ndims=(2,))
        if reference.shape[1] != latent_dim or reference.shape[0] < 1:
            raise ValueError(
                f"{fn}: reference must be [M, {latent_dim}] with M >= 1, got {tuple(reference.shape)}"
            )
        _checks.same_device(fn, anchors=anchors, reference=reference)
        _checks.finite(fn, "reference", reference)
        row = empirical_quantiles(reference[:, dims], levels).to(compute)  # [K, S]
        values = row.expand(num_anchors, num_dims, steps)
    return values.to(anchors.dtype).contiguous()


def empirical_quantiles(samples: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """Per column of ``samples`` [M, K], the quantiles at ``levels`` [S] with linear
    interpolation (``torch.quantile``'s default, without its input-size limit): ``[K, S]``."""
    ordered = samples.double().sort(dim=0).values  # [M, K]
    ranks = levels.to(ordered.device, torch.float64) * (ordered.shape[0] - 1)
    below = ranks.floor().long()
    above = ranks.ceil().long()
    weight = (ranks - below)[:, None]
    low, high = ordered[below], ordered[above]  # [S, K]
    return torch.lerp(low, high, weight).T.contiguous()
