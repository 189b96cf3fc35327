"""The pictures: traversal grids and GIFs (image outputs), response curves and sensitivity
heatmaps (tabular outputs), KL bars and posterior-SD histograms, on real traversals of small
decoders. Figures are inspected without rendering (rendering is slow); a few are saved."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import latentsweep
from picture_models import LATENT_DIM, small_decoder, synthetic_posterior
from latentsweep import plots

D, STEPS, ANCHORS = LATENT_DIM, 7, 3
# KL order of the synthetic posterior (MU_SCALES sets it; dims 4, 5 collapse).
KL_ORDER = [1, 3, 2, 0]


@pytest.fixture(scope="module")
def posterior() -> latentsweep.Posterior:
    return synthetic_posterior(300, seed=1)


@pytest.fixture(scope="module")
def diagnosis(posterior):
    return latentsweep.diagnose(posterior)


@pytest.fixture(scope="module")
def image_result(posterior):
    return latentsweep.traverse(small_decoder(64, 1, 8, 8), posterior[:ANCHORS], steps=STEPS, progress=False)


@pytest.fixture(scope="module")
def tabular_result(posterior):
    decoder = small_decoder(13)
    return latentsweep.traverse(decoder, posterior.mu[:5], mode="absolute", steps=9, progress=False)


def _tick_texts(labels) -> list[str]:
    return [label.get_text() for label in labels]


def _row_dims(ax) -> list[int]:
    return [int(text.split("\n")[0].split(" ")[0][1:]) for text in _tick_texts(ax.get_yticklabels())]


# ---- traversal grid ---------------------------------------------------------------------------


def test_grid_rows_sorted_by_kl_with_a_diagnosis(image_result, diagnosis):
    assert diagnosis.kl[KL_ORDER].tolist() == sorted(diagnosis.kl[KL_ORDER].tolist(), reverse=True)
    figure = plots.traversal_grid(image_result, diagnosis=diagnosis)
    ax = figure.axes[0]
    assert _row_dims(ax)[:4] == KL_ORDER
    assert "KL" in ax.get_yticklabels()[0].get_text()
    assert len(ax.get_xticklabels()) == STEPS
    # mode "prior": every row moves by the same offsets, which label the columns.
    assert _tick_texts(ax.get_xticklabels())[0] == "-2" and _tick_texts(ax.get_xticklabels())[-1] == "+2"
    assert "offset" in ax.get_xlabel()
    assert len(figure.axes) == 2  # the image and its colour bar


def test_grid_rows_sorted_by_effect_without_diagnosis(image_result):
    ax = plots.traversal_grid(image_result).axes[0]
    expected = torch.argsort(image_result.dim_effect, descending=True, stable=True).tolist()
    assert _row_dims(ax) == expected == image_result.ranking.tolist()
    assert "effect" in ax.get_ylabel()
    ax = plots.traversal_grid(image_result, order="dims", max_dims=3).axes[0]
    assert _row_dims(ax) == [0, 1, 2]


def test_grid_input_and_reconstruction_columns(image_result, diagnosis):
    inputs = torch.rand(ANCHORS, 1, 8, 8)
    ax = plots.traversal_grid(image_result, anchor=2, diagnosis=diagnosis, input=inputs, max_dims=2).axes[0]
    labels = _tick_texts(ax.get_xticklabels())
    assert labels[:2] == ["input", "reconstruction"] and len(labels) == STEPS + 2
    assert len(ax.get_yticklabels()) == 2
    with pytest.raises(ValueError, match="input must hold one output"):
        plots.traversal_grid(image_result, input=torch.rand(2, 1, 9, 9))


def test_grid_absolute_values_and_per_row_ranges(posterior):
    decoder = small_decoder(64, 1, 8, 8)
    absolute = latentsweep.traverse(decoder, posterior[:2], mode="absolute", steps=5, progress=False)
    ax = plots.traversal_grid(absolute, order="dims").axes[0]
    assert _tick_texts(ax.get_xticklabels()) == ["-2", "-1", "0", "+1", "+2"]
    assert ax.get_xlabel() == "latent value z"
    by_posterior = latentsweep.traverse(decoder, posterior[:2], mode="posterior", steps=5, progress=False)
    ax = plots.traversal_grid(by_posterior, order="dims").axes[0]
    assert _tick_texts(ax.get_xticklabels()) == ["0", "1", "2", "3", "4"]
    assert ".." in ax.get_yticklabels()[0].get_text()  # each row shows its own range


def test_grid_flat_outputs_need_a_matching_image_shape(posterior, tmp_path):
    flat = latentsweep.traverse(small_decoder(64), posterior[:2], steps=3, progress=False)
    with pytest.raises(ValueError, match="not images"):
        plots.traversal_grid(flat)
    with pytest.raises(ValueError, match=r"image_shape \(9, 9\) holds 81 values"):
        plots.traversal_grid(flat, image_shape=(9, 9))
    with pytest.raises(ValueError, match="image_shape must be"):
        plots.traversal_grid(flat, image_shape=(8, 8, 1, 1))
    # a channels-last slip (numpy's and PIL's order) was told its outputs "are not images"
    with pytest.raises(ValueError, match=r"image_shape \(8, 8, 1\) reads as channels last \(H, W, C\); images here "
                                         r"are \(C, H, W\): pass image_shape=\(1, 8, 8\)$"):
        plots.traversal_grid(flat, image_shape=(8, 8, 1))
    path = tmp_path / "grid.png"
    figure = plots.traversal_grid(flat, image_shape=(8, 8), path=path)
    assert figure.axes[0].get_title().startswith("Traversal of anchor 0")
    with Image.open(path) as png:
        assert png.size[0] > 200 and len(png.getcolors(1 << 16) or range(1 << 16)) > 10


def test_grid_rgb_images_have_no_colour_bar(posterior):
    rgb = latentsweep.traverse(small_decoder(3 * 16, 3, 4, 4), posterior[:1], steps=3, progress=False)
    figure = plots.traversal_grid(rgb)
    assert len(figure.axes) == 1
    mosaic = figure.axes[0].get_images()[0].get_array()
    assert mosaic.shape[-1] == 3


def test_grid_reads_outputs_from_a_store(posterior, tmp_path):
    stored = latentsweep.traverse(
        small_decoder(64, 1, 8, 8), posterior[:2], steps=3, out=tmp_path / "sweep.npy", progress=False
    )
    assert not isinstance(stored.outputs, torch.Tensor)
    assert len(plots.traversal_grid(stored, anchor=1).axes[0].get_yticklabels()) == D


def test_grid_bad_arguments(image_result, tabular_result, diagnosis):
    with pytest.raises(ValueError, match="anchor=3 is out of range"):
        plots.traversal_grid(image_result, anchor=3)
    with pytest.raises(TypeError, match="anchor must be an int"):
        plots.traversal_grid(image_result, anchor=0.5)
    with pytest.raises(ValueError, match="order must be one of"):
        plots.traversal_grid(image_result, order="random")
    with pytest.raises(ValueError, match="max_dims must be >= 1, got 0"):
        plots.traversal_grid(image_result, max_dims=0)
    with pytest.raises(ValueError, match="cmap"):
        plots.traversal_grid(image_result, cmap="no-such-map")
    with pytest.raises(TypeError, match="TraversalResult"):
        plots.traversal_grid(torch.zeros(3))
    with pytest.raises(ValueError, match="not images"):
        plots.traversal_grid(tabular_result)
    with pytest.raises(ValueError, match="order='kl' needs the diagnosis of a VAE"):
        plots.traversal_grid(image_result, order="kl")
    small = latentsweep.diagnose(latentsweep.Posterior(torch.randn(10, 3), torch.zeros(10, 3)))
    with pytest.raises(ValueError, match=f"the result's codes have D={D} latents but the diagnosis has 3"):
        plots.traversal_grid(image_result, diagnosis=small)
    stats_only = latentsweep.traverse(
        small_decoder(64, 1, 8, 8), torch.zeros(1, D), steps=3, keep_outputs=False, progress=False
    )
    with pytest.raises(ValueError, match="keep_outputs=False"):
        plots.traversal_grid(stats_only)


# ---- GIF ----------------------------------------------------------------------------------------


def test_gif_frames_sweep_the_steps(image_result, diagnosis, tmp_path):
    path = tmp_path / "anchor0.gif"
    gif = plots.traversal_gif(image_result, diagnosis=diagnosis, bounce=False, path=path)
    assert gif.format == "GIF" and gif.n_frames == STEPS and gif.is_animated
    with Image.open(path) as saved:
        assert saved.n_frames == STEPS and saved.size == gif.size
    gif.seek(0)
    first = np.asarray(gif.convert("RGB")).copy()
    gif.seek(STEPS - 1)
    last = np.asarray(gif.convert("RGB"))
    assert first.shape == last.shape and (first != last).any()
    assert plots.traversal_gif(image_result, anchor=1).n_frames == 2 * STEPS - 2  # bounce


def test_gif_layouts_and_size(image_result):
    row2 = plots.traversal_gif(image_result, order="dims", max_dims=2, tile_size=32, bounce=False)
    row4 = plots.traversal_gif(image_result, order="dims", max_dims=4, tile_size=32, bounce=False)
    assert row4.size[0] > row2.size[0] and row4.size[1] == row2.size[1]
    stacked2 = plots.traversal_gif(image_result, layout="stacked", max_dims=2, tile_size=32)
    stacked4 = plots.traversal_gif(image_result, layout="stacked", max_dims=4, tile_size=32)
    assert stacked4.size[1] > stacked2.size[1] and stacked4.size[0] == stacked2.size[0]
    # Tiles are scaled up by a whole factor: 8 px images need x8 for 64 px tiles.
    big = plots.traversal_gif(image_result, max_dims=1, tile_size=64, bounce=False)
    assert big.size[1] - row2.size[1] == 64 - 32


def test_gif_bad_arguments(image_result, tabular_result):
    with pytest.raises(ValueError, match="layout must be one of"):
        plots.traversal_gif(image_result, layout="diagonal")
    with pytest.raises(ValueError, match="out of range"):
        plots.traversal_gif(image_result, anchor=-4)
    with pytest.raises(ValueError, match="duration must be >= 1, got 0"):
        plots.traversal_gif(image_result, duration=0)
    with pytest.raises(ValueError, match="not images"):
        plots.traversal_gif(tabular_result)


# ---- tabular outputs --------------------------------------------------------------------------


def test_response_curves_one_panel_per_dim(tabular_result):
    names = [f"feature {i}" for i in range(13)]
    figure = plots.response_curves(tabular_result, feature_names=names, max_features=13)
    assert len(figure.axes) == D
    titles = [ax.get_title() for ax in figure.axes]
    expected = torch.argsort(tabular_result.dim_effect, descending=True, stable=True).tolist()
    assert [int(t.split()[0][1:]) for t in titles] == expected
    legend = figure.legends[0]
    assert [t.get_text() for t in legend.get_texts()] == names
    ax = figure.axes[0]
    assert ax.get_xlabel() == "latent value z" and ax.get_ylabel() == "decoder output"
    assert len(ax.get_lines()) == 13
    x, y = ax.get_lines()[0].get_data()
    np.testing.assert_allclose(x, tabular_result.values[0, expected[0]].numpy(), rtol=1e-6)
    mean = tabular_result.outputs[:, expected[0], :, 0].mean(0).numpy()
    np.testing.assert_allclose(y, mean, rtol=1e-5)
    assert len(ax.collections) == 13  # the bands over the 5 anchors


def test_response_curves_pick_features(tabular_result, diagnosis):
    figure = plots.response_curves(tabular_result, diagnosis=diagnosis, max_dims=2, max_features=3, band=None)
    assert len(figure.axes) == 2
    assert "KL" in figure.axes[0].get_title() and figure.axes[0].get_title().startswith("z1")
    top3 = np.argsort(-tabular_result.sensitivity[[1, 3]].sum(0).numpy(), kind="stable")[:3]
    assert [t.get_text() for t in figure.legends[0].get_texts()] == [f"f{i}" for i in sorted(top3)]
    names = [f"n{i}" for i in range(13)]
    figure = plots.response_curves(tabular_result, feature_names=names, features=["n4", 0], ncols=4)
    assert [t.get_text() for t in figure.legends[0].get_texts()] == ["n4", "n0"]


def test_response_curves_prior_mode_uses_offsets(posterior):
    prior = latentsweep.traverse(small_decoder(13), posterior.mu[:4], steps=5, progress=False)
    ax = plots.response_curves(prior, order="dims").axes[0]
    assert ax.get_xlabel().startswith("offset from the anchor")
    np.testing.assert_allclose(ax.get_lines()[0].get_xdata(), [-2, -1, 0, 1, 2], atol=1e-4)


def test_response_curves_bad_arguments(tabular_result):
    with pytest.raises(ValueError, match="feature_names has 3 names but the decoder outputs 13"):
        plots.response_curves(tabular_result, feature_names=["a", "b", "c"])
    with pytest.raises(ValueError, match="unknown feature 'zz'"):
        plots.response_curves(tabular_result, features=["zz"])
    with pytest.raises(ValueError, match="feature index=13 is out of range"):
        plots.response_curves(tabular_result, features=[13])
    with pytest.raises(ValueError, match="band must be one of"):
        plots.response_curves(tabular_result, band="iqr")
    stats_only = latentsweep.traverse(small_decoder(13), torch.zeros(2, D), steps=3, keep_outputs=False, progress=False)
    with pytest.raises(ValueError, match="keep_outputs=False"):
        plots.response_curves(stats_only)


def test_sensitivity_heatmap_matches_the_result(tabular_result, diagnosis):
    names = [f"feature {i}" for i in range(13)]
    figure = plots.sensitivity_heatmap(tabular_result, diagnosis=diagnosis, feature_names=names)
    ax, colourbar = figure.axes
    assert "d output / d z" in colourbar.get_ylabel()
    rows = _row_dims(ax)
    assert rows[:4] == KL_ORDER and len(rows) == D
    assert _tick_texts(ax.get_xticklabels()) == names
    shown = ax.get_images()[0].get_array()
    np.testing.assert_allclose(shown, tabular_result.sensitivity[rows].numpy(), rtol=1e-6)
    assert len(ax.texts) == D * 13  # annotated: few cells
    normalised = plots.sensitivity_heatmap(tabular_result, normalize=True, annotate=False, features=[0, 5, 7])
    array = normalised.axes[0].get_images()[0].get_array()
    assert array.shape == (D, 3) and np.allclose(array.max(axis=0), 1.0)
    assert len(normalised.axes[0].texts) == 0


def test_sensitivity_heatmap_needs_no_outputs(posterior):
    stats_only = latentsweep.traverse(small_decoder(13), posterior.mu[:3], steps=5, keep_outputs=False, progress=False)
    ax = plots.sensitivity_heatmap(stats_only, max_dims=2).axes[0]
    assert ax.get_images()[0].get_array().shape == (2, 13)


# ---- latent-space statistics ------------------------------------------------------------------


def test_kl_bars_mark_active_and_collapsed(diagnosis):
    figure = plots.kl_bars(diagnosis)
    ax = figure.axes[0]
    bars = ax.patches
    assert len(bars) == D
    grey = [b for b in bars if b.get_hatch() == "//"]
    assert sorted(round(b.get_x() + b.get_width() / 2) for b in grey) == [4, 5]
    assert _tick_texts(ax.get_xticklabels()) == [f"z{d}" for d in range(D)]
    assert "4/6 active" in ax.get_title()
    assert sum(t.get_text() == "collapsed" for t in ax.texts) == 2
    assert ax.get_ylabel().startswith("KL")
    assert plots.kl_bars(diagnosis, log=True).axes[0].get_yscale() == "log"


def test_kl_bars_bad_input(posterior):
    with pytest.raises(ValueError, match="plain autoencoder"):
        plots.kl_bars(latentsweep.diagnose(posterior.mu))
    with pytest.raises(TypeError, match="Diagnosis"):
        plots.kl_bars(posterior)


def test_sigma_histograms_against_the_prior(posterior, diagnosis):
    figure = plots.sigma_histograms(posterior, prior_std=1.0)
    assert len(figure.axes) == D
    for ax in figure.axes:
        lines = ax.get_lines()
        assert lines[0].get_xdata()[0] == 1.0  # the prior SD
        assert ax.get_xscale() == "log"
    assert "0.082" in figure.axes[0].get_title()  # exp(-5 / 2)
    assert "σ" in figure.axes[0].get_xlabel()
    ordered = plots.sigma_histograms(posterior, diagnosis=diagnosis, order="kl", max_dims=3, ncols=2)
    assert [ax.get_title().split(":")[0] for ax in ordered.axes] == ["z1", "z3", "z2"]
    picked = plots.sigma_histograms(posterior, dims=[5, 0])
    assert [ax.get_title().split(":")[0] for ax in picked.axes] == ["z5", "z0"]


def test_sigma_histograms_bad_input(posterior):
    with pytest.raises(ValueError, match="no logvar"):
        plots.sigma_histograms(latentsweep.Posterior(posterior.mu))
    with pytest.raises(TypeError, match="Posterior"):
        plots.sigma_histograms(posterior.mu)
    with pytest.raises(ValueError, match=r"dims must lie in \[0, 6\) for D=6"):
        plots.sigma_histograms(posterior, dims=[0, 6])
    with pytest.raises(ValueError, match="order='kl' needs diagnosis"):
        plots.sigma_histograms(posterior, order="kl")
    with pytest.raises(ValueError, match="prior_std must be a finite number > 0"):
        plots.sigma_histograms(posterior, prior_std=0.0)


def test_effect_bars_contrast_traversals(image_result, posterior):
    by_posterior = latentsweep.traverse(small_decoder(64, 1, 8, 8), posterior[:ANCHORS], mode="posterior", steps=STEPS, progress=False)
    figure = plots.effect_bars({"prior": image_result, "posterior": by_posterior})
    ax = figure.axes[0]
    assert len(ax.patches) == 2 * D
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["prior", "posterior"]
    assert len(plots.effect_bars(image_result).axes[0].patches) == D
    with pytest.raises(ValueError, match="results is empty"):
        plots.effect_bars({})
    with pytest.raises(TypeError, match="TraversalResult"):
        plots.effect_bars({"a": 1})


def test_public_exports():
    for name in ["traversal_grid", "traversal_gif", "response_curves", "sensitivity_heatmap",
                 "kl_bars", "sigma_histograms", "effect_bars", "report"]:
        assert name in latentsweep.__all__ and callable(getattr(latentsweep, name))


# ---- edge inputs get messages that name the argument (issue 12 item 10) ----------------------


@pytest.mark.parametrize("draw", [plots.response_curves, plots.sensitivity_heatmap])
@pytest.mark.parametrize("names", [3, 2.5, object(), "abc"])
def test_feature_names_that_are_not_a_sequence_of_names(tabular_result, draw, names):
    with pytest.raises(TypeError, match=r"feature_names must be a sequence of 13 names"):
        draw(tabular_result, feature_names=names)


@pytest.mark.parametrize("argument", ["input", "reconstruction"])
@pytest.mark.parametrize("value", ["x", b"x", {"a": 1}, [["a", "b"]], object()])
def test_grid_input_that_is_not_numbers(image_result, argument, value):
    with pytest.raises(TypeError, match=rf"traversal_grid: {argument} must be a tensor or a numeric array"):
        plots.traversal_grid(image_result, **{argument: value})


def test_grid_input_on_the_meta_device_is_refused(image_result):
    with pytest.raises(ValueError, match="input is on the meta device"):
        plots.traversal_grid(image_result, input=torch.zeros(1, 8, 8, device="meta"))


def test_the_pictures_use_the_packages_checks():
    """One source for each generic check (issue 10 item 2): the pictures have no private copies
    of the int/choice/index checks, and their messages are the package's."""
    from latentsweep.plots import _common

    for name in ("check_index", "check_positive_int", "check_choice"):
        assert not hasattr(_common, name)
    with pytest.raises(ValueError, match=r"anchor=7 is out of range for 3 anchor\(s\) \(0..2\)"):
        plots.traversal_gif(_tiny_image_result(), anchor=7)
    with pytest.raises(TypeError, match="ncols must be an int, got str"):
        plots.response_curves(_tiny_tabular_result(), ncols="2")


def _tiny_image_result():
    return latentsweep.traverse(small_decoder(64, 1, 8, 8), torch.zeros(3, D), steps=3, progress=False)


def _tiny_tabular_result():
    return latentsweep.traverse(small_decoder(13), torch.zeros(2, D), steps=3, progress=False)


# ---- path= is checked before anything is drawn --------------------------------------------


def _every_drawing(image_result, tabular_result, diagnosis, path):
    return {
        "traversal_grid": lambda: plots.traversal_grid(image_result, path=path),
        "response_curves": lambda: plots.response_curves(tabular_result, path=path),
        "sensitivity_heatmap": lambda: plots.sensitivity_heatmap(tabular_result, path=path),
        "kl_bars": lambda: plots.kl_bars(diagnosis, path=path),
        "effect_bars": lambda: plots.effect_bars(image_result, path=path),
    }


def test_a_folder_as_path_is_refused_not_turned_into_folder_png(image_result, tabular_result, diagnosis, tmp_path):
    for name, draw in _every_drawing(image_result, tabular_result, diagnosis, tmp_path).items():
        with pytest.raises(ValueError, match=rf"{name}: path=.* is a folder; give a file name inside it"):
            draw()
    with pytest.raises(ValueError, match=r"traversal_gif: path=.* is a folder.*picture\.gif"):
        plots.traversal_gif(image_result, path=tmp_path)
    assert list(tmp_path.iterdir()) == [] and not tmp_path.with_suffix(".png").exists()


@pytest.mark.parametrize("name", ["grid", "grid.xyz", "grid.mp4"])
def test_a_path_without_a_figure_format_is_refused(image_result, tmp_path, name):
    with pytest.raises(ValueError, match=r"traversal_grid: path=.* must end in a picture format's suffix \(\.png, \.pdf, \.svg"):
        plots.traversal_grid(image_result, path=tmp_path / name)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["anim.png", "anim"])
def test_a_gif_is_written_only_to_a_gif_path(image_result, tmp_path, name):
    with pytest.raises(ValueError, match=r"traversal_gif: path=.* must end in a picture format's suffix \(\.gif\)"):
        plots.traversal_gif(image_result, path=tmp_path / name)
    plots.traversal_gif(image_result, path=tmp_path / "anim.GIF")
    assert Image.open(tmp_path / "anim.GIF").format == "GIF"


def test_a_path_that_cannot_be_written_names_path(image_result, tmp_path, monkeypatch):
    (tmp_path / "file").write_text("in the way")
    with pytest.raises(ValueError, match=r"traversal_grid: path=.*file/grid\.png': the file .*file' is in the way"):
        plots.traversal_grid(image_result, path=tmp_path / "file" / "grid.png")
    with pytest.raises(ValueError, match=r"traversal_gif: path=.*: the file .*file' is in the way"):
        plots.traversal_gif(image_result, path=tmp_path / "file" / "a.gif")
    import errno
    import pathlib

    def disk_full(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pathlib.Path, "write_bytes", disk_full)
    with pytest.raises(ValueError, match=r"traversal_gif: cannot write path=.*a\.gif': No space left on device"):
        plots.traversal_gif(image_result, path=tmp_path / "a.gif")
    with pytest.raises(TypeError, match=r"kl_bars: path must be a file name \(str or os.PathLike\), got int"):
        plots.kl_bars(latentsweep.diagnose(synthetic_posterior(20, seed=0)), path=3)


def test_response_curves_of_outputs_near_float32s_limit_stay_finite():
    """Mean and SD over anchors are taken in float64: float32 sums of ~1e37 overflowed."""
    import warnings

    decoder = lambda z: torch.cat([z, z], 1) * 1e37  # noqa: E731
    anchors = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))
    result = latentsweep.traverse(decoder, anchors, steps=5, mode="absolute", progress=False)
    for band in ("sd", "quantile"):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            figure = plots.response_curves(result, band=band)
        curves = [line.get_ydata() for line in figure.axes[0].lines]
        assert curves and all(np.isfinite(curve).all() for curve in curves)
        expected = result.outputs[:, 0, :, 0].double().mean(0).numpy()
        assert any(np.allclose(curve, expected, rtol=1e-6) for curve in curves)


def test_many_latents_make_pictures_of_bounded_size():
    """4096 latents drew a 131,512-pixel-wide bar chart; 200 took minutes of response curves."""
    from latentsweep.plots._common import DEFAULT_MAX_PANELS, MAX_FIGURE_INCHES

    many = 200
    generator = torch.Generator().manual_seed(0)
    posterior = latentsweep.Posterior(torch.randn(30, many, generator=generator),
                                      torch.randn(30, many, generator=generator) * 0.1 - 2)
    bars = plots.kl_bars(latentsweep.diagnose(posterior))
    assert bars.get_size_inches()[0] == MAX_FIGURE_INCHES
    assert len(bars.axes[0].get_xticks()) <= DEFAULT_MAX_PANELS
    decoder = torch.nn.Sequential(torch.nn.Linear(many, 64), torch.nn.Sigmoid(), torch.nn.Unflatten(1, (1, 8, 8)))
    result = latentsweep.traverse(decoder, posterior[:1], steps=3, progress=False)
    with pytest.warns(UserWarning, match=rf"traversal_grid: drawing {DEFAULT_MAX_PANELS} of {many} latents; pass max_dims="):
        grid = plots.traversal_grid(result)
    assert len(_row_dims(grid.axes[0])) == DEFAULT_MAX_PANELS
    with pytest.warns(UserWarning, match=rf"sigma_histograms: drawing {DEFAULT_MAX_PANELS} of {many}"):
        panels = plots.sigma_histograms(posterior)
    assert len(panels.axes) == DEFAULT_MAX_PANELS
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(_row_dims(plots.traversal_grid(result, max_dims=60).axes[0])) == 60  # asked for: drawn


def test_colour_range_tile_size_and_switches_are_checked(image_result, tabular_result, tmp_path):
    cases = [
        (lambda: plots.traversal_grid(image_result, vmin="a", vmax=1), TypeError, "traversal_grid: vmin must be None or a number"),
        (lambda: plots.traversal_grid(image_result, vmin=0, vmax=float("inf")), ValueError, "vmax must be finite"),
        (lambda: plots.traversal_gif(image_result, vmin=True), TypeError, "traversal_gif: vmin must be None or a number"),
        (lambda: plots.traversal_grid(image_result, vmin=1, vmax=0), ValueError, "vmax must be greater than vmin"),
        (lambda: plots.traversal_grid(image_result, tile_inches=0), ValueError, "tile_inches must be a finite number > 0"),
        (lambda: plots.traversal_grid(image_result, tile_inches="x"), TypeError, "tile_inches must be a number"),
        (lambda: plots.response_curves(tabular_result, sharey="no"), TypeError, "sharey must be True or False"),
        (lambda: plots.sensitivity_heatmap(tabular_result, annotate="no"), TypeError, "annotate must be True or False"),
        (lambda: plots.sensitivity_heatmap(tabular_result, normalize="no"), TypeError, "normalize must be True or False"),
        (lambda: latentsweep.report(tmp_path / "r.html", results=image_result, gifs="no"), TypeError, "report: gifs must be"),
        (lambda: latentsweep.report(tmp_path / "r.png", results=image_result), ValueError, r"report: path=.*r\.png' must end in \.html"),
        (lambda: latentsweep.report(tmp_path / "r.html", results=[image_result]), TypeError,
         "report: results must be a TraversalResult or a mapping"),
    ]
    for call, error, match in cases:
        with pytest.raises(error, match=match):
            call()
    assert list(tmp_path.iterdir()) == []


def test_gif_tiles_are_bounded_and_built_as_bytes(image_result):
    from latentsweep.plots.traversal_gif import MAX_TILE_BYTES

    small = plots.traversal_gif(image_result, tile_size=64)
    assert small.size[1] >= 64
    with pytest.raises(ValueError, match=rf"traversal_gif: tile_size=4096 makes .* more than {MAX_TILE_BYTES >> 20} MiB\); "
                                         "pass a smaller tile_size or max_dims"):
        plots.traversal_gif(image_result, tile_size=4096)


def test_a_repeated_anchor_is_drawn_once_in_the_report(image_result, tmp_path):
    once = latentsweep.report(tmp_path / "a.html", results=image_result, anchor_indices=[0], gifs=False).read_text()
    repeated = latentsweep.report(tmp_path / "b.html", results=image_result, anchor_indices=[0] * 5, gifs=False).read_text()
    assert repeated.count("<img") == once.count("<img")


def test_many_clusters_make_a_panel_of_bounded_size():
    """300 clusters drew a 24,100 x 10,660 px panel in 38 s: the panel follows the pictures'
    rule (at most DEFAULT_MAX_PANELS rows unless asked for, with a warning), drawing the
    largest clusters in label order, centroid table and decoded centroids alike."""
    import warnings

    from latentsweep.plots._common import DEFAULT_MAX_PANELS, MAX_FIGURE_INCHES

    many, big = 60, 30
    generator = torch.Generator().manual_seed(0)
    labels = torch.cat([torch.arange(many).repeat(4), torch.arange(many - big, many)])  # the last 30 have 5 codes
    found = latentsweep.clusters(torch.randn(len(labels), 3, generator=generator), labels)
    centroid_outputs = torch.rand(many, 1, 8, 8, generator=generator)
    with pytest.warns(UserWarning, match=rf"cluster_panel: drawing {DEFAULT_MAX_PANELS} of {many} clusters; "
                                         "pass max_clusters= to draw more"):
        figure = plots.cluster_panel(found, centroid_outputs=centroid_outputs)
    table, strip = figure.axes
    shown = list(range(DEFAULT_MAX_PANELS - big)) + list(range(many - big, many))
    sizes = found.sizes.tolist()
    assert _tick_texts(table.get_yticklabels()) == [f"{c} (n={sizes[c]})" for c in shown]
    assert len(table.texts) == DEFAULT_MAX_PANELS * 3
    assert _tick_texts(strip.get_xticklabels()) == [str(c) for c in shown]
    assert figure.get_size_inches()[0] <= MAX_FIGURE_INCHES
    assert f"the {DEFAULT_MAX_PANELS} largest of {many} clusters" in figure.get_suptitle()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        asked = plots.cluster_panel(found, max_clusters=many)  # asked for: drawn, still no wider than the rule
    assert len(asked.axes[0].get_yticklabels()) == many
    assert asked.get_size_inches()[0] <= MAX_FIGURE_INCHES
    with pytest.raises(ValueError, match="cluster_panel: max_clusters must be >= 1"):
        plots.cluster_panel(found, max_clusters=0)


def test_a_picture_checks_its_path_once(diagnosis, tmp_path, monkeypatch):
    """output_path runs before the drawing; finish saves to what it returned, unchecked again."""
    from latentsweep.plots import _common

    calls = []
    check = _common.output_path
    monkeypatch.setattr(_common, "output_path", lambda *args, **kwargs: calls.append(args) or check(*args, **kwargs))
    plots.kl_bars(diagnosis, path=tmp_path / "kl.png")
    assert len(calls) == 1 and (tmp_path / "kl.png").exists()


def _column_labels(result, **kwargs) -> list[str]:
    return [t.get_text() for t in plots.traversal_grid(result, anchor=0, **kwargs).axes[0].get_xticklabels()]


def test_a_float16_offset_of_zero_is_labelled_0_but_real_small_offsets_are_kept():
    """The coordinate of a float16 anchor along a direction is computed apart from the grid's
    values: the middle column's offset came out 1 ulp off and was labelled "-0.00098"."""
    generator = torch.Generator().manual_seed(8)
    mu = (torch.randn(2, 3, generator=generator) * 3).half()
    directions = torch.nn.functional.normalize(torch.randn(2, 3, generator=generator), dim=1).half()
    decoder = torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.Unflatten(1, (1, 4, 4))).half()
    result = latentsweep.traverse(decoder, latentsweep.Posterior(mu), directions=directions, mode="prior", steps=5,
                                  progress=False)
    middle = float(result.values[0, 0, 2]) - float(result.anchor_values[0, 0])
    assert middle != 0 and abs(middle) <= torch.finfo(torch.float16).eps * 2  # the rounding this is about
    assert _column_labels(result) == ["-2", "-1", "0", "+1", "+2"]
    # Offsets a few float16 roundings wide are not hidden (span 0.01: steps of 0.005).
    small = latentsweep.traverse(decoder, latentsweep.Posterior(mu), dims=[0, 1, 2], mode="prior", steps=5, span=0.01,
                                 progress=False)
    labels = _column_labels(small)
    assert labels[2] == "0" and all(label != "0" for i, label in enumerate(labels) if i != 2)
