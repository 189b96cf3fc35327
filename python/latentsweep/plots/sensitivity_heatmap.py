"""Which latent moves which output feature: the sensitivity matrix as a heatmap."""

from __future__ import annotations

import math

import numpy as np

from .. import _checks
from . import _common
from ._features import feature_labels, pick_features

_FN = "latentsweep.plots.sensitivity_heatmap"


def sensitivity_heatmap(
    result,
    *,
    diagnosis=None,
    order: str = "auto",
    max_dims: int | None = None,
    feature_names=None,
    features=None,
    max_features: int = 40,
    normalize: bool = False,
    annotate: bool | None = None,
    cmap: str = "viridis",
    title: str | None = None,
    path=None,
):
    """Draws ``result.sensitivity`` ``[K, F]``: rows are latents, columns output features, and
    each cell the mean absolute slope of the feature along the latent.

    Needs no decoded outputs, so it works for sweeps run with ``keep_outputs=False``.

    Args:
        result: a :class:`TraversalResult`.
        diagnosis, order, max_dims: which latents, in which order (see :func:`traversal_grid`).
        feature_names: F column names (default ``f0, f1, ...``).
        features: the columns to draw, as indices or names (default: all when F <=
            ``max_features``, else the ``max_features`` most sensitive, in their order).
        normalize: divide each column by its largest value, so every feature shows which
            latent moves it most whatever its scale.
        annotate: write the value in each cell (default: when there are at most 300 cells).
        cmap: matplotlib colour map.
        title: the figure's title.
        path: also save the figure there.

    Returns:
        a matplotlib ``Figure``: the heatmap axes (y tick labels ``z<dim>``, x tick labels the
        feature names) and its colour bar.
    """
    path = _common.output_path(_FN, path)
    _common.check_title(_FN, title)
    result = _common.check_result(_FN, result)
    cmap = _common.check_cmap(_FN, cmap)
    _checks.boolean(_FN, "normalize", normalize)
    if annotate is not None:
        _checks.boolean(_FN, "annotate", annotate)
    positions, scores, score_name = _common.dim_order(_FN, result, diagnosis, order, max_dims)
    num_features = math.prod(result.out_shape)
    names = feature_labels(_FN, feature_names, num_features)
    sensitivity = _common.finite_result_values(_FN, "result.sensitivity", _common.as_array(result.sensitivity)[positions])
    chosen = pick_features(_FN, features, names, sensitivity, max_features)
    matrix = sensitivity[:, chosen].astype(np.float64)
    if normalize:
        peak = matrix.max(axis=0, keepdims=True)
        matrix = np.divide(matrix, peak, out=np.zeros_like(matrix), where=peak > 0)
    rows, columns = matrix.shape
    if annotate is None:
        annotate = rows * columns <= 300

    figure = _common.new_figure(min(0.55 * columns + 3.0, 24.0), min(0.45 * rows + 2.2, 24.0))
    ax = figure.add_subplot()
    # Slopes are >= 0: the scale starts at 0, and all-zero slopes are 0 on a [0, 1] scale (matplotlib
    # widened an empty range to [-0.1, 0.1], and every cell took the middle colour).
    peak = float(np.nanmax(matrix)) if matrix.size else 0.0
    vmax = peak if peak > 0 else 1.0
    ax.imshow(matrix, cmap=cmap, aspect="auto", interpolation="nearest", vmin=0.0, vmax=vmax)
    row_labels = _common.row_labels(result, positions)
    if score_name is not None:
        row_labels = [f"{label} ({_common.score_text(float(s), score_name)})" for label, s in zip(row_labels, scores)]
    ax.set_yticks(range(rows), row_labels, fontsize=8)
    ax.set_xticks(range(columns), [_common.short_label(names[f]) for f in chosen], fontsize=8, rotation=60, ha="right", rotation_mode="anchor")
    ax.set_xlabel("output feature")
    ax.set_ylabel(_common.traversal_noun(result) + (f" (sorted by {score_name})" if score_name else ""))
    if annotate:
        threshold = np.nanmax(matrix) * 0.6 if matrix.size else 0.0
        for (r, c), value in np.ndenumerate(matrix):
            ax.text(c, r, f"{value:.2g}", ha="center", va="center", fontsize=6.5,
                    color="black" if value > threshold else "white")
    slope = "mean |d output / d z|" if result.directions is None else "mean |d output / d coordinate along u|"
    label = "share of the feature's largest slope" if normalize else slope
    _common.colour_bar(figure, ax, vmin=0.0, vmax=vmax, cmap=cmap, label=label)
    shown = f" ({columns} of {num_features} features)" if columns < num_features else ""
    if title is None:
        title = f"Sensitivity: which {_common.traversal_noun(result)} moves which feature{shown}"
        if not peak > 0:  # (one colour without a word: a sweep of one step, or constant outputs)
            title += "\nevery slope is 0" + (" (traversals of one step have no slope)" if result.values.shape[2] == 1 else "")
    ax.set_title(title)
    return _common.finish(figure, path, fn=_FN)
