"""Clusters at a glance: a table of the centroids on the latents that separate the clusters
best, the decoded centroids, and a decoded path from one cluster to another."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .. import _checks
from ..latent_shape import latent_label
from . import _common
from ._images import image_shape_of, rgb_tile, shrunk_size

_FN = "latentsweep.plots.cluster_panel"


def cluster_panel(
    clusters,
    *,
    centroid_outputs=None,
    interpolation=None,
    pair=None,
    top: int = 6,
    max_clusters: int | None = None,
    image_shape=None,
    vmin: float | None = None,
    vmax: float | None = None,
    cmap: str = "gray",
    max_tile_size: int | None = None,
    title: str | None = None,
    path=None,
):
    """Draws the clusters of the codes.

    Panels, top to bottom: the centroid table (a row per cluster with its label and size; a
    column per latent, the ``top`` latents with the largest eta squared; cells show the
    centroid's value, coloured by how far it lies from the latent's mean over clusters); the
    decoded centroids (when ``centroid_outputs`` is given); and an interpolation strip from
    cluster ``pair[0]`` to ``pair[1]`` (when ``interpolation`` is given).

    Args:
        clusters: a :class:`Clusters`.
        centroid_outputs: ``[C, *out_shape]`` the decoder at the centroids (images, or flat
            with ``image_shape``).
        interpolation: ``[S, *out_shape]`` the decoder along a path between two centroids
            (e.g. ``interpolation_codes(c[i], c[j], path="slerp")``), or the
            :class:`Interpolation` of that one path (``interpolate(decoder, c[i], c[j])``), with
            ``pair=(i, j)``; or a mapping ``{(i, j): [S, *out_shape] or Interpolation}`` for one
            strip per pair (e.g. the closest and the farthest clusters). At most 48 steps of a path are drawn, evenly spaced (its
            ends included), with a warning when there are more.
        top: how many latents the table shows.
        max_clusters: draw only the ``max_clusters`` largest clusters (rows of the table and
            decoded centroids, in label order); default: all, or the DEFAULT_MAX_PANELS
            largest with a warning when there are more, as the other pictures' ``max_dims``.
        image_shape, vmin, vmax, cmap, max_tile_size: as for :func:`traversal_grid`.
        title: the figure's title. path: also save the figure there.

    Returns:
        a matplotlib ``Figure``: the table axes first, then one axes per image strip.
    """
    path = _common.output_path(_FN, path)
    _common.check_title(_FN, title)
    from ..clusters import Clusters

    if not isinstance(clusters, Clusters):
        raise TypeError(f"{_FN}: clusters must be a latentsweep.Clusters, got {type(clusters).__name__}")
    top = _checks.integer(_FN, "top", top, low=1)
    max_clusters = _checks.optional_integer(_FN, "max_clusters", max_clusters, low=1)
    max_tile_size = _checks.optional_integer(_FN, "max_tile_size", max_tile_size, low=1)
    cmap = _common.check_cmap(_FN, cmap)
    num_clusters = clusters.num_clusters
    # The pictures' one bound on rows (300 clusters drew a 24,100-pixel-wide panel): the largest.
    limit = _common.panel_limit(_FN, num_clusters, max_clusters, "cluster", keyword="max_clusters")
    shown = np.sort(np.argsort(-clusters.sizes.numpy(), kind="stable")[:limit])
    names = [_common.short_label(clusters.label_values[c]) for c in shown]
    strips = []  # (label, images [n, *out_shape], tick labels)
    if centroid_outputs is not None:
        centroids = _common.user_array(_FN, "centroid_outputs", centroid_outputs)
        if centroids.ndim < 2 or centroids.shape[0] != num_clusters:
            raise ValueError(
                f"{_FN}: centroid_outputs must be [C={num_clusters}, *out_shape], got shape {tuple(centroids.shape)}"
            )
        strips.append(("decoded centroids", centroids if len(shown) == num_clusters else centroids[shown], names))
    for (i, j), path_outputs in _paths(interpolation, pair, clusters):
        if path_outputs.ndim < 2 or path_outputs.shape[0] < 2:
            raise ValueError(f"{_FN}: interpolation must be [S >= 2, *out_shape], got shape {tuple(path_outputs.shape)}")
        steps = _common.column_steps(_FN, path_outputs.shape[0])  # (at most 48 tiles in a strip)
        if len(steps) < path_outputs.shape[0]:  # (else no copy)
            path_outputs = path_outputs[steps]
        ticks = [f"{t:.2g}" for t in np.linspace(0, 1, steps[-1] + 1)[steps]]
        ticks[0], ticks[-1] = str(clusters.label_values[i]), str(clusters.label_values[j])
        strips.append((f"from cluster {clusters.label_values[i]} to {clusters.label_values[j]}", path_outputs, ticks))
    shapes = {tuple(images.shape[1:]) for _, images, _ in strips}
    if len(shapes) > 1:
        raise ValueError(f"{_FN}: centroid_outputs and interpolation must have the same output shape, got {sorted(shapes)}")
    shape = image_shape_of(_FN, shapes.pop(), image_shape) if strips else None
    if strips:
        vmin, vmax = _common.colour_range(_FN, vmin, vmax, *(images for _, images, _ in strips), image_shape=shape)

    eta = _common.as_array(clusters.eta_squared)
    latents = np.argsort(-eta, kind="stable")[: min(top, eta.size)]
    table = _common.as_array(clusters.centroids)[:, latents]  # [C, T]
    spread = table.std(0)  # over all clusters, drawn or not
    standardised = ((table - table.mean(0)) / np.where(spread > 0, spread, 1.0))[shown]
    table = table[shown]

    widest = max([len(shown)] + [images.shape[0] for _, images, _ in strips])
    width = min(max(2.0 + 0.9 * len(latents), 1.0 + 0.8 * widest), _common.MAX_FIGURE_INCHES)
    heights = [0.35 * len(shown) + 1.0] + [1.3] * len(strips)
    figure = _common.new_figure(width, sum(heights) + 0.6)
    grid = figure.add_gridspec(len(heights), 1, height_ratios=heights)
    ax = figure.add_subplot(grid[0])
    limit = max(float(np.abs(standardised).max()), 1e-9)
    ax.imshow(standardised, cmap="coolwarm", vmin=-limit, vmax=limit, aspect="auto")
    for r in range(len(shown)):
        for c in range(len(latents)):
            ax.text(c, r, _common.format_value(float(table[r, c])), ha="center", va="center", fontsize=7)
    sizes = clusters.sizes[shown].tolist()
    ax.set_yticks(range(len(shown)), [f"{v} (n={n})" for v, n in zip(names, sizes)], fontsize=8)
    names_x = [f"{latent_label(d, clusters.latent_shape)}\nη²={eta[d]:.2f}" for d in latents]
    ax.set_xticks(range(len(latents)), names_x, fontsize=8)
    ax.tick_params(length=0)
    ax.set_title("centroids on the latents that separate the clusters best", fontsize=9)

    for row, (label, images, ticks) in enumerate(strips, start=1):
        height, tile_width = shrunk_size(shape, max_tile_size)
        pad = max(1, round(0.08 * max(height, tile_width)))
        strip = np.ones((height + 2 * pad, pad + len(images) * (tile_width + pad), 3))
        for n, image in enumerate(images):  # (a tile at a time: see rgb_tile)
            left = pad + n * (tile_width + pad)
            strip[pad : pad + height, left : left + tile_width] = rgb_tile(image, shape, vmin=vmin, vmax=vmax, cmap=cmap,
                                                                           max_side=max_tile_size)
        strip_ax = figure.add_subplot(grid[row])
        strip_ax.imshow(strip, interpolation="nearest")
        # Upright labels wider than their tile overlapped (48 clusters' names under the decoded
        # centroids ran into one line): those are turned 90 degrees, each under its own tile.
        crowded = max(_common.text_inches(t, 7) for t in ticks) > 0.9 * figure.get_figwidth() / len(images)
        strip_ax.set_xticks([pad + n * (tile_width + pad) + (tile_width - 1) / 2 for n in range(len(images))], ticks,
                            fontsize=7, rotation=90 if crowded else 0)
        strip_ax.set_yticks([])
        strip_ax.tick_params(length=0)
        for spine in strip_ax.spines.values():
            spine.set_visible(False)
        strip_ax.set_title(label, fontsize=9)
    counted = f"{num_clusters} clusters" if len(shown) == num_clusters else \
        f"the {len(shown)} largest of {num_clusters} clusters"
    figure.suptitle(title if title is not None else f"{counted} ({clusters.method})")
    return _common.finish(figure, path, fn=_FN)


def _paths(interpolation, pair, clusters) -> list[tuple[tuple[int, int], np.ndarray]]:
    """The interpolation strips as ``[((i, j), outputs [S, *out_shape])]``."""
    if interpolation is None:
        return []
    if isinstance(interpolation, Mapping):
        items = list(interpolation.items())
    else:
        if pair is None:
            raise ValueError(f"{_FN}: interpolation needs pair=(i, j), the clusters it goes between")
        items = [(pair, interpolation)]
    checked = []
    for key, outputs in items:
        if isinstance(key, (str, bytes)) or not hasattr(key, "__len__") or len(key) != 2:
            raise TypeError(f"{_FN}: pair must be two cluster indices (i, j), got {key!r}")
        i, j = (clusters._index(_FN, "pair[...]", p) for p in key)
        checked.append(((i, j), _common.user_array(_FN, "interpolation", _path_outputs(outputs))))
    return checked


def _path_outputs(outputs):
    """The outputs of a path: as given, or those of an :class:`Interpolation` of one path (what
    ``interpolate`` returns, and ``report(interpolations=)`` takes; it was refused as "an array
    of object")."""
    from ..interpolation import Interpolation

    if not isinstance(outputs, Interpolation):
        return outputs
    if outputs.num_paths != 1:
        raise ValueError(f"{_FN}: interpolation is an Interpolation of {outputs.num_paths} paths; pass one path's "
                         "outputs (interpolation.outputs[p]) or an Interpolation of one path")
    if outputs.outputs is None:
        raise ValueError(f"{_FN}: the Interpolation's outputs were not kept (keep_outputs=False); nothing to draw")
    return outputs.outputs[0]
