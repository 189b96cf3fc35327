"""Pictures of directions and clusters: the direction traversal grid and the cluster panel, on
decoded traversals of a small image decoder (direction_codes, interpolation_codes)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import latentsweep
from latentsweep import plots
from picture_models import small_decoder, synthetic_posterior

STEPS = 5


@pytest.fixture(scope="module")
def posterior():
    return synthetic_posterior(300, seed=2)


@pytest.fixture(scope="module")
def decoder():
    return small_decoder(64, 1, 8, 8)


@pytest.fixture(scope="module")
def pcs(posterior):
    return latentsweep.principal_directions(posterior, k=3)


def decode(decoder, codes):
    with torch.no_grad():
        return decoder(codes)


def test_direction_grid_rows_are_the_directions_with_their_variance(posterior, decoder, pcs, tmp_path):
    values = torch.linspace(-2, 2, STEPS)
    codes = latentsweep.direction_codes(posterior.mu[0], pcs.vectors, values)
    outputs = decode(decoder, codes).view(3, STEPS, 1, 8, 8)
    figure = plots.direction_grid(outputs, pcs, values=values, path=tmp_path / "pcs.png")
    ax = figure.axes[0]
    rows = [t.get_text() for t in ax.get_yticklabels()]
    assert [r.split("\n")[0] for r in rows] == ["PC1", "PC2", "PC3"]
    assert rows[0].split("\n")[1] == f"{float(pcs.explained_variance_ratio[0]):.1%} var"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["-2", "-1", "0", "+1", "+2"]
    assert "coordinate" in ax.get_xlabel()
    image = np.asarray(ax.get_images()[0].get_array())
    assert image.shape[0] > 3 * 8 and image.shape[1] > STEPS * 8
    assert Image.open(tmp_path / "pcs.png").size[0] > 100


def test_direction_grid_per_row_values_and_user_directions(decoder):
    user = latentsweep.Directions.from_vectors(torch.eye(6)[:2] + 0.1)
    values = torch.stack([torch.linspace(-1, 1, 4), torch.linspace(0, 3, 4)])
    outputs = decode(decoder, latentsweep.direction_codes(torch.zeros(6), user.vectors, values)).view(2, 4, 64)
    ax = plots.direction_grid(outputs, user, values=values, image_shape=(8, 8)).axes[0]
    rows = [t.get_text() for t in ax.get_yticklabels()]
    assert rows == ["u0\n-1 .. +1", "u1\n0 .. +3"]  # no variance for user directions; per-row ranges
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "1", "2", "3"]


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(outputs=np.zeros((2, 5, 8, 8))), ValueError, r"outputs must be \[K=3, S"),
        (dict(directions="pcs"), TypeError, "directions must be a latentsweep.Directions"),
        (dict(values=np.zeros(4)), ValueError, r"values must be \[S=5\]"),
        (dict(outputs=np.zeros((3, 5, 7))), ValueError, "not images"),
        (dict(vmin=1.0, vmax=0.0), ValueError, "vmax must be greater"),
    ],
)
def test_direction_grid_bad_input(pcs, kwargs, error, match):
    arguments = dict(outputs=np.zeros((3, 5, 8, 8)), directions=pcs) | kwargs
    outputs, directions = arguments.pop("outputs"), arguments.pop("directions")
    with pytest.raises(error, match=match):
        plots.direction_grid(outputs, directions, **arguments)


def test_cluster_panel_table_centroids_and_interpolation(posterior, decoder, tmp_path):
    found = latentsweep.clusters(posterior, k=3, seed=0)
    centroid_outputs = decode(decoder, found.centroids)
    (i, j) = found.closest_and_farthest()[1]
    path = latentsweep.interpolation_codes(found.centroids[i], found.centroids[j], steps=7, path="slerp")[0]
    figure = plots.cluster_panel(
        found, centroid_outputs=centroid_outputs, interpolation=decode(decoder, path), pair=(i, j), top=3,
        path=tmp_path / "clusters.png",
    )
    table, centroids, strip = figure.axes
    expected_latents = torch.argsort(-found.eta_squared, stable=True)[:3].tolist()
    assert [t.get_text().split("\n")[0] for t in table.get_xticklabels()] == [f"z{d}" for d in expected_latents]
    assert [t.get_text() for t in table.get_yticklabels()] == [f"{c} (n={n})" for c, n in zip(found.label_values, found.sizes.tolist())]
    cells = [t.get_text() for t in table.texts]
    assert len(cells) == 3 * 3
    assert cells[0] == latentsweep.plots._common.format_value(float(found.centroids[0, expected_latents[0]]))
    assert [t.get_text() for t in centroids.get_xticklabels()] == ["0", "1", "2"]
    ticks = [t.get_text() for t in strip.get_xticklabels()]
    assert len(ticks) == 7 and ticks[0] == str(i) and ticks[-1] == str(j)
    assert Image.open(tmp_path / "clusters.png").size[1] > 100
    # The table alone, for tabular decoders.
    assert len(plots.cluster_panel(found).axes) == 1


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(clusters="c"), TypeError, "clusters must be a latentsweep.Clusters"),
        (dict(centroid_outputs=np.zeros((2, 8, 8))), ValueError, r"centroid_outputs must be \[C=3"),
        (dict(interpolation=np.zeros((5, 8, 8))), ValueError, "needs pair"),
        (dict(interpolation=np.zeros((5, 8, 8)), pair=(0, 3)), ValueError, "must be <= 2"),
        (dict(interpolation=np.zeros((5, 8, 8)), pair=0), TypeError, "pair must be two cluster indices"),
        (dict(interpolation=np.zeros((1, 8, 8)), pair=(0, 1)), ValueError, "S >= 2"),
        (dict(centroid_outputs=np.zeros((3, 8, 8)), interpolation=np.zeros((5, 4, 4)), pair=(0, 1)), ValueError, "same output shape"),
        (dict(top=0), ValueError, "top must be >= 1"),
    ],
)
def test_cluster_panel_bad_input(posterior, kwargs, error, match):
    found = latentsweep.clusters(posterior, k=3, seed=0)
    arguments = dict(clusters=found) | kwargs
    with pytest.raises(error, match=match):
        plots.cluster_panel(arguments.pop("clusters"), **arguments)
