"""The classic traversal picture: one row per latent, one column per step, for one anchor."""

from __future__ import annotations

import numpy as np

from .. import _checks
from . import _common
from ._images import image_shape_of, rgb_tile, shrunk_size, single_output

_FN = "latentsweep.plots.traversal_grid"
LABEL_POINTS = 9  # row/column labels: about 11 px in the report (90 dpi), 12.5 px at 100 dpi


def traversal_grid(
    result,
    *,
    anchor: int = 0,
    diagnosis=None,
    order: str = "auto",
    max_dims: int | None = None,
    image_shape=None,
    input=None,
    reconstruction=None,
    vmin: float | None = None,
    vmax: float | None = None,
    cmap: str = "gray",
    tile_inches: float = 0.75,
    max_tile_size: int | None = None,
    title: str | None = None,
    path=None,
):
    """Draws the decoded traversal of one anchor as an image grid.

    Rows are the traversed latents or directions (sorted by KL, by effect, or as traversed),
    named by ``result.labels``; columns the steps, labelled with the latent's value (the
    coordinate along a direction), or its offset from the anchor when each row starts from a
    different value. At most 48 steps are drawn: of more, 48 evenly spaced ones (the first and
    the last included), with a warning.

    Args:
        result: a :class:`TraversalResult` with image outputs ``[A, K, S, *out_shape]``:
            ``out_shape`` ``[H, W]`` or ``[C, H, W]`` (C = 1, 3, or 4: RGBA, drawn over white), or flat
            with ``image_shape``.
        anchor: which anchor (index into ``result.anchors``) to draw.
        diagnosis: a :class:`Diagnosis` of the same model; with it ``order="auto"`` sorts the
            rows by KL, largest first (latents only: directions are sorted by effect).
        order: ``"auto"`` (KL with a VAE diagnosis, else effect), ``"kl"``, ``"effect"``
            (``result.dim_effect``, largest first) or ``"dims"`` (as traversed).
        max_dims: draw only the first ``max_dims`` rows of that order.
        image_shape: ``(H, W)`` or ``(C, H, W)`` to view flat outputs ``[F]`` as images.
        input: the anchor's input image, ``[*out_shape]`` or ``[A, *out_shape]``; drawn as the
            first column, followed by its reconstruction.
        reconstruction: the reconstruction to draw after the input (same shapes as ``input``);
            default when ``input`` is given: ``result.anchor_outputs`` (the decoded anchor).
        vmin, vmax: the output values mapped to black and white (default [0, 1] when all
            outputs lie there, else their range; a few far outliers, beyond 100 times the
            others' range, are clipped with a warning and arrows on the colour bar).
        cmap: matplotlib colour map for one-channel images.
        tile_inches: size of one tile in the figure.
        max_tile_size: outputs larger than this many pixels a side are drawn averaged over
            blocks of f x f pixels, for the smallest whole f that fits (default: drawn as they
            are). The colour range is that of the outputs themselves.
        title: the figure's title (default says the anchor, mode and order).
        path: also save the figure there (``.png``, ``.pdf``, ``.svg``...).

    Returns:
        a matplotlib ``Figure`` with one image axes (tick labels: ``result.labels`` rows, step
        columns) and, for one-channel images, a colour bar.
    """
    path = _common.output_path(_FN, path)
    _common.check_title(_FN, title)
    tile_inches = _common.tile_inches(_FN, tile_inches)
    result = _common.check_result(_FN, result)
    num_anchors = result.values.shape[0]
    anchor = _checks.index(_FN, "anchor", anchor, num_anchors, what="anchor(s)")
    shape = image_shape_of(_FN, result.out_shape, image_shape)
    cmap = _common.check_cmap(_FN, cmap)
    max_tile_size = _checks.optional_integer(_FN, "max_tile_size", max_tile_size, low=1)
    positions, scores, score_name = _common.dim_order(_FN, result, diagnosis, order, max_dims)
    steps = _common.column_steps(_FN, result.values.shape[2])  # (at most 48 columns)
    outputs = _common.anchor_outputs(_FN, result, anchor, positions, steps)  # K' x [S', *out_shape]

    extras = []  # (label, output) columns before the traversal
    if input is not None:
        extras.append(("input", single_output(_FN, "input", input, result.out_shape, anchor, num_anchors)))
        if reconstruction is None:
            reconstruction = _common.as_array(result.anchor_outputs[anchor])
    if reconstruction is not None:
        extras.append(
            ("reconstruction", single_output(_FN, "reconstruction", reconstruction, result.out_shape, anchor, num_anchors))
        )
    vmin, vmax = _common.colour_range(_FN, vmin, vmax, *outputs, *(e for _, e in extras), image_shape=shape)

    def paint(image):
        return rgb_tile(image, shape, vmin=vmin, vmax=vmax, cmap=cmap, max_side=max_tile_size)

    mosaic, column_centres, row_centres = _mosaic(outputs, [e for _, e in extras], paint,
                                                  shrunk_size(shape, max_tile_size))

    values = _common.as_array(result.values)[anchor, positions][:, steps]  # [K', S']
    labels = _common.value_axis_labels(result)
    columns, axis_label = _common.grid_columns(values, _common.as_array(result.anchor_values)[anchor, positions],
                                               labels, dtype=result.values.dtype)
    if columns is not None:
        step_labels = _common.format_values(columns)
    else:  # each row has its own values: label steps by index, give each row its range
        step_labels = [str(int(s)) for s in steps]
        axis_label = f"step (each row's range of {'z' if result.directions is None else 'the coordinate'} is in its label)"
    row_labels = []
    for i, name in enumerate(_common.row_labels(result, positions)):
        lines = [name]
        if score_name is not None:
            lines.append(_common.score_text(float(scores[i]), score_name))
        if columns is None:
            lines.append(" .. ".join(_common.format_values([values[i, 0], values[i, -1]])))
        row_labels.append("\n".join(lines))

    rows, columns = len(outputs), len(steps) + len(extras)
    mode = f"mode {result.mode!r}"
    title = title if title is not None else f"Traversal of anchor {anchor} ({mode})"
    figure = _common.new_figure(_common.grid_width(columns * tile_inches + 2.4, title, axis_label),
                                rows * tile_inches + 1.6, fixed_aspect=True)
    ax = figure.add_subplot()
    ax.imshow(mosaic, interpolation="nearest")
    ax.set_xticks(column_centres, [label for label, _ in extras] + step_labels, fontsize=LABEL_POINTS)
    if len(step_labels) > 8:
        for label in ax.get_xticklabels()[len(extras):]:
            label.set_rotation(45)
    ax.set_yticks(row_centres, row_labels, fontsize=LABEL_POINTS)
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_xlabel(axis_label)
    ax.set_ylabel(_common.traversal_noun(result) + (f" (sorted by {score_name})" if score_name else ""))
    ax.set_title(title)
    if len(shape) == 2 or shape[0] == 1:
        _common.colour_bar(figure, ax, vmin=vmin, vmax=vmax, cmap=cmap, label=result.output_space,
                           shrink=min(1.0, 3.0 / max(rows, 1) + 0.3),
                           extend=_common.clipped_ends(vmin, vmax, *outputs, *(e for _, e in extras)))
    return _common.finish(figure, path, fn=_FN)


def _mosaic(rows, extras: list[np.ndarray], paint, tile: tuple[int, int]):
    """The tiles of ``rows`` (each a sequence of outputs, one per column; ``extras``: outputs
    drawn before them on every row, set apart by a wider gap) on a white background, painted a
    tile at a time by ``paint`` (an output -> its RGB tile of ``tile`` = (height, width) pixels);
    returns the image and the tick positions of columns and rows."""
    height, width = tile
    steps = len(rows[0])
    pad = max(1, round(0.08 * max(height, width)))
    gap = 4 * pad if extras else 0
    x = pad
    column_starts = []
    for i in range(len(extras) + steps):
        if i == len(extras):
            x += gap
        column_starts.append(x)
        x += width + pad
    mosaic = np.ones((pad + len(rows) * (height + pad), x, 3))
    row_starts = [pad + r * (height + pad) for r in range(len(rows))]
    extra_tiles = [paint(e) for e in extras]
    for r, top in enumerate(row_starts):
        for c, left in enumerate(column_starts):
            e = len(extras)
            mosaic[top : top + height, left : left + width] = extra_tiles[c] if c < e else paint(rows[r][c - e])
    column_centres = [left + (width - 1) / 2 for left in column_starts]
    row_centres = [top + (height - 1) / 2 for top in row_starts]
    return mosaic, column_centres, row_centres
