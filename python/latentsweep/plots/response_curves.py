"""Response curves for non-image outputs: how each output feature follows each latent."""

from __future__ import annotations

import math

import numpy as np

from .. import _checks
from . import _common
from ._features import MAX_CURVE_FEATURES, feature_colour, feature_labels, pick_features

_FN = "latentsweep.plots.response_curves"
BANDS = ("sd", "quantile", None)


def response_curves(
    result,
    *,
    diagnosis=None,
    order: str = "auto",
    max_dims: int | None = None,
    feature_names=None,
    features=None,
    max_features: int = MAX_CURVE_FEATURES,
    band: str | None = "sd",
    sharey: bool = True,
    ncols: int = 3,
    title: str | None = None,
    path=None,
):
    """Plots every output feature against the latent value, one panel per traversed latent.

    Each line is the mean over anchors of feature f at each step; the band around it shows how
    much anchors disagree. The x axis is the latent value when all anchors share the values
    (modes "absolute", "quantile", "empirical"), else the offset from each anchor's own value
    (mode "prior": ``z - z_anchor`` in [-span, span] prior SDs).

    Args:
        result: a :class:`TraversalResult` with outputs ``[A, K, S, *out_shape]`` (features
            are the flattened output, F values).
        diagnosis, order, max_dims: which latents, in which order (see :func:`traversal_grid`).
        feature_names: F names for the legend (default ``f0, f1, ...``).
        features: the features to draw, as indices or names (default: all when F <=
            ``max_features``, else the ``max_features`` with the largest sensitivity summed over
            the drawn latents; the title states which rule chose them). Each feature keeps one
            colour (by its index), so colours compare across panels and figures.
        band: ``"sd"`` (mean +/- 1 SD over anchors), ``"quantile"`` (10th-90th percentile) or
            ``None``.
        sharey: one y scale for all panels, so panels compare at a glance.
        ncols: panels per row.
        title: the figure's title.
        path: also save the figure there.

    Returns:
        a matplotlib ``Figure`` with one axes per drawn latent (titled ``z<dim>``) and one
        legend naming the features.
    """
    path = _common.output_path(_FN, path)
    _common.check_title(_FN, title)
    result = _common.check_result(_FN, result)
    _checks.choice(_FN, "band", band, BANDS)
    _checks.boolean(_FN, "sharey", sharey)
    ncols = _checks.integer(_FN, "ncols", ncols, low=1)
    positions, scores, score_name = _common.dim_order(_FN, result, diagnosis, order, max_dims)
    num_features = math.prod(result.out_shape)
    names = feature_labels(_FN, feature_names, num_features)
    sensitivity = _common.finite_result_values(_FN, "result.sensitivity", _common.as_array(result.sensitivity)[positions])
    chosen = pick_features(_FN, features, names, sensitivity, max_features)
    # [A, K', S, F'] in float64: the mean and SD over anchors of outputs near float32's range stay finite.
    outputs = _common.all_outputs(_FN, result)[:, positions][..., chosen].astype(np.float64)
    x, x_label = _common.curve_axis(result, positions)  # [K', S]

    count = len(positions)
    ncols = min(ncols, count)
    nrows = math.ceil(count / ncols)
    figure = _common.new_figure(3.6 * ncols + 1.8, 2.8 * nrows + 0.8)
    axes = figure.subplots(nrows, ncols, squeeze=False, sharey=sharey)
    headings = _common.row_labels(result, positions)
    mean = outputs.mean(axis=0)
    one_step = outputs.shape[2] == 1
    for i, ax in enumerate(axes.flat):
        if i >= count:
            ax.remove()  # unused cell of the last row
            continue
        for j, f in enumerate(chosen):
            colour = feature_colour(f, num_features)
            # (a line through one step is not drawn: sweeps of one step showed empty panels)
            ax.plot(x[i], mean[i, :, j], color=colour, lw=1.6, marker="o" if one_step else None,
                    label=_common.short_label(names[f]) if i == 0 else None)
            if band is not None and outputs.shape[0] > 1:
                low, high = _band(outputs[:, i, :, j], mean[i, :, j], band)
                if one_step:  # (a band one step wide has no area)
                    ax.vlines(x[i], low, high, color=colour, alpha=0.4, lw=4)
                else:
                    ax.fill_between(x[i], low, high, color=colour, alpha=0.15, lw=0)
        if x_label.startswith("offset"):
            ax.axvline(0.0, color="0.4", ls=":", lw=1)
        heading = headings[i]
        if score_name is not None:
            heading += f"  ({_common.score_text(float(scores[i]), score_name)})"
        ax.set_title(heading, fontsize=10)
        ax.set_xlabel(x_label, fontsize=8)
        ax.set_ylabel(result.output_space, fontsize=8)
        ax.grid(alpha=0.3)
    figure.legend(loc="outside right center", title="feature", fontsize=8)
    if len(chosen) == num_features:
        shown = f"{num_features} features"
    elif features is None:
        shown = f"{len(chosen)} of {num_features} features (largest sensitivity)"
    else:
        shown = f"{len(chosen)} of {num_features} features (chosen)"
    band_text = {"sd": ", band: +/- 1 SD over anchors", "quantile": ", band: 10-90% of anchors", None: ""}[band]
    figure.suptitle(
        title
        if title is not None
        else f"Response curves: mean over {outputs.shape[0]} anchor(s), {shown}{band_text} (mode {result.mode!r})"
    )
    return _common.finish(figure, path, fn=_FN)


def _band(per_anchor: np.ndarray, mean: np.ndarray, band: str):
    """``[A, S]`` values of one feature -> (low, high) ``[S]``."""
    if band == "sd":
        sd = per_anchor.std(axis=0)
        return mean - sd, mean + sd
    return np.quantile(per_anchor, 0.1, axis=0), np.quantile(per_anchor, 0.9, axis=0)
