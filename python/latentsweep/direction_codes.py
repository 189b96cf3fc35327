"""Traversals along directions: unit directions (``unit_directions``) and the codes of any chunk
of the anchors x directions x steps grid (``direction_codes``, compiled)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from . import _checks
from ._extension import ops

if TYPE_CHECKING:  # (directions.py imports this module)
    from .directions import Directions


def _as_directions(fn: str, directions) -> torch.Tensor:
    """A finite ``[K, D]`` tensor (``[D]`` for one direction) with K, D >= 1."""
    directions = _checks.tensor(fn, "directions", directions, ndims=(1, 2))
    directions = directions[None] if directions.dim() == 1 else directions
    if directions.shape[0] < 1 or directions.shape[1] < 1:
        raise ValueError(f"{fn}: directions must be [K, D] with K >= 1 and D >= 1, got shape {tuple(directions.shape)}")
    _checks.finite(fn, "directions", directions)
    return directions


def unit_directions(directions: torch.Tensor) -> torch.Tensor:
    """Each direction scaled to unit length: ``directions`` ``[K, D]`` (``[D]`` for one
    direction) in, ``[K, D]`` out, in the input's dtype (norms computed in float64).

    Raises ``ValueError`` for a zero or non-finite direction, which has no unit vector.
    """
    return normalised("latentsweep.unit_directions", directions)


# Bytes per value that normalising takes at its peak: float64 copies of the directions, over their
# largest entries, and the unit rows.
NORMALISING_BYTES = 3 * 8


def normalised(fn: str, directions, dtype: torch.dtype | None = None) -> torch.Tensor:
    """:func:`unit_directions` with errors in the name of the public function ``fn``, rounded
    once from float64 to ``dtype`` (default: the directions' own)."""
    directions = _as_directions(fn, directions)
    # Said before the float64 copies are made (a broadcast view [10^6, 10^5] of 4 bytes raised the
    # allocator's error for 800 GB from inside torch).
    _checks.codes_fit_in_memory(fn, f"normalising the directions [K={directions.shape[0]}, D={directions.shape[1]}]",
                                directions, "pass fewer directions", bytes_per_value=NORMALISING_BYTES)
    scaled, largest = _checks.by_largest_entry(directions.double())
    zero = (largest[:, 0] == 0).nonzero().flatten()
    if zero.numel():
        raise ValueError(
            f"{fn}: direction(s) {zero.tolist()[:10]} are zero and have no direction; "
            "drop them or give a non-zero vector"
        )
    return (scaled / torch.linalg.vector_norm(scaled, dim=1, keepdim=True)).to(dtype or directions.dtype)


def _in_anchors_precision(fn: str, directions: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    """Directions of a narrower floating dtype than the anchors', unit within sqrt(eps) of their
    own dtype (the op's rule for its dtype, cpp/ops/direction_codes.cpp), normalised in float64
    and rounded once to the anchors' dtype; anything else as it is (the op judges it), and
    directions that require grad (their derivative is the formula's, not a normalisation's)."""
    if directions.requires_grad or not (directions.is_floating_point() and anchors.is_floating_point() and directions.numel()
            and torch.finfo(directions.dtype).eps > torch.finfo(anchors.dtype).eps and directions.dim() == 2):
        return directions
    norms = torch.linalg.vector_norm(directions.double(), dim=1)
    if not bool(((norms - 1).abs() <= math.sqrt(torch.finfo(directions.dtype).eps)).all()):
        return directions
    return normalised(fn, directions, dtype=anchors.dtype)


def direction_codes(
    anchors: torch.Tensor,
    directions: torch.Tensor | Directions,
    values: torch.Tensor,
    *,
    start: int = 0,
    count: int | None = None,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Writes rows ``[start, start + count)`` of the direction grid.

    The grid is A anchors x K directions x S steps in row-major order: row ``g`` (with
    ``a, k, s = unravel(g, (A, K, S))``) is
    ``anchors[a] + (values[a, k, s] - <anchors[a], u_k>) * u_k`` with ``u_k = directions[k]``:
    the anchor with its coordinate along ``u_k`` replaced by ``values[a, k, s]``. For one-hot
    directions this is exactly :func:`traversal_codes`. Only the requested rows are written.

    The projection is summed in float64 in a fixed order, so results are the same for every
    chunking, thread count and device; float16/bfloat16 grids are computed in float32 and
    rounded once.

    Differentiable in ``anchors``, ``directions`` (the formula's derivative, not through a
    normalisation) and ``values``. ``out=`` records no graph and refuses inputs that require
    grad unless under ``torch.no_grad()``.

    Args:
        anchors: ``[A, D]`` latent codes (``[D]`` for one anchor).
        directions: ``[K, D]`` unit vectors (``[D]`` for one; or a :class:`Directions`, whose
            ``vectors`` are normalised in float64 and rounded to the anchors' dtype, as
            :func:`traverse` does, unless they require grad); see :func:`unit_directions`.
            Cast to the anchors' dtype; a norm further than sqrt(eps) of that dtype from 1 is
            an error. Directions of a narrower dtype (float32 for float64 anchors) that are
            unit to their own precision are normalised again in float64 first, as
            :func:`traverse` does (cast as they are, their norms were off by float32's rounding).
        values: ``[S]`` (same for all), ``[K, S]`` (per direction) or ``[A, K, S]``: the
            coordinate along each direction.
        start: first grid row. count: rows to write (``None``: to the end).
        out: optional ``[count, D]`` contiguous buffer of the anchors' dtype and device, not
            overlapping the inputs.

    Returns:
        ``[count, D]`` codes in the anchors' dtype (``out`` when given).

    Raises:
        ValueError: bad inputs (named), or codes beyond the dtype's largest value (only anchors
            or values near it can give them; they are found in the written codes, so ``out``
            then holds infinities).
    """
    fn = "latentsweep.direction_codes"
    from .directions import Directions  # (directions.py imports this module)

    anchors = _checks.dense_tensor(fn, "anchors", anchors)
    if anchors.dim() == 1:
        anchors = anchors[None]
    of_directions = isinstance(directions, Directions)
    if of_directions:  # (as traverse and traversal_values take them)
        directions = directions.vectors
    directions = _checks.dense_tensor(fn, "directions", directions)
    if directions.dim() == 1:
        directions = directions[None]
    values = _checks.dense_tensor(fn, "values", values)
    start = _checks.integer(fn, "start", start)
    count = None if count is None else _checks.integer(fn, "count", count)
    # The data scans; everything else (unit length included) is checked by the op.
    anchor_range = _checks.finite(fn, "anchors", anchors)
    if of_directions and anchors.is_floating_point() and not directions.requires_grad:
        # A Directions' vectors are unit to 1e-5 (float32 ones cast to float64 among them), not
        # to the op's sqrt(eps): normalised in float64 and rounded once to the anchors' dtype, as
        # traverse does, so the rows are traverse's codes (PCs .to(torch.float64) were refused).
        directions = normalised(fn, directions, dtype=anchors.dtype)
    direction_range = _checks.finite(fn, "directions", directions)
    value_range = _checks.representable(fn, "values", values, anchors.dtype, _checks.CODES_IN_ANCHORS_DTYPE)
    directions = _in_anchors_precision(fn, directions, anchors)
    directions, values = _checks.as_dtype_of(directions, anchors), _checks.as_dtype_of(values, anchors)
    if out is None:
        _checks.grid_codes_fit(fn, ops.direction_codes, anchors, directions, values, start, count, float32_buffer=True)
        codes = ops.direction_codes(anchors, directions, values, start, count)
    else:
        codes = _checks.dense_tensor(fn, "out", out)
        ops.direction_codes_into(anchors, directions, values, start, count, codes)
    _check_no_overflow(fn, codes, anchor_range, value_range, direction_range)
    return codes


# The op takes a direction as unit when its norm is within sqrt(eps) of its dtype of 1: at most
# 1 + 2**-5 (float16's).
_LONGEST_UNIT = 1.0 + 2.0**-5


def _check_no_overflow(fn: str, codes: torch.Tensor, anchor_range, value_range, direction_range) -> None:
    """A code is x - <x, u> u + v u, so with m = max|u_d| (<= |u| <= 1 + 2**-5) |code| <=
    max|x| + (max|x| sqrt(D) |u| + max|v|) m: only anchors or values near the dtype's largest
    value can overflow, and only then are the codes scanned. (m = 1 let v = 65504 along a
    float16 u of norm 1.001 through as inf.)"""
    if anchor_range is None or codes.numel() == 0:
        return
    largest = torch.finfo(codes.dtype).max
    x, v = max(-anchor_range[0], anchor_range[1]), max(-value_range[0], value_range[1]) if value_range else 0.0
    # (measured before the directions were rounded to the anchors' dtype: by at most its eps)
    m = max(-direction_range[0], direction_range[1]) * (1.0 + torch.finfo(codes.dtype).eps) if direction_range \
        else _LONGEST_UNIT
    if x + (x * math.sqrt(codes.shape[1]) * _LONGEST_UNIT + v) * m <= largest or bool(torch.isfinite(codes).all()):
        return
    raise ValueError(
        f"{fn}: the codes exceed the largest {codes.dtype} ({largest:.3g}): anchors + (values - <anchors, u>) u "
        "overflows for these anchors and directions; pass float64 anchors (or smaller anchors or values)"
    )
