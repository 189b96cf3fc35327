"""The latents a report draws of a traversal, and ``report(pictures=...)``: their outputs from a
sweep of those latents alone, beside a traversal of every latent kept for its statistics (and
likewise the first directions of a direction sweep, which its grid draws).

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


def drawn_directions(fn: str, result: TraversalResult, max_dims: int | None) -> int:
    """How many directions (the first) the report's grid of ``result`` draws: ``max_dims``, or
    with None all of them up to the pictures' bound (with the grid's warning when it cuts)."""
    count = result.directions.shape[0]
    limit = _common.panel_limit(fn, count, max_dims, "direction")
    return count if limit is None else min(count, limit)


def pictured_results(fn: str, pictures, named: dict, along: dict, diagnosis,
                     max_dims: int | None) -> tuple[dict, dict]:
    """``(name -> the result the pictures of results[name] are drawn from, name -> the result
    the grids of directions[name] are drawn from)``: ``pictures[name]`` where given (checked: a
    sweep of the same grid, with outputs, holding every latent, or the first directions, that
    the report draws of it), else the result itself."""
    if pictures is None:
        return dict(named), dict(along)
    if not isinstance(pictures, Mapping):
        raise TypeError(f"{fn}: pictures must be a mapping name -> TraversalResult (names of results= or "
                        f"directions=), got {type(pictures).__name__}")
    shown, shown_along = dict(named), dict(along)
    for key, picture in pictures.items():
        name = str(key)
        if name in named and name in along:
            raise ValueError(f"{fn}: pictures has {name!r}, the name of a result and of a direction sweep: give "
                             "them different names")
        if name not in named and name not in along:
            raise ValueError(f"{fn}: pictures has {name!r}, which names none of the results {sorted(named)} nor of "
                             f"the direction sweeps {sorted(along)}")
        label = f"pictures[{name!r}]"
        if not isinstance(picture, TraversalResult):
            raise TypeError(f"{fn}: {label} must be a TraversalResult, got {type(picture).__name__}")
        if name in along:
            _check_first_directions(fn, label, picture, along[name], f"directions[{name!r}]", max_dims)
            shown_along[name] = picture
            continue
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
    return shown, shown_along


def _check_same_start(fn: str, label: str, picture: TraversalResult, result: TraversalResult, of: str) -> None:
    """``picture`` keeps its outputs and starts from ``result``'s anchors, with as many steps,
    the same mode and the same outputs."""
    if picture.outputs is None:
        raise ValueError(f"{fn}: {label} holds no outputs (traversed with keep_outputs=False): the pictures are "
                         "drawn from its outputs")
    same = (picture.anchors.shape == result.anchors.shape and bool(torch.equal(picture.anchors, result.anchors))
            and picture.values.shape[2] == result.values.shape[2] and picture.mode == result.mode
            and tuple(picture.out_shape) == tuple(result.out_shape) and picture.output_space == result.output_space)
    if not same:
        raise ValueError(f"{fn}: {label} is not a traversal of {of}'s grid: it must start from the same anchors, "
                         "with as many steps, the same mode and the same outputs")


def _check_first_directions(fn: str, label: str, picture: TraversalResult, result: TraversalResult, of: str,
                            max_dims: int | None) -> None:
    """``picture`` traverses the first directions of ``result`` (at least the ones its grid
    draws) over the same grid, with its outputs kept."""
    if picture.directions is None or result.directions is None:
        raise ValueError(f"{fn}: {label} and {of} must traverse directions (a direction sweep's grid is drawn "
                         "from its first directions)")
    _check_same_start(fn, label, picture, result, of)
    count, wanted = picture.directions.shape[0], drawn_directions(fn, result, max_dims)
    if count < wanted:
        raise ValueError(f"{fn}: {label} holds {count} directions, fewer than the {wanted} the report draws of {of}: "
                         f"traverse its first {wanted} directions (directions=...[:{wanted}])")
    if not (torch.equal(picture.directions, result.directions[:count])
            and list(picture.labels) == list(result.labels[:count])):
        raise ValueError(f"{fn}: {label} does not traverse the first {count} directions of {of} (the same vectors "
                         f"and names, in order): traverse directions=...[:{wanted}] of the same directions")
    if not torch.equal(picture.values, result.values[:, :count]):
        raise ValueError(f"{fn}: {label} is not a traversal of {of}'s grid: its values along the directions differ "
                         "(another span, prior_std or reference)")


def _check_same_grid(fn: str, label: str, picture: TraversalResult, result: TraversalResult, of: str) -> None:
    """``picture`` traverses latents of ``result`` over the same grid (anchors, steps, mode and
    outputs; each latent's values equal), with its outputs kept."""
    if picture.directions is not None or result.directions is not None:
        raise ValueError(f"{fn}: {label} and {of} must traverse latents (pictures= of results= draws latent "
                         "traversals; a direction sweep's pictures go under its name in directions=)")
    _check_same_start(fn, label, picture, result, of)
    position = {d: k for k, d in enumerate(result.dims.tolist())}
    for k, d in enumerate(picture.dims.tolist()):
        if d not in position:
            raise ValueError(f"{fn}: {label} traverses latent {picture.labels[k]}, which {of} does not")
        if not torch.equal(picture.values[:, k], result.values[:, position[d]]):
            raise ValueError(f"{fn}: {label} is not a traversal of {of}'s grid: the values of latent "
                             f"{picture.labels[k]} differ (another span, prior_std or reference)")
