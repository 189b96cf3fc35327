"""Structured latents: codes of shape ``[N, *latent_shape]`` (e.g. ``[N, 4, 32, 32]`` for a
spatial VAE), seen by everything else as flat ``[N, D]`` rows with ``D = prod(latent_shape)``.

The rule, written once: a code tensor's first axis counts the codes, the rest is the latent
shape; ``[D]`` is one flat code. Flat indices (``dims``) number the latent's elements in
row-major order, as ``torch.flatten`` and ``numpy.ravel_multi_index`` do. Directions are
``[K, *latent_shape]`` or already flat ``[K, D]``. :func:`channel_directions` gives one
direction per channel.
"""

from __future__ import annotations

import math

import torch

from . import _checks
from ._shares import format_share
from .directions import Directions


def flat_codes(fn: str, name: str, codes, *, what: str = "N",
               allow_empty: bool = False) -> tuple[torch.Tensor, tuple[int, ...]]:
    """``codes [N, *latent_shape]`` (``[D]`` for one flat code) as ``([N, D], latent_shape)``,
    a view where possible. ``what`` names the first axis in messages (``"A"``, ``"M"``).
    ``allow_empty``: no codes (or latents) is no error (a Posterior's ``posterior[[]]``)."""
    codes = _checks.dense_tensor(fn, name, codes)
    if codes.dim() == 0:
        raise ValueError(f"{fn}: {name} must be [{what}, *latent_shape] (or [D] for one code), got a 0-D tensor")
    codes = _checks.tensor(fn, name, codes, ndims=(codes.dim(),))  # the dtype
    codes = codes[None] if codes.dim() == 1 else codes
    latent_shape = tuple(codes.shape[1:])
    if not allow_empty and (codes.shape[0] == 0 or math.prod(latent_shape) == 0):
        raise ValueError(
            f"{fn}: {name} must hold at least one code of at least one latent ([{what} >= 1, *latent_shape] "
            f"with no zero-sized axis), got shape {tuple(codes.shape)}"
        )
    return flat_rows(fn, name, codes, what), latent_shape


def flat_rows(fn: str, name: str, value: torch.Tensor, what: str) -> torch.Tensor:
    """``value [N, *shape]`` as ``[N, prod(shape)]``: a view where its strides allow, else a copy,
    checked to fit in memory first (a broadcast ``zeros(1, 1, 8, 8).expand(N, 4, 8, 8)`` holds
    a few values and flattens to N x 256 of them)."""
    rows, width = value.shape[0], math.prod(value.shape[1:])
    try:
        return value.view(rows, width)
    except RuntimeError:  # not expressible as a view: reshape copies
        _checks.fits_in_memory(fn, f"a flat copy of {name} [{what}={rows}, D={width}]",
                               rows * width * value.element_size(), value.device,
                               "its strides allow no flat view, so flattening copies it; pass fewer rows")
        return value.reshape(rows, width)


_SHAPE_TYPES = (tuple, list, torch.Size)


def _shape_axes(fn: str, latent_shape, such_as: str) -> tuple[int, ...]:
    """The axes of a latent shape as given: a tuple, list, torch.Size or 1-D array of positive
    ints. A dict or a set iterates too (its keys, in no order of axes), a 0-d array not at all."""
    if not isinstance(latent_shape, _SHAPE_TYPES) and not (
            hasattr(latent_shape, "__array__") and getattr(latent_shape, "ndim", 1) == 1):
        ndim = getattr(latent_shape, "ndim", None) if hasattr(latent_shape, "__array__") else None
        got = type(latent_shape).__name__ if ndim is None else f"a {ndim}-D {type(latent_shape).__name__}"
        raise TypeError(f"{fn}: latent_shape must be a tuple of ints {such_as}, got {got}")
    return tuple(_checks.integer(fn, "latent_shape[...]", n, low=1) for n in latent_shape)


def checked_latent_shape(fn: str, latent_shape, codes: torch.Tensor, given: tuple[int, ...], *,
                         name: str = "anchors", what: str = "A") -> tuple[int, ...]:
    """An explicit ``latent_shape=`` for ``codes [N, D]`` whose own shape is ``given``: a tuple of
    positive ints with ``prod == D``, equal to ``given`` when the codes are structured."""
    if latent_shape is None:
        return given
    shape = _shape_axes(fn, latent_shape, "such as (4, 8, 8)")
    if not shape:
        raise ValueError(f"{fn}: latent_shape must have at least one axis, got ()")
    if len(given) > 1 and shape != given:
        raise ValueError(f"{fn}: latent_shape={shape} but the {name} are [{what}, *{list(given)}]; "
                         "give one or the other")
    if math.prod(shape) != codes.shape[1]:
        raise ValueError(
            f"{fn}: latent_shape={shape} holds {math.prod(shape)} values but the codes have D={codes.shape[1]}"
        )
    return shape


def channel_directions(latent_shape, *, dtype: torch.dtype = torch.float32, device=None) -> Directions:
    """One unit direction per channel of a structured latent ``(C, *spatial)``, e.g. ``(4, 32, 32)``:
    direction c has every element of channel c equal to ``1 / sqrt(P)`` (P = prod(spatial), the
    channel's size) and zeros elsewhere, so moving along it shifts the whole channel uniformly.

    Ranges. A unit step along direction c moves each element of channel c by ``1 / sqrt(P)``
    (``1/32`` for a 32 x 32 channel); the coordinate along it is ``sqrt(P)`` times the channel's
    mean. Under the prior N(0, I) that coordinate is N(0, 1) like any projection, so mode
    ``"prior"`` with span 2 moves the channel's mean over its prior range: each element by only
    ``+-2 / sqrt(P)``, which is honest but often barely visible. To see what a channel does:

    - ``prior_std=math.sqrt(P)`` (modes "prior", "absolute", "quantile"): each element moves by
      ``+-span`` prior SDs, the whole channel at once (far outside the prior's typical set for
      the channel's mean; that is the point of the picture);
    - ``mode="empirical", reference=codes`` (the encoded data, ``[N, *latent_shape]``): the range
      the channel's mean actually spans in the data, usually the most readable choice for a
      trained model;
    - ``values=`` explicit coordinates, e.g. ``math.sqrt(P) * torch.linspace(-2, 2, 9)`` to set
      the per-element shift directly.

    Args:
        latent_shape: ``(C, *spatial)`` with C >= 1 channels (``(C,)`` gives one-hot directions).
        dtype, device: of the vectors.

    Returns:
        :class:`Directions` with ``vectors [C, D]`` (D = C * P, flat as ``torch.flatten``) named
        ``"channel 0" .. "channel C-1"``, ``source="channels"``, ``latent_shape``: traverse
        refuses them for anchors of another structured shape.
    """
    fn = "latentsweep.channel_directions"
    shape = _shape_axes(fn, latent_shape, "(C, *spatial) such as (4, 32, 32)")
    if not shape:
        raise ValueError(f"{fn}: latent_shape must be (C, *spatial) with at least the channel axis, got ()")
    if dtype not in _checks.FLOAT_DTYPES:
        raise TypeError(f"{fn}: dtype must be a floating dtype, got {dtype}")
    channels, size = shape[0], math.prod(shape[1:])
    device = _checks.usable_device(fn, _checks.device(fn, device) or torch.device("cpu"))
    # Dense [C, C * P] rows, C^2 P values (2^36 for a (4096, 64, 64) latent), which Directions'
    # unit check reads in float64: said before allocating.
    copy = 0 if dtype == torch.float64 else 8
    _checks.fits_in_memory(fn, f"the vectors [C={channels}, D={channels * size}]",
                           channels * channels * size * (dtype.itemsize + copy), device,
                           "pick the channels to traverse and pass their directions yourself "
                           "(Directions.from_vectors), or use fewer channels")
    vectors = torch.zeros(channels, channels, size, dtype=dtype, device=device)
    diagonal = torch.arange(channels, device=device)
    vectors[diagonal, diagonal] = 1.0 / math.sqrt(size)
    vectors = vectors.reshape(channels, -1)
    return Directions(vectors, tuple(f"channel {c}" for c in range(channels)), source="channels", latent_shape=shape)


def like_anchors(fn: str, name: str, value, latent_shape: tuple[int, ...], *, what: str) -> torch.Tensor | None:
    """``value [N, *latent_shape]`` (or ``[N, D]``, or ``[D]`` for one) as ``[N, D]``; None stays
    None. For flat codes every shape is left for the caller's own check to name."""
    if value is None or not isinstance(value, torch.Tensor) or len(latent_shape) == 1:
        return value
    if value.dim() == len(latent_shape) + 1 and tuple(value.shape[1:]) == latent_shape:
        return flat_rows(fn, name, value, what)
    if value.dim() in (1, 2) and value.shape[-1] == math.prod(latent_shape):
        return value
    raise ValueError(
        f"{fn}: {name} must be [{what}, *latent_shape] = [{what}, {', '.join(map(str, latent_shape))}] (or flat "
        f"[{what}, D={math.prod(latent_shape)}]) for these anchors, got shape {tuple(value.shape)}"
    )


def flat_directions(fn: str, directions, latent_shape: tuple[int, ...]):
    """Directions for codes of ``latent_shape``: a :class:`Directions` (flat vectors) stays as it
    is; a tensor ``[K, *latent_shape]`` becomes ``[K, D]``; ``[K, D]`` and ``[D]`` pass through
    (their width is checked where they are normalised). Directions that know their latent
    shape (:func:`channel_directions`, those computed from structured codes) must have the
    structured anchors' channels: C channels of D / C elements each, the blocks of the flat
    code a channel direction moves (its other axes may differ: (2, 3, 3) and (2, 9) have the
    same channel blocks)."""
    if isinstance(directions, Directions):
        known = directions.latent_shape
        if known is not None and len(latent_shape) > 1 and known[0] != latent_shape[0]:
            raise ValueError(
                f"{fn}: directions are for latents of shape {list(known)} ({known[0]} channel(s); "
                f"{directions.source}: {', '.join(directions.names[:3])}{', ...' if len(directions) > 3 else ''}) but "
                f"the anchors' latent shape is {list(latent_shape)} ({latent_shape[0]} channel(s)); make them for "
                f"this shape (e.g. channel_directions({tuple(latent_shape)}))"
            )
        return directions
    if not isinstance(directions, torch.Tensor):
        return directions
    if len(latent_shape) > 1:
        if tuple(directions.shape) == latent_shape:  # one direction
            return flat_rows(fn, "directions", directions[None], "K")
        if directions.dim() == len(latent_shape) + 1 and tuple(directions.shape[1:]) == latent_shape:
            return flat_rows(fn, "directions", directions, "K")
        # (one flat [D] direction passes, as it does for flat anchors: it was refused here alone)
        if directions.dim() != 2 and not (directions.dim() == 1 and directions.shape[0] == math.prod(latent_shape)):
            raise ValueError(
                f"{fn}: directions must be [K, *latent_shape] = [K, {', '.join(map(str, latent_shape))}] or flat "
                f"[K, D={math.prod(latent_shape)}] (or [D] for one) for these anchors, got shape "
                f"{tuple(directions.shape)}"
            )
    return directions


def latent_label(dim: int, latent_shape: tuple[int, ...] | None = None) -> str:
    """The one name of latent ``dim`` (a flat index): ``"z3"`` for a flat code (or no shape
    known); ``"z[1,0,2]"``, its multi-index, for a structured one."""
    if latent_shape is None or len(latent_shape) <= 1:
        return f"z{int(dim)}"
    flat, index = int(dim), []
    for size in reversed(latent_shape):
        flat, rest = divmod(flat, size)
        index.append(rest)
    return "z[" + ",".join(str(i) for i in reversed(index)) + "]"


def consecutive_runs(dims: list[int]) -> list[tuple[int, int]]:
    """Sorted indices as runs of consecutive ones, ``[0, 1, 2, 3, 7]`` -> ``[(0, 3), (7, 7)]``."""
    runs: list[list[int]] = []
    for d in dims:
        if runs and d == runs[-1][1] + 1:
            runs[-1][1] = d
        else:
            runs.append([d, d])
    return [(first, last) for first, last in runs]


def latents_text(dims: list[int], latent_shape: tuple[int, ...]) -> str:
    """Sorted flat indices of a structured latent as text, by :func:`latent_label`: runs of
    consecutive ones as ``"z[0,1,1]-z[1,0,0]"``, runs of whole channels (a collapsed channel of a
    spatial VAE) as the slice that indexes them, ``"z[1,:,:]"`` or ``"z[1:3,:,:]"``."""
    size, rest = math.prod(latent_shape[1:]), ",:" * (len(latent_shape) - 1)
    parts = []
    for first, last in consecutive_runs(dims):
        if first % size == 0 and (last + 1) % size == 0:  # whole channels first // size .. last // size
            low, high = first // size, last // size
            parts.append(f"z[{low}{rest}]" if low == high else f"z[{low}:{high + 1}{rest}]")
        else:
            parts.append(latent_label(first, latent_shape) + ("" if first == last else f"-{latent_label(last, latent_shape)}"))
    return ", ".join(parts)


def coordinate_labels(dims: torch.Tensor, latent_shape: tuple[int, ...]) -> tuple[str, ...]:
    """:func:`latent_label` of each of ``dims``."""
    return tuple(latent_label(d, latent_shape) for d in dims.tolist())


def direction_labels(directions) -> tuple[str, ...]:
    """The directions' names, with the share of the codes' variance when known
    (``"PC1 (34%)"``); ``"u0" .. "uK-1"`` for a plain tensor ``[K, D]``, ``"u0"`` for one
    direction ``[D]``."""
    if not isinstance(directions, Directions):
        return tuple(f"u{k}" for k in range(1 if directions.dim() == 1 else directions.shape[0]))
    ratio = directions.explained_variance_ratio
    if ratio is None:
        return tuple(directions.names)
    return tuple(f"{name} ({format_share(float(share))})" for name, share in zip(directions.names, ratio.tolist()))
