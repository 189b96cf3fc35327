"""Traversals along directions: unit directions (``unit_directions``) and the codes of any chunk
of the anchors x directions x steps grid (``direction_codes``, compiled)."""

from __future__ import annotations

import torch

from . import _checks
from ._extension import ops
from .traversal import _as_anchors, _expand_values


def _as_directions(fn: str, directions, latent_dim: int | None = None) -> torch.Tensor:
    """A finite ``[K, D]`` tensor (``[D]`` for one direction) with K >= 1."""
    directions = _checks.tensor(fn, "directions", directions, ndims=(1, 2))
    directions = directions[None] if directions.dim() == 1 else directions
    if directions.shape[0] < 1 or (latent_dim is not None and directions.shape[1] != latent_dim):
        width = "D" if latent_dim is None else f"D={latent_dim}"
        raise ValueError(f"{fn}: directions must be [K, {width}] with K >= 1, got shape {tuple(directions.shape)}")
    _checks.finite(fn, "directions", directions)
    return directions


def _unit_tolerance(dtype: torch.dtype) -> float:
    """How far from 1 the norm of a direction stored in `dtype` may be: sqrt(machine epsilon),
    far above the rounding of a normalised vector and far below any meaningful scale."""
    return torch.finfo(dtype).eps ** 0.5


def unit_directions(directions: torch.Tensor) -> torch.Tensor:
    """Each direction scaled to unit length: ``[K, D]`` (``[D]`` for one direction) in, ``[K, D]``
    out, in the input's dtype (norms computed in float64).

    Raises ``ValueError`` for a zero or non-finite direction, which has no unit vector.
    """
    fn = "latentsweep.unit_directions"
    directions = _as_directions(fn, directions)
    norms = torch.linalg.vector_norm(directions.double(), dim=1)
    zero = (norms == 0).nonzero().flatten()
    if zero.numel():
        raise ValueError(
            f"{fn}: direction(s) {zero.tolist()[:10]} are zero and have no direction; "
            "drop them or give a non-zero vector"
        )
    return (directions.double() / norms[:, None]).to(directions.dtype)


def direction_codes(
    anchors: torch.Tensor,
    directions: torch.Tensor,
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

    Args:
        anchors: ``[A, D]`` latent codes (``[D]`` for one anchor).
        directions: ``[K, D]`` unit vectors (``[D]`` for one); see :func:`unit_directions`.
            Cast to the anchors' dtype; a norm further than sqrt(eps) from 1 is an error.
        values: ``[S]`` (same for all), ``[K, S]`` (per direction) or ``[A, K, S]``: the
            coordinate along each direction.
        start: first grid row. count: rows to write (``None``: to the end).
        out: optional ``[count, D]`` contiguous buffer of the anchors' dtype and device.

    Returns:
        ``[count, D]`` codes in the anchors' dtype (``out`` when given).
    """
    fn = "latentsweep.direction_codes"
    anchors = _as_anchors(fn, anchors)
    _checks.finite(fn, "anchors", anchors)
    directions = _as_directions(fn, directions, anchors.shape[1])
    _checks.same_device(fn, anchors=anchors, directions=directions)
    directions = directions.to(anchors.dtype)
    norms = torch.linalg.vector_norm(directions.double(), dim=1)
    off = ((norms - 1).abs() > _unit_tolerance(anchors.dtype)).nonzero().flatten()
    if off.numel():
        raise ValueError(
            f"{fn}: directions must have unit length (use latentsweep.unit_directions); "
            f"direction {int(off[0])} has norm {float(norms[off[0]]):.6g}"
        )
    num_dims = directions.shape[0]
    values = _expand_values(fn, values, anchors, num_dims)
    total = anchors.shape[0] * num_dims * values.shape[2]
    start = _checks.integer(fn, "start", start, low=0, high=total)
    if count is None:
        count = total - start
    count = _checks.integer(fn, "count", count, low=0, high=total - start)
    if count * anchors.shape[1] * 8 > _checks.INT64_MAX:
        raise ValueError(
            f"{fn}: count * D = {count * anchors.shape[1]} values, whose size in bytes overflows int64"
        )
    if out is None:
        return ops.direction_codes(anchors, directions, values, start, count)
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
    ops.direction_codes_into(anchors, directions, values, start, count, out)
    return out
