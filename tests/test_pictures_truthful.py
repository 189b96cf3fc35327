"""Pictures and report cells that told a researcher something false or hid the signal (each case
failed before its fix). They compare what is drawn (labels, colour limits, text), not
pixels."""

from __future__ import annotations

import re
import warnings

import matplotlib
import numpy as np
import pytest
import torch

import latentsweep as ls
from latentsweep import plots
from latentsweep._shares import format_share

matplotlib.use("Agg")


def image_decoder(z: torch.Tensor) -> torch.Tensor:
    """[B, D] -> [B, 1, 4, 4] images that change with every latent."""
    return torch.sigmoid(torch.nn.functional.pad(z, (0, 16 - z.shape[1]))).view(-1, 1, 4, 4)


def x_labels(figure) -> list[str]:
    return [t.get_text() for t in figure.axes[0].get_xticklabels()]


def y_labels(figure) -> list[str]:
    return [t.get_text() for t in figure.axes[0].get_yticklabels()]


@pytest.mark.parametrize("share, digits, text", [
    (0.99996, 1, ">99.99%"), (0.9996, 1, "99.96%"), (0.372, 1, "37.2%"), (1.0, 1, "100.0%"),
    (0.0, 1, "0.0%"), (4e-5, 1, "<0.01%"), (1e-9, 3, "<0.001%"), (0.99996, 3, "99.996%"),
    (0.99996, 0, ">99.99%"),
])
def test_a_share_with_decimals_short_of_1_never_prints_as_100_percent(share, digits, text):
    assert format_share(share, digits=digits) == text


def test_direction_rows_and_report_cells_do_not_claim_all_the_variance():
    """A direction carrying 0.99996 of the variance was labelled "100.0% var" (grid) and
    "100.0%" (the report's table)."""
    from latentsweep.html_report import _share

    directions = ls.Directions(torch.eye(3)[:2], ("PC1", "PC2"), explained_variance_ratio=torch.tensor([0.99996, 4e-5]))
    figure = plots.direction_grid(np.random.default_rng(0).random((2, 3, 4, 4)), directions)
    assert [row.split("\n")[1] for row in y_labels(figure)] == [">99.99% var", "<0.01% var"]
    assert _share(0.99996) == ">99.99%" and _share(0.25) == "25.0%" and _share(float("nan")) == "n/a"


def tiny_sd_posterior(sds) -> ls.Posterior:
    sds = torch.tensor(sds, dtype=torch.float64)
    mu = torch.randn(4, len(sds), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    return ls.Posterior(mu, torch.log(sds**2).expand(4, -1).clone())


def test_rows_with_different_tiny_offsets_are_not_labelled_with_the_first_rows():
    """Mode "posterior" with SDs of 1e-6, 2e-6 and 4e-6: the offsets ±2e-6, ±4e-6, ±8e-6 "agreed"
    within an absolute 1e-5, and every row's columns were labelled ±2e-6."""
    result = ls.traverse(image_decoder, tiny_sd_posterior([1e-6, 2e-6, 4e-6])[:1], mode="posterior", steps=5,
                         progress=False)
    figure = ls.traversal_grid(result, order="dims")
    assert x_labels(figure) == ["0", "1", "2", "3", "4"]
    assert figure.axes[0].get_xlabel().startswith("step")
    assert [row.split("\n")[-1] for row in y_labels(figure)] == [
        " .. ".join(plots._common.format_values(result.values[0, k, [0, -1]].tolist())) for k in range(3)]
    # Two anchors whose SDs differ (1e-6, 4e-6): the curves' x axis is the mean offset, not the first anchor's.
    mu = torch.zeros(2, 1, dtype=torch.float64)
    logvar = torch.log(torch.tensor([[1e-6], [4e-6]], dtype=torch.float64) ** 2)
    curves = ls.response_curves(ls.traverse(torch.nn.Linear(1, 3).double(), ls.Posterior(mu, logvar), mode="posterior",
                                            steps=5, progress=False))
    assert curves.axes[0].get_xlabel() == "offset from the anchor, z - z_anchor (mean over anchors)"
    np.testing.assert_allclose(curves.axes[0].lines[0].get_xdata()[[0, -1]], [-5e-6, 5e-6], rtol=1e-6)


def test_columns_are_told_apart_by_their_labels():
    """One latent swept by ±2e-6 around z = 1.1: five columns read "+1.1"; the ends of each row's
    range read "+1.1 .. +1.1"; offsets of ±2e-7 read "0"."""
    posterior = tiny_sd_posterior([1e-6, 1e-6])
    single = ls.traverse(image_decoder, posterior[:1], mode="posterior", dims=[0], steps=5, progress=False)
    figure = ls.traversal_grid(single)
    assert x_labels(figure) == ["-2e-06", "-1e-06", "0", "+1e-06", "+2e-06"]
    assert figure.axes[0].get_xlabel() == "offset from the anchor, z - z_anchor"
    tiny = ls.traverse(image_decoder, posterior[:1], mode="absolute", span=2e-7, steps=5, progress=False)
    assert x_labels(ls.traversal_grid(tiny)) == ["-2e-07", "-1e-07", "0", "+1e-07", "+2e-07"]
    assert plots._common.format_values([1.099998, 1.100002]) == ["+1.099998", "+1.100002"]
    assert plots._common.format_values([-2, -1, 1e-9, 1, 2]) == ["-2", "-1", "0", "+1", "+2"]
    # Mode "prior" of one latent: its values, as before, when their labels differ.
    prior = ls.traverse(image_decoder, posterior[:1], dims=[0], steps=5, progress=False)
    assert x_labels(ls.traversal_grid(prior)) == plots._common.format_values(prior.values[0, 0].tolist())


def test_all_zero_sensitivity_is_drawn_as_zero():
    """A decoder that ignores the latents: matplotlib widened the empty colour range to
    [-0.1, 0.1] and every cell took the middle colour, as if the slopes were 0.1 of something."""
    result = ls.traverse(lambda z: torch.zeros(z.shape[0], 5), torch.randn(2, 3), steps=3, progress=False)
    figure = ls.sensitivity_heatmap(result)
    assert figure.axes[0].images[0].get_clim() == (0.0, 1.0)
    colour_bar = figure.axes[-1]
    assert colour_bar.get_ylim() == (0.0, 1.0)


def test_colour_bar_ticks_carry_their_own_exponent():
    """Slopes of 1e-31: the colour bar's shared factor "1e-31" was drawn over the title."""
    result = ls.traverse(lambda z: 1e-30 * torch.cat([z, z**2], 1), torch.randn(2, 3, dtype=torch.float64),
                         steps=3, progress=False)
    figure = ls.sensitivity_heatmap(result)
    figure.canvas.draw()
    colour_bar = figure.axes[-1]
    assert colour_bar.yaxis.get_offset_text().get_text() == ""
    ticks = [t.get_text() for t in colour_bar.get_yticklabels() if t.get_text() not in ("", "0")]
    assert ticks and all("e-3" in t for t in ticks)
    grid = ls.traversal_grid(ls.traverse(lambda z: 1e6 * image_decoder(z), torch.randn(1, 3), steps=3, progress=False))
    grid.canvas.draw()
    assert grid.axes[-1].yaxis.get_offset_text().get_text() == ""


def test_direction_grid_has_a_colour_scale():
    """Outputs beyond [0, 1] were drawn in grey levels with no scale to read them by."""
    directions = ls.Directions.from_vectors(torch.eye(3)[:2])
    outputs = np.linspace(-3, 5, 2 * 3 * 16).reshape(2, 3, 4, 4)
    figure = plots.direction_grid(outputs, directions)
    assert len(figure.axes) == 2 and figure.axes[1].get_ylim() == (-3.0, 5.0)
    rgb = plots.direction_grid(np.random.default_rng(0).random((2, 3, 3, 4, 4)), directions)
    assert len(rgb.axes) == 1  # (colour images have no scale)


def texts_outside(figure) -> list[str]:
    """The texts of the figure's axes drawn (partly) beyond its edges."""
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    width, height = figure.canvas.get_width_height()
    outside = []
    for ax in figure.axes:
        for text in [ax.title, ax.xaxis.label, ax.yaxis.label, *ax.get_xticklabels(), *ax.get_yticklabels()]:
            box = text.get_window_extent(renderer)
            if text.get_text() and (box.x0 < -1 or box.y0 < -1 or box.x1 > width + 1 or box.y1 > height + 1):
                outside.append(text.get_text())
    return outside


def test_grid_texts_stay_on_the_figure():
    """8 rows x 5 steps beside a colour bar: the axis label of the rows was pushed off the left
    edge; one step: a grid 3.15 inches wide, its title cut off and drawn over the colour bar."""
    posterior = ls.Posterior(torch.randn(30, 8, generator=torch.Generator().manual_seed(0)), torch.full((30, 8), -2.0))
    diagnosis = ls.diagnose(posterior)
    decoder = lambda z: torch.sigmoid(torch.nn.functional.pad(z, (0, 8))).view(-1, 1, 4, 4)  # noqa: E731
    for steps in (5, 1):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # (one step has no slope)
            result = ls.traverse(decoder, posterior[:1], steps=steps, progress=False)
        assert texts_outside(ls.traversal_grid(result, diagnosis=diagnosis)) == []
    directions = ls.Directions.from_vectors(torch.eye(3)[:1])
    assert texts_outside(plots.direction_grid(np.random.default_rng(0).random((1, 1, 4, 4)), directions,
                                              values=[0.5])) == []


def test_colour_bar_of_outputs_spanning_the_float64_range():
    """Outputs in [-1.7e308, 1.7e308]: matplotlib's colour bar raised "Axis limits cannot be NaN or
    Inf"; it is drawn in units of the largest value."""
    outputs = np.linspace(-1, 1, 48).reshape(1, 3, 4, 4) * 1.7e308
    figure = plots.direction_grid(outputs, ls.Directions.from_vectors(torch.eye(3)[:1]))
    assert figure.axes[-1].get_ylim() == (-1.0, 1.0) and figure.axes[-1].get_ylabel() == "output (x 1.7e+308)"


def test_one_huge_output_does_not_turn_every_tile_black():
    """One pixel of 1e6 among outputs in about [-1, 1] (a hot pixel in every image, or one output
    blowing up at the end of a sweep): the colours spanned [-1, 1e6] and every tile was black."""
    def decoder(z):
        images = torch.tanh(torch.nn.functional.pad(z, (0, 13))).view(-1, 1, 4, 4).clone()
        images[:, 0, 3, 3] = 1e6
        return images

    result = ls.traverse(decoder, torch.randn(2, 3, generator=torch.Generator().manual_seed(0)), steps=5, progress=False)
    with pytest.warns(UserWarning, match=r"output values lie far outside the others .* pass vmin= and vmax="):
        figure = ls.traversal_grid(result)
    low, high = figure.axes[-1].get_ylim()
    assert -1 <= low < 0 < high <= 1
    assert figure.axes[-1].get_children() and figure.axes[-1]._colorbar.extend == "max"  # the arrow shows the clip
    mosaic = np.asarray(figure.axes[0].images[0].get_array())
    assert np.unique(mosaic.round(3)).size > 5  # grey levels, not black tiles on white
    # The caller's range is kept; outputs in [0, 1] keep [0, 1] with a spike near 0.
    assert ls.traversal_grid(result, vmin=0, vmax=1e6).axes[-1].get_ylim() == (0.0, 1e6)
    spike = ls.traverse(lambda z: torch.nn.functional.pad(1e-3 * torch.sigmoid(z), (0, 13), value=1.0).view(-1, 1, 4, 4),
                        torch.randn(2, 3), steps=3, progress=False)
    assert ls.traversal_grid(spike).axes[-1].get_ylim() == (0.0, 1.0)


def test_a_report_and_explain_say_their_pictures_clipping_once_in_their_own_words(tmp_path):
    """report (and explain, which writes one) drew several pictures, each warning that it clipped
    far outliers and advising vmin=/vmax=, which neither takes."""
    def decoder(z):
        images = torch.tanh(torch.nn.functional.pad(z, (0, 13))).view(-1, 1, 4, 4).clone()
        images[:, 0, 3, 3] = 1e6
        return images

    result = ls.traverse(decoder, torch.randn(2, 3, generator=torch.Generator().manual_seed(0)), steps=5, progress=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ls.report(tmp_path / "r.html", results=result, anchor_indices=(0, 1))
    said = [str(w.message) for w in caught if "far outside" in str(w.message)]
    assert len(said) == 1, said
    assert re.match(r"latentsweep\.report: \d+ pictures clip far outliers; in the first, \d+ of \d+ output values", said[0])
    assert said[0].endswith("draw one with latentsweep.plots.traversal_grid(result, vmin=..., vmax=...) to choose its "
                            "scale") and "pass vmin=" not in said[0]

    def encoder(x):
        return x[:, :3], torch.zeros_like(x[:, :3])

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ls.explain(encoder, decoder, torch.randn(40, 3, generator=torch.Generator().manual_seed(1)), out=tmp_path / "e",
                   anchors=2, steps=3, progress=False)
    said = [str(w.message) for w in caught if "far outside" in str(w.message)]
    assert len(said) == 1 and said[0].startswith("latentsweep.explain: "), said
    # a picture drawn alone still says it in its own words
    with pytest.warns(UserWarning, match=r"^latentsweep\.plots\.traversal_grid: \d+ of .* pass vmin= and vmax= to choose"):
        ls.traversal_grid(result)
