"""Structured latents: codes of shape ``[N, *latent_shape]`` (e.g. ``[N, 4, 32, 32]`` for a
spatial VAE), seen by everything else as flat ``[N, D]`` rows with ``D = prod(latent_shape)``.

The rule, written once: a code tensor's first axis counts the codes, the rest is the latent
shape; ``[D]`` is one flat code. Flat indices (``dims``) number the latent's elements in
row-major order, as ``torch.flatten`` and ``numpy.ravel_multi_index`` do. Directions are
``[K, *latent_shape]`` or already flat ``[K, D]``.
"""

from __future__ import annotations

import math

import torch

from . import _checks
from .directions import Directions


def flat_codes(fn: str, name: str, codes, *, what: str = "N") -> tuple[torch.Tensor, tuple[int, ...]]:
    """``codes [N, *latent_shape]`` (``[D]`` for one flat code) as ``([N, D], latent_shape)``,
    a view where possible. ``what`` names the first axis in messages (``"A"``, ``"M"``)."""
    codes = _checks.dense_tensor(fn, name, codes)
    if codes.dim() == 0:
        raise ValueError(f"{fn}: {name} must be [{what}, *latent_shape] (or [D] for one code), got a 0-D tensor")
    codes = _checks.tensor(fn, name, codes, ndims=(codes.dim(),))  # the dtype
    codes = codes[None] if codes.dim() == 1 else codes
    latent_shape = tuple(codes.shape[1:])
    if codes.shape[0] == 0 or math.prod(latent_shape) == 0:
        raise ValueError(
            f"{fn}: {name} must hold at least one code of at least one latent ([{what} >= 1, *latent_shape] "
            f"with no zero-sized axis), got shape {tuple(codes.shape)}"
        )
    return codes.reshape(codes.shape[0], -1), latent_shape


def like_anchors(fn: str, name: str, value, latent_shape: tuple[int, ...], *, what: str) -> torch.Tensor | None:
    """``value [N, *latent_shape]`` (or ``[N, D]``, or ``[D]`` for one) as ``[N, D]``; None stays
    None. Other shapes are left for the caller's own shape check to name."""
    if value is None or not isinstance(value, torch.Tensor):
        return value
    if len(latent_shape) > 1 and value.dim() == len(latent_shape) + 1 and tuple(value.shape[1:]) == latent_shape:
        return value.reshape(value.shape[0], -1)
    return value


def flat_directions(fn: str, directions, latent_shape: tuple[int, ...]):
    """Directions for codes of ``latent_shape``: a :class:`Directions` (flat vectors) stays as it
    is; a tensor ``[K, *latent_shape]`` becomes ``[K, D]``; ``[K, D]`` and ``[D]`` pass through
    (their width is checked where they are normalised)."""
    if isinstance(directions, Directions) or not isinstance(directions, torch.Tensor):
        return directions
    if len(latent_shape) > 1:
        if tuple(directions.shape) == latent_shape:  # one direction
            return directions.reshape(1, -1)
        if directions.dim() == len(latent_shape) + 1 and tuple(directions.shape[1:]) == latent_shape:
            return directions.reshape(directions.shape[0], -1)
        if directions.dim() != 2:
            raise ValueError(
                f"{fn}: directions must be [K, *latent_shape] = [K, {', '.join(map(str, latent_shape))}] or flat "
                f"[K, D={math.prod(latent_shape)}] for these anchors, got shape {tuple(directions.shape)}"
            )
    return directions


def coordinate_labels(dims: torch.Tensor, latent_shape: tuple[int, ...]) -> tuple[str, ...]:
    """``"z3"`` for latent 3 of a flat code; ``"z[1,0,2]"`` (the multi-index) for a structured one."""
    if len(latent_shape) <= 1:
        return tuple(f"z{int(d)}" for d in dims.tolist())
    labels = []
    for flat in dims.tolist():
        index = []
        for size in reversed(latent_shape):
            flat, rest = divmod(flat, size)
            index.append(rest)
        labels.append("z[" + ",".join(str(i) for i in reversed(index)) + "]")
    return tuple(labels)


def direction_labels(directions) -> tuple[str, ...]:
    """The directions' names, with the share of the codes' variance when known
    (``"PC1 (34%)"``); ``"u0" .. "uK-1"`` for a plain tensor."""
    if not isinstance(directions, Directions):
        return tuple(f"u{k}" for k in range(directions.shape[0]))
    ratio = directions.explained_variance_ratio
    if ratio is None:
        return tuple(directions.names)
    return tuple(f"{name} ({float(share):.0%})" for name, share in zip(directions.names, ratio.tolist()))
