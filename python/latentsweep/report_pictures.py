"""The latents a report draws of a traversal, and ``report(pictures=...)``: their outputs from a
sweep of those latents alone, beside a traversal of every latent kept for its statistics.

A report draws at most ``max_dims`` traversals of each result (a VAE's latents by KL, others by
effect), but it drew them from the result's own outputs, so a traversal of every latent kept
every output: explain of a conv VAE with [4, 16, 16] latents and 3 x 128 x 128 outputs held
11 GB of outputs (12.4 GiB peak) to draw 12 latents of one anchor. explain now traverses every
latent with ``keep_outputs=False`` for the effects and sensitivities, and the drawn latents again
with their outputs, for the grids, GIFs and response curves.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from .plots import _common
from .result import TraversalResult


def drawn_dims(fn: str, result: TraversalResult, diagnosis, max_dims: int | None) -> list[int]:
    """The latents (indices into D) the report's pictures of ``result`` draw, in the order of
    ``result.dims``: its ``max_dims`` of largest KL (a VAE's diagnosis), else of largest effect;
    all of them with ``max_dims=None`` (up to the pictures' bound, with its warning)."""
    positions, _, _ = _common.dim_order(fn, result, diagnosis, "auto", max_dims)
    dims = result.dims.tolist()
    return [dims[p] for p in sorted(int(p) for p in positions)]


def pictured_results(fn: str, pictures, named: dict, diagnosis, max_dims: int | None) -> dict:
    """``name -> the result the pictures of results[name] are drawn from``: ``pictures[name]``
    where given (checked: a latent sweep of ``results[name]``'s grid, with outputs, holding every
    latent the report draws of it), else ``results[name]`` itself."""
    if pictures is None:
        return dict(named)
    if not isinstance(pictures, Mapping):
        raise TypeError(f"{fn}: pictures must be a mapping name -> TraversalResult (the names of results=), got "
                        f"{type(pictures).__name__}")
    shown = dict(named)
    for key, picture in pictures.items():
        name = str(key)
        if name not in named:
            raise ValueError(f"{fn}: pictures has {name!r}, which is none of the results' names {sorted(named)}")
        label = f"pictures[{name!r}]"
        if not isinstance(picture, TraversalResult):
            raise TypeError(f"{fn}: {label} must be a TraversalResult, got {type(picture).__name__}")
        _check_same_grid(fn, label, picture, named[name], f"results[{name!r}]")
        wanted = drawn_dims(fn, named[name], diagnosis, max_dims)
        missing = sorted(set(wanted) - set(picture.dims.tolist()))
        if missing:
            raise ValueError(
                f"{fn}: {label} lacks {len(missing)} of the latents the report draws of results[{name!r}] "
                f"({', '.join(named[name].labels_of(missing))}): traverse dims={wanted} (the "
                f"{'max_dims=' + str(max_dims) if max_dims is not None else 'latents'} of largest "
                f"{'KL' if diagnosis is not None and diagnosis.is_variational else 'effect'})"
            )
        shown[name] = picture
    return shown


def _check_same_grid(fn: str, label: str, picture: TraversalResult, result: TraversalResult, of: str) -> None:
    """``picture`` traverses latents of ``result`` over the same grid (anchors, steps, mode and
    outputs; each latent's values equal), with its outputs kept."""
    if picture.outputs is None:
        raise ValueError(f"{fn}: {label} holds no outputs (traversed with keep_outputs=False): the pictures are "
                         "drawn from its outputs")
    if picture.directions is not None or result.directions is not None:
        raise ValueError(f"{fn}: {label} and {of} must traverse latents (pictures= draws latent traversals; "
                         "directions are drawn from their own result)")
    same = (picture.anchors.shape == result.anchors.shape and bool(torch.equal(picture.anchors, result.anchors))
            and picture.values.shape[2] == result.values.shape[2] and picture.mode == result.mode
            and tuple(picture.out_shape) == tuple(result.out_shape) and picture.output_space == result.output_space)
    if not same:
        raise ValueError(f"{fn}: {label} is not a traversal of {of}'s grid: it must start from the same anchors, "
                         "with as many steps, the same mode and the same outputs")
    position = {d: k for k, d in enumerate(result.dims.tolist())}
    for k, d in enumerate(picture.dims.tolist()):
        if d not in position:
            raise ValueError(f"{fn}: {label} traverses latent {picture.labels[k]}, which {of} does not")
        if not torch.equal(picture.values[:, k], result.values[:, position[d]]):
            raise ValueError(f"{fn}: {label} is not a traversal of {of}'s grid: the values of latent "
                             f"{picture.labels[k]} differ (another span, prior_std or reference)")
