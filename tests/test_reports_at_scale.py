"""Reports and pictures at the scale users have: small versions of the cases that broke."""

from __future__ import annotations

import torch

import latentsweep
from latentsweep.plots import _common, kl_bars, sigma_histograms


def _collapsed_posterior(latents: int = 64) -> latentsweep.Posterior:
    """A few active latents and many collapsed ones: the KL axis spans decades (log scale)."""
    gen = torch.Generator().manual_seed(0)
    mu = torch.randn(50, latents, generator=gen) * 2
    logvar = torch.randn(50, latents, generator=gen) - 3
    mu[:, 4:] *= 1e-4
    logvar[:, 4:] = 0.0
    return latentsweep.Posterior(mu, logvar)


def _tick_texts(figure) -> list[str]:
    _common.figure_png(figure, dpi=30)  # (tick labels are made when the figure is drawn)
    return [label.get_text() for ax in figure.axes for axis in (ax.xaxis, ax.yaxis)
            for label in axis.get_ticklabels(which="both")]


def test_log_axes_label_their_ticks_as_plain_numbers():
    # Log axes' ticks read "$\mathdefault{10^{-2}}$" (matplotlib's math, drawn as typed) and
    # overlapped one another in the KL bars and every posterior SD histogram.
    posterior = _collapsed_posterior()
    diagnosis = latentsweep.diagnose(posterior)
    for figure in (kl_bars(diagnosis, log=True), sigma_histograms(posterior, diagnosis=diagnosis, max_dims=4)):
        texts = [t for t in _tick_texts(figure) if t]
        assert texts
        assert not any("$" in t or "mathdefault" in t for t in texts), texts
    assert "0.01" in _tick_texts(kl_bars(diagnosis, log=True))


def test_many_clusters_names_under_the_decoded_centroids_do_not_overlap():
    # 48 clusters' names (strings, as labels) under the decoded centroids were drawn upright and
    # ran into one another.
    from latentsweep.plots import cluster_panel

    gen = torch.Generator().manual_seed(0)
    codes = torch.randn(240, 6, generator=gen)
    labels = [f"<class & {i % 48}>" for i in range(240)]
    found = latentsweep.clusters(latentsweep.Posterior(codes), labels)
    figure = cluster_panel(found, centroid_outputs=torch.rand(48, 1, 6, 6), image_shape=(1, 6, 6))
    _common.figure_png(figure, dpi=40)
    renderer = figure.canvas.get_renderer()
    strip = figure.axes[-1]
    boxes = [label.get_window_extent(renderer) for label in strip.get_xticklabels() if label.get_text()]
    assert len(boxes) == 48
    assert all(a.x1 <= b.x0 + 0.5 for a, b in zip(boxes, boxes[1:])), "tick labels overlap"
