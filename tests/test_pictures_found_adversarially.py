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


def test_images_of_a_range_wider_than_their_dtype_are_drawn_with_contrast():
    """float32 outputs in [-3e38, 3e38] overflowed to inf in ``images - vmin``: every tile drawn
    black or white (2 distinct pixel values of 96); float64 near 1.7e308 the same."""
    directions = ls.Directions.from_vectors(torch.eye(3)[:2])
    for largest, dtype in ((3e38, np.float32), (1.7e308, np.float64)):
        outputs = (np.linspace(-1, 1, 96).reshape(2, 3, 4, 4) * largest).astype(dtype)
        mosaic = np.asarray(ls.plots.direction_grid(outputs, directions).axes[0].images[0].get_array())
        assert np.isfinite(mosaic).all() and np.unique(mosaic).size > 90


def test_arrays_the_grids_take_are_checked(tmp_path):
    """direction_grid's and cluster_panel's arrays went to numpy unchecked: NaN drawn black without a
    word, complex values lost their imaginary part, a meta tensor raised NotImplementedError and a
    string numpy's "could not convert string to float"."""
    directions = ls.Directions.from_vectors(torch.eye(3)[:2])
    good = np.random.default_rng(0).random((2, 3, 4, 4))
    grid = ls.plots.direction_grid
    for bad, error, match in [
        (np.full((2, 3, 4, 4), np.nan), ValueError, "outputs has 96 NaN/Inf value"),
        (torch.ones(2, 3, 4, 4, dtype=torch.complex64), TypeError, "outputs must hold real numbers"),
        (np.ones((2, 3, 4, 4), dtype=complex), TypeError, "outputs must be a tensor or a numeric array"),
        (torch.ones(2, 3, 4, 4, device="meta"), ValueError, "outputs is on the meta device"),
        ("abc", TypeError, "outputs must be a tensor or a numeric array, got str"),
        (np.ones((2, 3, 0, 4)), ValueError, r"images of shape \(0, 4\) hold no pixels"),
    ]:
        with pytest.raises(error, match=f"direction_grid: {match}"):
            grid(bad, directions)
    with pytest.raises(ValueError, match="direction_grid: values has 1 NaN/Inf"):
        grid(good, directions, values=[np.nan, 0.0, 1.0])
    with pytest.raises(ValueError, match=r"direction_grid: anchor_values must be \[K=2\]"):
        grid(good, directions, anchor_values=[0.0, 0.0, 0.0])  # (ignored without values=)
    codes = torch.randn(30, 3, generator=torch.Generator().manual_seed(0))
    found = ls.clusters(codes, k=3, seed=0)
    with pytest.raises(ValueError, match="cluster_panel: centroid_outputs has 48 NaN/Inf"):
        ls.plots.cluster_panel(found, centroid_outputs=np.full((3, 4, 4), np.nan))
    with pytest.raises(ValueError, match="cluster_panel: interpolation has 80 NaN/Inf"):
        ls.plots.cluster_panel(found, interpolation=np.full((5, 4, 4), np.inf), pair=(0, 1))
    with pytest.raises(ValueError, match="cluster_panel: centroid_outputs is on the meta device"):
        ls.plots.cluster_panel(found, centroid_outputs=torch.ones(3, 4, 4, device="meta"))
    # report: a nested list of the right shape is drawn (it was "must be [C=3, *out_shape], got shape ()")
    ls.report(tmp_path / "r.html", clusters=found, centroid_outputs=[[[0.5, 0.25]]] * 3)


def test_float64_images_beyond_float32_are_not_called_nan():
    """An input image of float64 1e100 beside float64 outputs of that size was converted to float32
    (inf) and refused as "input has 16 NaN/Inf value(s)"."""
    result = sweep(lambda z: 1e100 * torch.nn.functional.pad(z, (0, 13)).view(-1, 1, 4, 4), dtype=torch.float64)
    ls.traversal_grid(result, input=torch.full((1, 4, 4), 1e100, dtype=torch.float64))


def test_a_direction_sweep_in_bfloat16_is_reported(tmp_path):
    """report(directions=...) read the outputs with np.asarray: TypeError "Got unsupported ScalarType
    BFloat16"."""
    codes = torch.randn(2, 3, generator=torch.Generator().manual_seed(0)).bfloat16()
    decoder = lambda z: torch.sigmoid(torch.nn.functional.pad(z.float(), (0, 13))).view(-1, 1, 4, 4).bfloat16()  # noqa: E731
    along = ls.traverse(decoder, codes, steps=3, progress=False,
                        directions=ls.Directions.from_vectors(torch.eye(3)[:2].bfloat16()))
    page = ls.report(tmp_path / "r.html", directions=along).read_text()
    assert page.count("data:image/png;base64,") == 1


def test_grids_of_many_steps_draw_at_most_48_columns(tmp_path):
    """2000 steps drew a grid 1,500 inches wide (a 150,000-pixel PNG in 26 s; the report grew to
    20 MB); steps are now subsampled evenly, ends kept, with a warning."""
    result = sweep(lambda z: torch.sigmoid(torch.nn.functional.pad(z, (0, 13))).view(-1, 1, 4, 4), latent=3)
    many = ls.traverse(lambda z: torch.sigmoid(torch.nn.functional.pad(z, (0, 13))).view(-1, 1, 4, 4),
                       result.anchors, steps=200, mode="absolute", progress=False)
    with pytest.warns(UserWarning, match="traversal_grid: drawing 48 of 200 steps"):
        figure = ls.traversal_grid(many, path=tmp_path / "grid.png")
    labels = [t.get_text() for t in figure.axes[0].get_xticklabels()]
    assert len(labels) == 48 and labels[0] == "-2" and labels[-1] == "+2" and figure.get_figwidth() < 40
    directions = ls.Directions.from_vectors(torch.eye(3)[:2])
    outputs = np.random.default_rng(0).random((2, 100, 4, 4))
    with pytest.warns(UserWarning, match="direction_grid: drawing 48 of 100 steps"):
        figure = ls.plots.direction_grid(outputs, directions)
    labels = [t.get_text() for t in figure.axes[0].get_xticklabels()]
    assert len(labels) == 48 and labels[0] == "0" and labels[-1] == "99"
    found = ls.clusters(torch.randn(30, 3, generator=torch.Generator().manual_seed(0)), k=2, seed=0)
    with pytest.warns(UserWarning, match="cluster_panel: drawing 48 of 500 steps"):
        figure = ls.plots.cluster_panel(found, interpolation=np.random.default_rng(0).random((500, 4, 4)), pair=(0, 1))
    assert len(figure.axes[1].get_xticks()) == 48


def test_report_file_system_errors_are_named(tmp_path):
    """report let the OSError of its folder or file escape (FileNotFoundError, PermissionError), and
    a name too long for the file system raised OSError from its path check (pictures too)."""
    result = sweep(torch.nn.Linear(3, 4))
    with pytest.raises(ValueError, match=r"report: cannot write path='/proc/no/r.html'"):
        ls.report("/proc/no/r.html", results=result)
    with pytest.raises(ValueError, match=r"report: cannot write path='/proc/r.html'"):
        ls.report("/proc/r.html", results=result)
    long = "a" * 300
    with pytest.raises(ValueError, match="report: cannot write path=.*File name too long"):
        ls.report(tmp_path / f"{long}.html", results=result)
    with pytest.raises(ValueError, match="effect_bars: cannot write path=.*File name too long"):
        ls.effect_bars(result, path=tmp_path / f"{long}.png")


def test_pgf_needs_tex(tmp_path, monkeypatch):
    """path='x.pgf' without TeX raised matplotlib's RuntimeError "'xelatex' not found" after the drawing."""
    import shutil

    which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None if name.endswith("latex") else which(name, *a, **k))
    with pytest.raises(ValueError, match="effect_bars: path=.* must end in a picture format's suffix"):
        ls.effect_bars(sweep(torch.nn.Linear(3, 4)), path=tmp_path / "bars.pgf")


def test_sigma_histograms_of_extreme_sds_are_saved(tmp_path):
    """logvar 1000 (SD 1e217) made a log axis whose tick labels overflowed float64 while saving
    (OverflowError from matplotlib)."""
    for logvar in (1000.0, -1400.0):
        posterior = ls.Posterior(torch.zeros(10, 2, dtype=torch.float64), torch.full((10, 2), logvar, dtype=torch.float64))
        with pytest.warns(UserWarning, match=r"20 posterior SD\(s\) lie beyond \[1e-150, 1e\+150\]"):
            ls.sigma_histograms(posterior, path=tmp_path / "s.png")


def test_titles_are_strings():
    """A picture's title= took any object and drew its repr ("<object object at 0x7f...>"); the
    report's is checked, the pictures' now too."""
    result = sweep(torch.nn.Linear(3, 4))
    with pytest.raises(TypeError, match="effect_bars: title must be a string or None, got object"):
        ls.effect_bars(result, title=object())
    with pytest.raises(TypeError, match="sensitivity_heatmap: title must be a string or None, got list"):
        ls.sensitivity_heatmap(result, title=["a"])


def test_zero_d_tensors_where_sequences_go_are_named():
    """image_shape=, features= and feature_names= given a 0-d tensor raised torch's "iteration over
    a 0-d tensor"; a tensor of feature indices (0-d items) was refused."""
    images = sweep(lambda z: torch.sigmoid(torch.nn.functional.pad(z, (0, 13))).view(-1, 16))
    with pytest.raises(TypeError, match="traversal_grid: image_shape must be a tuple"):
        ls.traversal_grid(images, image_shape=torch.tensor(16))
    result = sweep(torch.nn.Linear(3, 4))
    with pytest.raises(TypeError, match="response_curves: features must be a sequence"):
        ls.plots.response_curves(result, features=torch.tensor(2))
    with pytest.raises(TypeError, match="sensitivity_heatmap: feature_names must be a sequence"):
        ls.sensitivity_heatmap(result, feature_names=torch.tensor(2))
    figure = ls.sensitivity_heatmap(result, features=torch.tensor([0, 2]))
    assert [t.get_text() for t in figure.axes[0].get_xticklabels()] == ["f0", "f2"]


def test_report_prior_std_is_checked_and_not_silently_overruled(tmp_path):
    """report took prior_std='x' (unused without a posterior), and beside a diagnosis made with
    another prior SD it was ignored without a word."""
    posterior = ls.Posterior(torch.randn(20, 3, generator=torch.Generator().manual_seed(0)), torch.full((20, 3), -2.0))
    with pytest.raises(TypeError, match="report: prior_std must be a number, got str"):
        ls.report(tmp_path / "r.html", results=sweep(torch.nn.Linear(3, 4)), prior_std="x")
    with pytest.raises(ValueError, match="report: prior_std=2 but the diagnosis was computed with prior_std=1"):
        ls.report(tmp_path / "r.html", diagnosis=ls.diagnose(posterior), posterior=posterior, prior_std=2.0)
    ls.report(tmp_path / "r.html", diagnosis=ls.diagnose(posterior, prior_std=2.0), posterior=posterior, prior_std=2)


def test_pictures_too_many_pixels_are_drawn_at_a_lower_dpi(tmp_path, monkeypatch):
    """A report of 48 latents x 48 steps at dpi=1200 drew a grid of 46,080 x 45,120 pixels (matplotlib
    takes about 80 bytes a pixel for an image: the memory ran out); the dpi is lowered, with a warning."""
    from matplotlib.image import imread

    from latentsweep.plots import _common

    assert _common.fitting_dpi("f", _common.new_figure(10, 8), 200) == 200
    with pytest.warns(UserWarning, match=r"f: a picture of 38.4 x 37.6 inches at dpi=1200 would be 46,080 x 45,120 "
                                         r"pixels; drawn at dpi=15\d"):
        dpi = _common.fitting_dpi("f", _common.new_figure(38.4, 37.6), 1200)
    assert 38.4 * 37.6 * dpi**2 <= _common.MAX_PIXELS
    with pytest.warns(UserWarning):
        assert 1000 * _common.fitting_dpi("f", _common.new_figure(1000, 0.1), 100) <= _common.MAX_SIDE_PIXELS
    # The same rule where pictures are rendered (a small budget here: the real one takes gigabytes).
    monkeypatch.setattr(_common, "MAX_PIXELS", 100_000)
    result = sweep(lambda z: torch.sigmoid(torch.nn.functional.pad(z, (0, 13))).view(-1, 1, 4, 4))
    with pytest.warns(UserWarning, match="report: a picture of .* drawn at dpi="):
        ls.report(tmp_path / "r.html", results=result, dpi=1200, gifs=False)
    with pytest.warns(UserWarning, match="traversal_grid: a picture of .* drawn at dpi="):
        ls.traversal_grid(result, path=tmp_path / "grid.png")
    height, width = imread(tmp_path / "grid.png").shape[:2]
    assert height * width <= 100_000
