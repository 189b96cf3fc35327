"""Pictures, the report and paths: what an adversarial pass found drawn wrong, refused too late or
not at all (each case failed before its fix)."""

from __future__ import annotations


import matplotlib
import numpy as np
import pytest
import torch

import latentsweep as ls
from latentsweep.paths import path_codes, path_peak

matplotlib.use("Agg")


def sweep(decoder, *, anchors=2, latent=3, dtype=torch.float32, **options):
    codes = torch.randn(anchors, latent, generator=torch.Generator().manual_seed(0), dtype=dtype)
    return ls.traverse(decoder, codes, steps=3, progress=False, **options)


def test_float64_outputs_beyond_float32_are_drawn_as_they_are():
    """Outputs of 1e100 became inf in float32 (the heatmap's cells), 1e-100 became 0 (bars of 0)."""
    for scale in (1e100, 1e-100):
        result = sweep(lambda z: scale * torch.cat([z, z ** 2], dim=1), dtype=torch.float64)
        bars = ls.effect_bars(result).axes[0].patches
        heights = np.array([bar.get_height() for bar in bars])
        np.testing.assert_allclose(heights, result.dim_effect.numpy(), rtol=1e-6)
        cells = ls.sensitivity_heatmap(result).axes[0].images[0].get_array()
        assert np.isfinite(cells).all() and cells.max() > 0


def test_effect_bars_keep_every_direction():
    """Bars were keyed by a direction's name: two directions named alike in one result drew one bar,
    and another set's 'u0' (another vector) shared its group."""
    decoder = torch.nn.Linear(3, 4)
    same = ls.Directions.from_vectors(torch.eye(3)[:2], names=["same", "same"])
    result = sweep(decoder, directions=same)
    heights = [bar.get_height() for bar in ls.effect_bars(result).axes[0].patches]
    np.testing.assert_allclose(heights, result.dim_effect.numpy(), rtol=1e-6)
    first, second = (sweep(decoder, directions=ls.Directions.from_vectors(torch.eye(3)[rows])) for rows in ([0, 1], [2, 1]))
    figure = ls.effect_bars({"a": first, "b": second})
    assert len(figure.axes[0].get_xticks()) == 3  # u0 of a, u0 of b (another vector), u1 of both
    with pytest.raises(ValueError, match=r"results has names that read the same: \['1'\]"):
        ls.effect_bars({1: first, "1": second})


def test_many_bars_and_directions_are_limited_with_a_warning():
    wide = sweep(torch.nn.Linear(200, 2), latent=200)
    with pytest.warns(UserWarning, match="drawing 48 of 200 bar groups"):
        figure = ls.effect_bars(wide)
    assert len(figure.axes[0].get_xticks()) == 48 and figure.get_figwidth() <= 24
    kept = [int(t.get_text()[1:]) for t in figure.axes[0].get_xticklabels()]
    assert kept == sorted(kept) and set(kept) == set(torch.argsort(wide.dim_effect, descending=True)[:48].tolist())
    directions = ls.Directions.from_vectors(torch.randn(60, 4, generator=torch.Generator().manual_seed(1)))
    outputs = np.random.default_rng(0).random((60, 3, 4, 4))
    with pytest.warns(UserWarning, match="drawing 48 of 60 directions"):
        figure = ls.plots.direction_grid(outputs, directions)
    assert len(figure.axes[0].get_yticks()) == 48
    assert len(ls.plots.direction_grid(outputs, directions, max_dims=5).axes[0].get_yticks()) == 5


def test_user_text_with_dollar_signs_is_drawn_as_typed(tmp_path):
    """matplotlib read $...$ as math: a lone $ raised its parser's exception, '$10k-$20k' lost its $."""
    result = sweep(torch.nn.Linear(3, 4))
    names = ["cost_$_per_unit_$", "income $10k-$20k", "a", "b"]
    figure = ls.plots.response_curves(result, feature_names=names, title=r"$\frac{$", path=tmp_path / "curves.png")
    assert (tmp_path / "curves.png").stat().st_size > 0
    assert all(not text.get_parse_math() for text in figure.findobj(matplotlib.text.Text))
    ls.report(tmp_path / "r.html", results=result, feature_names=names, title="$ report")


def test_labels_name_the_transformed_outputs():
    result = sweep(torch.nn.Linear(3, 16), output_transform="sigmoid")
    assert ls.plots.response_curves(result).axes[0].get_ylabel() == "sigmoid(decoder output)"
    images = sweep(lambda z: torch.nn.functional.pad(z, (0, 13)).view(-1, 1, 4, 4), output_transform="sigmoid")
    colour_bar = ls.traversal_grid(images).axes[-1]
    assert colour_bar.get_ylabel() == "sigmoid(decoder output)"


def test_bounds_that_crashed_the_renderers(tmp_path):
    result = sweep(lambda z: torch.nn.functional.pad(z, (0, 13)).view(-1, 1, 4, 4))
    with pytest.raises(ValueError, match="dpi must be >= 10"):  # FreeType's "invalid ppem value"
        ls.report(tmp_path / "deep" / "r.html", results=result, dpi=5)
    assert not (tmp_path / "deep").exists()  # (a bad option left the report's folders behind)
    with pytest.raises(ValueError, match="duration must be <= 655350"):  # PIL's OverflowError
        ls.traversal_gif(result, duration=10**9, path=tmp_path / "a.gif")
    with pytest.raises(ValueError, match="tile_inches must be at most 4"):  # out of memory in Agg
        ls.traversal_grid(result, tile_inches=1000)


def test_paths_with_a_tilde_are_in_the_home_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    result = sweep(torch.nn.Linear(3, 4))
    ls.effect_bars(result, path="~/bars.png")
    ls.report("~/reports/r.html", results=result)
    assert (tmp_path / "home" / "bars.png").is_file() and (tmp_path / "home" / "reports" / "r.html").is_file()
    assert not (tmp_path / "~").exists()


def test_sigma_histograms_say_which_sds_they_cannot_draw():
    posterior = ls.Posterior(torch.zeros(10, 2), torch.cat([torch.full((10, 1), 1500.0), torch.zeros(10, 1)], 1))
    with pytest.warns(UserWarning, match="10 posterior SD"):
        ls.sigma_histograms(posterior)


def test_slerp_paths_that_leave_the_dtype_are_refused():
    """A slerp between finite float16 endpoints reached 8.5e4: its codes were inf, and interpolate
    decoded them."""
    start, end = torch.tensor([6e4, 6e4], dtype=torch.float16), torch.tensor([-6e4, 6e4], dtype=torch.float16)
    with pytest.raises(ValueError, match=r"slerp path from start to end reaches 8.49e\+04, beyond the largest "
                                         r"torch.float16"):
        ls.interpolation_codes(start, end, path="slerp")
    with pytest.raises(ValueError, match="pass float64 endpoints"):
        ls.interpolate(torch.nn.Linear(2, 2).half(), start, end, path="slerp", progress=False)
    assert torch.isfinite(ls.interpolation_codes(start.double(), end.double(), path="slerp")).all()
    assert torch.isfinite(ls.interpolation_codes(start, end, path="linear")).all()


def test_the_path_peak_is_the_largest_coordinate_of_the_path():
    generator = torch.Generator().manual_seed(3)
    for trial in range(60):
        start = torch.randn(4, 6, generator=generator, dtype=torch.float64) * 10 ** (trial % 5)
        end = torch.randn(4, 6, generator=generator, dtype=torch.float64) * 10 ** (trial % 3)
        if trial % 4 == 0:
            end = -start + 1e-3 * end  # nearly opposite: arcs far from the straight line
        for path in ("linear", "slerp"):
            dense = float(path_codes(start, end, 4001, path).abs().max())
            peak = path_peak(start, end, path)
            assert dense <= peak * (1 + 1e-12) and peak <= dense * (1 + 1e-6), (trial, path, peak, dense)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_grids_label_their_columns_by_offset(dtype):
    """Mode "prior" offsets of half-precision anchors differ by their rounding (1e-3 of them):
    the columns read 0, 1, 2 instead of -2 .. +2."""
    codes = torch.randn(2, 3, generator=torch.Generator().manual_seed(0)).to(dtype)
    result = ls.traverse(lambda z: torch.sigmoid(z.float() @ torch.ones(3, 16)).to(dtype).view(-1, 1, 4, 4), codes,
                         steps=3, progress=False)
    axes = ls.traversal_grid(result).axes[0]
    assert [t.get_text() for t in axes.get_xticklabels()] == ["-2", "0", "+2"] and "offset" in axes.get_xlabel()
    assert "offset" in ls.plots.response_curves(result).axes[0].get_xlabel()


def test_user_images_with_nan_are_refused(tmp_path):
    """inputs=, reconstructions= and centroid_outputs= full of NaN were drawn black, silently."""
    result = sweep(lambda z: torch.sigmoid(torch.nn.functional.pad(z, (0, 13))).view(-1, 1, 4, 4))
    nan = torch.full((2, 1, 4, 4), float("nan"))
    with pytest.raises(ValueError, match="input has 32 NaN/Inf value"):
        ls.traversal_grid(result, input=nan)
    with pytest.raises(ValueError, match="reconstructions has 32 NaN/Inf value"):
        ls.report(tmp_path / "r.html", results=result, inputs=torch.zeros(2, 1, 4, 4), reconstructions=nan)
    codes = torch.randn(30, 3, generator=torch.Generator().manual_seed(0))
    found = ls.clusters(codes, k=2, seed=0)
    with pytest.raises(ValueError, match="centroid_outputs has NaN/Inf"):
        ls.report(tmp_path / "c.html", clusters=found, centroid_outputs=torch.full((2, 1, 4, 4), float("nan")))


def test_long_names_are_shortened_where_they_are_drawn(tmp_path):
    """A 300-character direction name took the grid's whole width: matplotlib's layout gave up
    ("axes sizes collapsed to zero") and the images were squeezed to a sliver. Names are drawn
    at most MAX_LABEL_CHARS long, keeping both ends."""
    import warnings

    from latentsweep.plots._common import MAX_LABEL_CHARS, short_label

    long = "d" * 150 + "-middle-" + "e" * 149 + "END"
    assert len(short_label(long)) == MAX_LABEL_CHARS and short_label(long).endswith("END")
    assert short_label("PC1 (34%)\n12.0% var") == "PC1 (34%)\n12.0% var"
    decoder = torch.nn.Sequential(torch.nn.Linear(3, 64), torch.nn.Unflatten(1, (1, 8, 8)))
    directions = ls.Directions.from_vectors(torch.eye(3)[:2], names=[long, "other"])
    result = sweep(decoder, directions=directions)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the collapsed layout is only a warning
        grid = ls.traversal_grid(result, anchor=0, path=tmp_path / "grid.png")
        ls.plots.direction_grid(result.outputs[0], directions, path=tmp_path / "directions.png")
        bars = ls.effect_bars({long: result}, path=tmp_path / "bars.png")
    drawn = [t.get_text() for t in grid.axes[0].get_yticklabels()]
    drawn += [t.get_text() for t in bars.axes[0].get_xticklabels()]
    assert drawn and all(len(line) <= MAX_LABEL_CHARS for text in drawn for line in text.split("\n"))
