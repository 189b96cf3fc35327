"""A traversal along directions (principal components, centroid-to-centroid directions, any
vector): one row per direction, labelled with its name and the variance it carries."""

from __future__ import annotations

import numpy as np
import torch

from .. import _checks
from .._shares import format_share
from . import _common
from ._images import image_shape_of, rgb_tile, shrunk_size
from .traversal_grid import _mosaic

_FN = "latentsweep.plots.direction_grid"
_AXIS_LABELS = ("coordinate along the direction", "offset from the anchor along the direction")


def _values_dtype(values) -> torch.dtype:
    """The dtype the user's values were computed in: rows that should agree (mode "prior"'s
    offsets) differ by its rounding. float64 for integers, lists and anything else."""
    if isinstance(values, torch.Tensor):
        return values.dtype if values.is_floating_point() else torch.float64
    dtype = getattr(values, "dtype", None)
    if isinstance(dtype, np.dtype) and dtype.kind == "f":
        return torch.from_numpy(np.empty(0, dtype)).dtype
    return torch.float64


def direction_grid(
    outputs,
    directions,
    *,
    values=None,
    anchor_values=None,
    image_shape=None,
    vmin: float | None = None,
    vmax: float | None = None,
    cmap: str = "gray",
    tile_inches: float = 0.75,
    max_dims: int | None = None,
    max_tile_size: int | None = None,
    title: str | None = None,
    path=None,
):
    """Draws decoded traversals of one anchor along K directions as an image grid.

    Args:
        outputs: ``[K, S, *out_shape]`` decoder outputs (e.g. the decoder applied to
            ``direction_codes(anchor, directions.vectors, values)`` viewed as ``[K, S, ...]``),
            images ``[H, W]`` / ``[C, H, W]`` (C = 1, 3, or 4: RGBA, drawn over white), or flat
            with ``image_shape``.
        directions: the :class:`Directions` traversed (K of them): rows are labelled with
            their names and, when known, their share of the codes' variance.
        values: ``[S]`` or ``[K, S]`` coordinates along each direction, for the column labels
            (``[K, S]`` rows that differ are labelled by their range instead).
        anchor_values: ``[K]`` the anchor's own coordinate along each direction
            (``result.anchor_values[a]``): columns are then labelled with the offset from it
            when that is the same in every row (e.g. mode "prior").
        image_shape: ``(H, W)`` or ``(C, H, W)`` to view flat outputs as images.
        vmin, vmax: output values mapped to black and white (default [0, 1] when all outputs
            lie there, else their range, far outliers clipped as in :func:`traversal_grid`).
        cmap: colour map for one-channel images.
        tile_inches: size of one tile. title: the figure's title. path: also save it there.
        max_dims: at most this many rows, the first directions (``None``: at most 48, with a
            warning when there are more). Columns: at most 48 steps, evenly spaced (the first
            and the last included), with a warning when there are more.
        max_tile_size: outputs larger than this many pixels a side are drawn averaged down, as
            in :func:`traversal_grid` (default: drawn as they are).

    Returns:
        a matplotlib ``Figure`` with one image axes (row tick labels: direction names) and, for
        one-channel images, a colour bar.
    """
    path = _common.output_path(_FN, path)
    _common.check_title(_FN, title)
    tile_inches = _common.tile_inches(_FN, tile_inches)
    max_dims = _checks.optional_integer(_FN, "max_dims", max_dims, low=1)
    max_tile_size = _checks.optional_integer(_FN, "max_tile_size", max_tile_size, low=1)
    from ..directions import Directions

    if not isinstance(directions, Directions):
        raise TypeError(f"{_FN}: directions must be a latentsweep.Directions, got {type(directions).__name__}")
    array = _common.user_array(_FN, "outputs", outputs)
    num_dirs = len(directions)
    if array.ndim < 3 or array.shape[0] != num_dirs or array.shape[1] < 1:
        raise ValueError(
            f"{_FN}: outputs must be [K={num_dirs}, S, *out_shape] (one row per direction), got shape {tuple(array.shape)}"
        )
    shape = image_shape_of(_FN, array.shape[2:], image_shape)
    cmap = _common.check_cmap(_FN, cmap)
    steps = array.shape[1]
    if values is not None:
        dtype = _values_dtype(values)
        values = _common.user_array(_FN, "values", values)
        if values.shape not in ((steps,), (num_dirs, steps)):
            raise ValueError(f"{_FN}: values must be [S={steps}] or [K={num_dirs}, S={steps}], got shape {tuple(values.shape)}")
        values = np.broadcast_to(values, (num_dirs, steps))
    if anchor_values is not None:
        anchor_values = _common.user_array(_FN, "anchor_values", anchor_values)
        if anchor_values.shape != (num_dirs,):
            raise ValueError(f"{_FN}: anchor_values must be [K={num_dirs}], got shape {tuple(anchor_values.shape)}")
    vmin, vmax = _common.colour_range(_FN, vmin, vmax, array, image_shape=shape)
    limit = _common.panel_limit(_FN, num_dirs, max_dims, "direction")
    if limit is not None and limit < num_dirs:  # (120 directions were a 418 x 8244 pixel picture)
        array, directions, num_dirs = array[:limit], directions[:limit], limit
        values = None if values is None else values[:limit]
        anchor_values = None if anchor_values is None else anchor_values[:limit]
    columns = _common.column_steps(_FN, steps)
    rows = list(array)  # (views: the drawn tiles are painted one at a time)
    if len(columns) < steps:
        rows, steps = [row[columns] for row in rows], len(columns)
        values = None if values is None else values[:, columns]

    def paint(image):
        return rgb_tile(image, shape, vmin=vmin, vmax=vmax, cmap=cmap, max_side=max_tile_size)

    mosaic, column_centres, row_centres = _mosaic(rows, [], paint, shrunk_size(shape, max_tile_size))
    # The columns' values (or offsets from the anchor) when every row shares them, by the rule of
    # traversal_grid: up to the rounding of the values' dtype.
    column_values, axis_label = (None, "step") if values is None else \
        _common.grid_columns(values, anchor_values, _AXIS_LABELS, dtype)
    same_columns = column_values is not None
    step_labels = _common.format_values(column_values) if same_columns else [str(int(s)) for s in columns]
    ratio = directions.explained_variance_ratio
    row_labels = []
    for k, name in enumerate(directions.names):
        lines = [_common.short_label(name)]
        if ratio is not None:
            lines.append(f"{format_share(float(ratio[k]), digits=1)} var")  # (0.99996 is not "100.0%")
        if values is not None and not same_columns:
            lines.append(" .. ".join(_common.format_values([values[k, 0], values[k, -1]])))
        row_labels.append("\n".join(lines))

    title = title if title is not None else f"Traversal along {num_dirs} direction(s)"
    figure = _common.new_figure(_common.grid_width(steps * tile_inches + 2.4, title, axis_label),
                                num_dirs * tile_inches + 1.6, fixed_aspect=True)
    ax = figure.add_subplot()
    ax.imshow(mosaic, interpolation="nearest")
    ax.set_xticks(column_centres, step_labels, fontsize=8)
    ax.set_yticks(row_centres, row_labels, fontsize=8)
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_xlabel(axis_label)
    ax.set_ylabel(f"direction ({directions.source})" if directions.source else "direction")
    ax.set_title(title)
    if len(shape) == 2 or shape[0] == 1:  # (without it, grey levels of outputs beyond [0, 1] had no scale)
        _common.colour_bar(figure, ax, vmin=vmin, vmax=vmax, cmap=cmap, label="output",
                           shrink=min(1.0, 3.0 / max(num_dirs, 1) + 0.3), extend=_common.clipped_ends(vmin, vmax, *rows))
    return _common.finish(figure, path, fn=_FN)
