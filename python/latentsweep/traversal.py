"""Traversal grids: which values each latent takes (``traversal_values``) and the codes of any
chunk of the anchors x dims x steps grid (``traversal_codes``, compiled)."""

from __future__ import annotations

import math

import torch

from . import _checks, modes
from ._extension import ops
from .direction_codes import normalised
from .latent_shape import flat_codes, flat_directions, like_anchors
from .modes import MAX_QUANTILE_SPAN, MODES, Mode, empirical_quantiles  # noqa: F401  (public here too)
from .posterior import Posterior


def _as_anchors(fn: str, anchors) -> torch.Tensor:
    anchors = _checks.tensor(fn, "anchors", anchors, ndims=(1, 2))
    return anchors[None] if anchors.dim() == 1 else anchors


def _expand_values(fn: str, values, anchors: torch.Tensor, num_dims: int) -> torch.Tensor:
    """values [S], [K, S] or [A, K, S] -> an [A, K, S] view in the anchors' dtype (for
    traverse's ``values``; traversal_codes leaves the shape rules to its op)."""
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
    total = num_anchors * num_dims * values.shape[-1]
    if total > _checks.INT64_MAX:  # before expand(), which cannot make such a view
        raise ValueError(f"{fn}: the grid has A * K * S = {total} rows, which overflows int64")
    _checks.fits_in_memory(fn, f"the values [A={num_anchors}, K={num_dims}, S={values.shape[-1]}]",
                           total * anchors.element_size(), anchors.device, "pass fewer steps, anchors or dims")
    _checks.representable(fn, "values", values, anchors.dtype, _checks.CODES_IN_ANCHORS_DTYPE)
    _check_monotone(fn, values)
    values = values.to(anchors.dtype)
    return values.expand(num_anchors, num_dims, values.shape[-1])


def _check_monotone(fn: str, values: torch.Tensor) -> None:
    """Each traversal's values must move one way: the sensitivity divides a traversal's summed
    |change| by its span |values[..., -1] - values[..., 0]|, which for values that turn back
    (0, 1, 0) is not how far the latent moved."""
    steps = values.diff(dim=-1)
    one_way = (steps >= 0).all(dim=-1) | (steps <= 0).all(dim=-1)
    if not bool(one_way.all()):
        where = tuple(int(i) for i in (~one_way).nonzero()[0].tolist())
        at = f" (at index {list(where)} of values' leading dimensions)" if where else ""
        raise ValueError(f"{fn}: each traversal's values must be non-decreasing or non-increasing along the "
                         f"steps{at}; to visit values out of order, sort them (the outputs come in step order)")


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

    The grid is A anchors x K traversed latents x S steps in row-major order: row ``g`` (with
    ``a, k, s = unravel(g, (A, K, S))``) is ``anchors[a]`` with column ``dims[k]`` replaced by
    ``values[a, k, s]``. Only the requested rows are written; the full grid never exists
    unless asked for.

    Differentiable: gradients reach ``anchors`` (every column but the traversed one) and
    ``values`` (the traversed column). ``out=`` records no graph and refuses inputs that require
    grad unless under ``torch.no_grad()``.

    Args:
        anchors: ``[A, D]`` latent codes (``[D]`` for one anchor).
        dims: the K traversed latents, each in ``[0, D)`` (an int, a list of ints, or a 1-D
            integer tensor or NumPy array).
        values: ``[S]`` (same for all), ``[K, S]`` (per latent) or ``[A, K, S]``; converted to
            the anchors' dtype.
        start: first grid row. count: rows to write (``None``: to the end).
        out: optional ``[count, D]`` contiguous buffer of the anchors' dtype and device, not
            overlapping the inputs.

    Returns:
        ``[count, D]`` codes in the anchors' dtype (``out`` when given).
    """
    fn = "latentsweep.traversal_codes"
    anchors = _checks.dense_tensor(fn, "anchors", anchors)
    if anchors.dim() == 1:
        anchors = anchors[None]
    dims = _checks.index_tensor(fn, dims, anchors.device)
    values = _checks.dense_tensor(fn, "values", values)
    start = _checks.integer(fn, "start", start)
    count = None if count is None else _checks.integer(fn, "count", count)
    # The data scans; everything else is checked by the op.
    _checks.finite(fn, "anchors", anchors)
    _checks.representable(fn, "values", values, anchors.dtype, _checks.CODES_IN_ANCHORS_DTYPE)
    values = _checks.as_dtype_of(values, anchors)
    if out is None:
        _checks.grid_codes_fit(fn, ops.traversal_codes, anchors, dims, values, start, count)
        return ops.traversal_codes(anchors, dims, values, start, count)
    out = _checks.dense_tensor(fn, "out", out)
    ops.traversal_codes_into(anchors, dims, values, start, count, out)
    return out


def _overflow_message(fn: str, mode: Mode, dtype: torch.dtype, span: float, anchors, logvar) -> str:
    """Why a traversal grid is not finite in ``dtype``: the mode, the argument and its limit."""
    largest = torch.finfo(dtype).max
    where = f"{fn}: mode={mode.name!r} gives values beyond the largest {dtype} ({largest:.4g})"
    if mode.needs_logvar:
        room = largest - float(anchors.abs().max()) if anchors.numel() else largest
        limit = 2.0 * math.log(max(room, 1.0) / span)
        return (
            f"{where}: anchors + span * exp(0.5 * logvar) overflows; for span={span:g}, logvar "
            f"must be <= about {limit:.1f}, got a maximum of {float(logvar.max()):.4g}"
        )
    if mode.needs_reference:
        return f"{where}: the reference's quantiles must lie within +-{largest:.4g}"
    if mode.centred:
        return f"{where}: anchors + span * prior_std must stay within +-{largest:.4g}"
    return f"{where}: span * prior_std must be <= {largest:.4g}"


def check_values_size(fn: str, num_anchors: int, num_dims: int, steps: int) -> None:
    """The values ``[A, K, S]`` are made in float64: their size in bytes must be an int64 (a clear
    error before any size check multiplies them)."""
    if num_anchors * num_dims * steps * torch.float64.itemsize > _checks.INT64_MAX:
        raise ValueError(
            f"{fn}: A * K * steps = {num_anchors * num_dims * steps} values, whose size in bytes "
            "overflows int64"
        )


def traversal_values(
    anchors: torch.Tensor | Posterior,
    *,
    mode: str = "prior",
    span: float = 2.0,
    steps: int = 11,
    dims=None,
    logvar: torch.Tensor | None = None,
    prior_std: float = 1.0,
    reference: torch.Tensor | Posterior | None = None,
    directions=None,
) -> torch.Tensor:
    """The values each traversed latent (or direction) takes: ``[A, K, S]``.

    The modes are defined in :data:`latentsweep.modes.MODE_TABLE` (what each needs, and its
    values). With ``t = linspace(-span, span, steps)`` (``torch.linspace`` semantics):

    - ``"prior"`` (default): ``anchors[a, d] + t * prior_std``; centred on the inferred
      mean, over the range the prior gives a latent. Use this for VAEs.
    - ``"absolute"``: ``t * prior_std`` for every anchor: the prior's plausible range.
    - ``"quantile"``: ``prior_std * ndtri(linspace(ndtr(-span), ndtr(span), steps))``: the same
      ends, equally spaced in prior probability (computed from the lower tail, so the ends
      stay at ``+-span * prior_std``; ``span <= 37.5``, where ``ndtr(-span)`` still is a
      normal float64).
    - ``"posterior"``: ``anchors[a, d] + t * exp(0.5 * logvar[a, d])``; needs ``logvar``.
      Shows how certain the encoder is; usually moves latents far too little to see anything.
    - ``"empirical"``: per dim, the quantiles (linear interpolation, as ``torch.quantile``) of
      ``reference[:, d]`` at levels ``linspace(ndtr(-span), ndtr(span), steps)``; for plain
      autoencoders, whose latents have no prior.

    With ``directions`` (K unit vectors u, instead of ``dims``) every mode keeps its meaning
    along each direction, because the projection of N(0, I) on a unit vector is N(0, 1): the
    coordinate ``<anchors[a], u>`` replaces ``anchors[a, d]`` ("prior"), the posterior SD along
    u is ``sqrt(sum_d u_d^2 exp(logvar[a, d]))`` ("posterior"), and "empirical" uses the
    quantiles of ``reference @ u``. The values are coordinates along u: pass them to
    :func:`direction_codes`.

    Args:
        anchors: ``[A, D]`` (``[D]`` for one anchor), or ``[A, *latent_shape]`` for structured
            latents (flattened: ``dims`` are then flat indices, see :mod:`latentsweep.latent_shape`),
            or a :class:`Posterior` (its ``mu``, and its ``logvar`` unless one is given), as
            ``traverse`` takes them.
        dims: ``None`` for all D.
        logvar: ``[A, D]`` (mode "posterior"). reference: ``[M, D]`` codes (mode "empirical"),
            or a :class:`Posterior` (its means); both may have the anchors' latent shape.
        directions: ``[K, D]`` tensor or :class:`Directions` (normalised here; a zero or
            non-finite direction is an error), instead of ``dims``; ``[K, *latent_shape]`` for
            structured anchors.

    Returns:
        ``[A, K, S]`` in the anchors' dtype and device. A grid that would not be finite in
        that dtype (a huge ``logvar``, ``float16`` anchors far out) is refused with a
        ``ValueError`` naming the mode, the argument and its limit.
    """
    return values_for("latentsweep.traversal_values", anchors, mode=mode, span=span, steps=steps, dims=dims,
                      logvar=logvar, prior_std=prior_std, reference=reference, directions=directions)


def values_for(fn: str, anchors, *, mode, span, steps, dims, logvar, prior_std, reference, directions,
               unit_rows: bool = False) -> torch.Tensor:
    """:func:`traversal_values` with its errors named by the caller's function ``fn`` (a user of
    ``traverse`` called ``traverse``, not ``traversal_values``). ``unit_rows``: the ``[K, D]``
    directions are the float64 unit rows of :func:`normalised` already (traverse's grid
    normalises them once, for its codes and these values)."""
    from .posterior import unwrapped

    anchors, logvar, reference = unwrapped(anchors, logvar, reference)  # as traverse takes a Posterior
    if isinstance(anchors, torch.Tensor) and anchors.dim() not in (1, 2):  # structured latents: flattened
        anchors, latent_shape = flat_codes(fn, "anchors", anchors, what="A")
        logvar = like_anchors(fn, "logvar", logvar, latent_shape, what="A")
        reference = like_anchors(fn, "reference", reference, latent_shape, what="M")
        directions = flat_directions(fn, directions, latent_shape)
    anchors = _as_anchors(fn, anchors)
    _checks.finite(fn, "anchors", anchors)
    entry, span, steps, prior_std = checked_options(fn, mode=mode, span=span, steps=steps, prior_std=prior_std,
                                                    logvar=logvar, reference=reference)
    if directions is not None:
        if dims is not None:
            raise ValueError(f"{fn}: give dims (coordinates) or directions, not both")
        if not entry.directions:
            raise ValueError(f"{fn}: mode={entry.name!r} does not work along directions")
        anchors, logvar, reference = _along_directions(fn, anchors, directions, entry, logvar, reference, unit_rows)
    # The values would not be finite in the anchors' dtype (nor could linspace be built).
    largest = torch.finfo(anchors.dtype).max
    scale = prior_std if entry.uses_prior_std else 1.0
    if span * scale > largest:
        name = "span * prior_std" if entry.uses_prior_std else "span"
        raise ValueError(
            f"{fn}: {name} must be <= {largest:.4g} (the largest {anchors.dtype}), "
            f"got {span * scale:.4g}"
        )
    if entry.max_span is not None and span > entry.max_span:
        raise ValueError(
            f"{fn}: mode={entry.name!r} needs span <= {entry.max_span} (beyond it the prior's tail "
            f"probability ndtr(-span) underflows float64), got {span:g}"
        )
    num_anchors, latent_dim = anchors.shape
    every_dim = dims is None
    if not every_dim:
        dims = _checks.dims(fn, dims, latent_dim, anchors.device)
    num_dims = latent_dim if every_dim else dims.numel()
    check_values_size(fn, num_anchors, num_dims, steps)
    _checks.fits_in_memory(fn, f"the values [A={num_anchors}, K={num_dims}, S={steps}] and their temporaries",
                           _values_bytes(entry, anchors.dtype, num_anchors, num_dims, steps), anchors.device,
                           "pass fewer steps, anchors or dims")
    if entry.needs_logvar:
        if logvar is None:
            raise ValueError(f"{fn}: mode={entry.name!r} needs logvar ([A, D], from the encoder)")
        logvar = _logvar_like(fn, logvar, anchors)
    if entry.needs_reference:
        if reference is None:
            raise ValueError(f"{fn}: mode={entry.name!r} needs reference ([M, D] codes of the data)")
        reference = _checks.tensor(fn, "reference", reference, ndims=(2,))
        if reference.shape[1] != latent_dim or reference.shape[0] < 1:
            raise ValueError(
                f"{fn}: reference must be [M, {latent_dim}] with M >= 1, got {tuple(reference.shape)}"
            )
        _checks.same_device(fn, anchors=anchors, reference=reference)
        _checks.finite(fn, "reference", reference)
        # (with dims, the traversed columns' copy below, and the sort's blocks)
        columns_bytes = 0 if every_dim else reference.element_size() * reference.shape[0] * num_dims
        _checks.fits_in_memory(fn, f"the quantiles' sorted copy of reference [M={reference.shape[0]}, K={num_dims}]",
                               columns_bytes + modes.empirical_quantiles_bytes(reference.shape[0], num_dims),
                               anchors.device, "pass a smaller reference")
    # The traversed columns only (anchors or logvar expanded from one row to D = 10^12 were
    # copied whole, or an arange(D) made, for one dim: not refused, the allocator failed), the
    # anchors in the compute dtype: low precision is computed in float32 and rounded once at the end.
    if not every_dim:
        anchors = anchors[:, dims]
        logvar = logvar[:, dims] if entry.needs_logvar else None
        reference = reference[:, dims] if entry.needs_reference else None
    compute = torch.float64 if anchors.dtype == torch.float64 else torch.float32
    anchors_c = anchors.to(compute)
    inputs = modes.ModeInputs(
        anchors=anchors_c, dims=torch.arange(num_dims, device=anchors.device), span=span,
        t=torch.linspace(-span, span, steps, dtype=compute, device=anchors.device),
        prior_std=prior_std,
        logvar=logvar if entry.needs_logvar else None, reference=reference if entry.needs_reference else None,
    )
    values = entry.compute(inputs).to(anchors.dtype).contiguous()
    # The extremes, one pass without temporaries (NaN and Inf reach them): isfinite's masks took
    # 7 bytes a float32 value, beside the 4 of the values and more than this function's memory
    # check counted.
    if values.numel() and not all(map(math.isfinite, _checks.extremes(_checks.distinct_values(values)))):
        raise ValueError(_overflow_message(fn, entry, anchors.dtype, span, anchors_c, logvar))
    return values


def checked_options(fn: str, *, mode, span, steps, prior_std, logvar, reference, used: bool = True) -> tuple:
    """``(mode entry, span, steps, prior_std)`` checked, and a ``logvar`` or ``reference`` the
    values do not use (``used=False``: explicit values; or a mode without them) checked for what
    it is, so that no argument goes unchecked: ``logvar="x"`` ran in mode 'prior'. The values'
    own checks of those they use (shape against the anchors, finite) come later."""
    entry = modes.lookup(fn, mode)
    checked = (entry, _checks.positive_float(fn, "span", span), _checks.integer(fn, "steps", steps, low=1),
               _checks.positive_float(fn, "prior_std", prior_std))
    if logvar is not None and not (used and entry.needs_logvar):
        _checks.tensor(fn, "logvar", logvar, ndims=(1, 2))
    if reference is not None and not (used and entry.needs_reference):
        _checks.tensor(fn, "reference", reference, ndims=(2,))
    return checked


def _values_bytes(mode: Mode, dtype: torch.dtype, num_anchors: int, num_dims: int, steps: int) -> int:
    """What computing the values allocates at its peak (only the values themselves were counted:
    float16 values of a one-latent grid took 6 times their size, "quantile" 12 and "empirical"
    24, so a grid refused by nothing was killed for memory): per value, the result, the float32
    buffer of float16/bfloat16 values and the finiteness scan; per step, ``t`` and its scaled copy
    (and the prior levels' float64 temporaries); "empirical"'s float64 quantiles per dim."""
    size = torch.finfo(dtype).bits // 8
    compute = 8 if dtype == torch.float64 else 4
    per_value = size + 1 + (compute if compute != size else 0)
    per_step = 3 * compute + (64 if mode.uses_levels else 0) + (40 * num_dims if mode.needs_reference else 0)
    return num_anchors * num_dims * steps * per_value + steps * per_step


def _logvar_like(fn: str, logvar, anchors: torch.Tensor) -> torch.Tensor:
    """``logvar`` checked against the ``[A, D]`` anchors (``[D]`` for one anchor, as the anchors
    may be), as ``[A, D]``; a wrong shape is reported as given."""
    logvar = _checks.tensor(fn, "logvar", logvar, ndims=(1, 2))
    as_rows = logvar[None] if logvar.dim() == 1 else logvar
    if as_rows.shape != anchors.shape:
        expected = tuple(anchors.shape) if anchors.shape[0] != 1 else f"{tuple(anchors.shape)} or {(anchors.shape[1],)}"
        raise ValueError(f"{fn}: logvar must have the anchors' shape {expected}, got {tuple(logvar.shape)}")
    _checks.same_device(fn, anchors=anchors, logvar=as_rows)
    _checks.finite(fn, "logvar", as_rows)
    return as_rows


def _logvar_along(logvar: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """``[A, K]`` log sum_d u_kd^2 exp(logvar_ad), float64, as a log-sum-exp of ``logvar_ad +
    2 log|u_kd|`` over the dims each direction uses: neither exp overflows nor underflows to 0
    (shifted by the row's largest over all dims, a direction along dims 745 nats below it got
    SD 0; and a weight u_kd^2 below 1e-308 (an entry of 1e-200) was 0, which left a direction
    with no variance at all, log 0 = -inf, refused as a non-finite logvar). One direction at a
    time: [A, D] temporaries, not [A, K, D]."""
    columns = []
    for direction in u:
        used = direction != 0
        columns.append(torch.logsumexp(logvar[:, used] + 2.0 * torch.log(direction[used].abs()), dim=1))
    return torch.stack(columns, dim=1)


def _along_directions(fn: str, anchors: torch.Tensor, directions, mode: Mode, logvar, reference, unit_rows: bool):
    """The anchors, logvar and reference as seen along K unit directions: ``[A, K]``
    coordinates, ``[A, K]`` log-variances along each direction, ``[M, K]`` coordinates.
    ``unit_rows``: ``directions`` are float64 unit rows already (see :func:`values_for`)."""
    from .directions import Directions

    # Normalised in float64 (what the coordinates are computed in): float16 directions normalised
    # in float16 moved the coordinates by ~1e-3 from those along traverse's unit vectors (made
    # in float64), so the middle step of mode "prior" was not the anchor.
    vectors = directions if unit_rows else normalised(
        fn, directions.vectors if isinstance(directions, Directions) else directions, dtype=torch.float64)
    latent_dim = anchors.shape[1]
    if vectors.shape[1] != latent_dim:
        raise ValueError(f"{fn}: directions must be [K, D={latent_dim}], got shape {tuple(vectors.shape)}")
    _checks.same_device(fn, anchors=anchors, directions=vectors)
    num_anchors, num_dirs = anchors.shape[0], vectors.shape[0]
    _checks.fits_in_memory(fn, f"the anchors in float64 [A={num_anchors}, D={latent_dim}] and their coordinates",
                           8 * num_anchors * (latent_dim + num_dirs), anchors.device, "pass fewer anchors")
    u = vectors  # float64
    along = anchors.double() @ u.T
    if mode.centred:  # the modes centred on the anchors' coordinates: those must be numbers of their dtype
        _coordinates_fit(fn, "the anchors'", along, anchors.dtype, "anchors")
    along = along.to(anchors.dtype)
    if mode.needs_logvar and logvar is not None:
        logvar = _logvar_like(fn, logvar, anchors)
        logvar = _logvar_along(logvar.double(), u)
    if mode.needs_reference and reference is not None:
        reference = _checks.tensor(fn, "reference", reference, ndims=(2,))
        if reference.shape[1] != latent_dim or reference.shape[0] < 1:
            raise ValueError(f"{fn}: reference must be [M, {latent_dim}] with M >= 1, got {tuple(reference.shape)}")
        _checks.same_device(fn, anchors=anchors, reference=reference)
        _checks.finite(fn, "reference", reference)
        _checks.fits_in_memory(fn, f"the reference in float64 [M={reference.shape[0]}, D={latent_dim}] and its coordinates",
                               8 * reference.shape[0] * (latent_dim + num_dirs), anchors.device, "pass a smaller reference")
        reference = reference.double() @ u.T
        _coordinates_fit(fn, "the reference's", reference, torch.float64, "reference")
    return along, logvar, reference


def _coordinates_fit(fn: str, whose: str, coordinates: torch.Tensor, dtype: torch.dtype, name: str) -> None:
    """The float64 coordinates of finite codes along unit directions (up to sqrt(D) times their
    largest entry) within ``dtype``'s range: beyond it they were refused as a non-finite
    ``reference``, or with advice on ``logvar``, neither of which was the cause."""
    if not coordinates.numel():
        return
    low, high = _checks.extremes(_checks.distinct_values(coordinates))
    reach, largest = max(-low, high), torch.finfo(dtype).max
    if not reach <= largest:
        advice = f"pass smaller {name}" + ("" if dtype == torch.float64 else f" or float64 {name}")
        raise ValueError(f"{fn}: {whose} coordinates along the directions reach {reach:.4g}, beyond the "
                         f"largest {dtype} ({largest:.4g}); {advice}")
