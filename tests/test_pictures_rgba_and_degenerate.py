"""Pictures of 4-channel (RGBA) outputs, composited over white; and every picture on degenerate
outputs (NaN/Inf, constant, one anchor, one step, one latent): it draws, or raises a ValueError
naming the function and the argument, never a numpy warning storm or an empty chart without a word."""

from __future__ import annotations

import dataclasses
import io
import warnings

import numpy as np
import pytest
import torch

import latentsweep as ls
from latentsweep import plots
from latentsweep.plots._images import image_shape_of, is_image_output, to_rgb

D = 3


def _rgba_decoder() -> torch.nn.Module:
    """A small random conv decoder: D latents -> [4, 16, 16] in (0, 1)."""
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(D, 8 * 4 * 4), torch.nn.Unflatten(1, (8, 4, 4)),
                               torch.nn.ConvTranspose2d(8, 4, 4, stride=4), torch.nn.Sigmoid())


def _sweep(decoder, *, anchors: int = 2, **options) -> ls.TraversalResult:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (one step: "no slope")
        return ls.traverse(decoder, torch.randn(anchors, D, generator=torch.Generator().manual_seed(0)),
                           progress=False, **options)


def _rendered(figure) -> None:
    figure.savefig(io.BytesIO(), format="png")


# ---- RGBA ----------------------------------------------------------------------------------


def test_four_channels_are_images_and_two_stay_tabular():
    assert image_shape_of("f", (4, 16, 16)) == (4, 16, 16)
    assert image_shape_of("f", (1024,), (4, 16, 16)) == (4, 16, 16)
    assert not is_image_output((2, 16, 16))
    with pytest.raises(ValueError, match=r"f: decoder outputs of shape \(2, 16, 16\) are not images .*C 1, 3 or 4"):
        image_shape_of("f", (2, 16, 16))
    with pytest.raises(ValueError, match=r"channels last .* pass image_shape=\(4, 16, 16\)"):
        image_shape_of("f", (1024,), (16, 16, 4))
    with pytest.raises(ValueError, match=r"channels last .* pass image_shape=\(1, 4, 4\)"):
        image_shape_of("f", (16,), (4, 4, 1))  # (read so before RGBA: not an RGBA image 1 pixel wide)
    assert image_shape_of("f", (64,), (4, 4, 4)) == (4, 4, 4)


def test_rgba_is_composited_over_white():
    # pixels: red at alpha 0.5, green transparent, blue opaque (alpha 3 clipped to 1), red with NaN alpha
    image = np.zeros((4, 1, 4))
    image[0, 0, 0], image[3, 0, 0] = 1.0, 0.5
    image[1, 0, 1], image[3, 0, 1] = 1.0, 0.0
    image[2, 0, 2], image[3, 0, 2] = 1.0, 3.0
    image[0, 0, 3], image[3, 0, 3] = 1.0, np.nan
    rgb = to_rgb(image[None], 1, (4, 1, 4), vmin=0.0, vmax=1.0)[0, 0]
    np.testing.assert_allclose(rgb, [[1, 0.5, 0.5], [1, 1, 1], [0, 0, 1], [0, 0, 0]])


def test_every_image_picture_draws_rgba_outputs(tmp_path):
    result = _sweep(_rgba_decoder(), steps=5)
    assert result.out_shape == (4, 16, 16)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        grid = plots.traversal_grid(result, input=torch.rand(2, 4, 16, 16))
        assert len(grid.axes) == 1  # colours as they are: no colour bar, as for RGB
        _rendered(grid)
        assert plots.traversal_gif(result, bounce=False).n_frames == 5
        directions = ls.Directions.from_vectors(torch.randn(2, D, generator=torch.Generator().manual_seed(1)))
        _rendered(plots.direction_grid(np.random.default_rng(0).random((2, 3, 4, 16, 16)), directions))
        found = ls.clusters(torch.randn(30, D, generator=torch.Generator().manual_seed(2)), k=2)
        _rendered(plots.cluster_panel(found, centroid_outputs=np.random.default_rng(1).random((2, 4, 16, 16))))


def test_the_colour_scale_of_rgba_leaves_alpha_out():
    # colours in [2, 3], opaque: the scale spans the colours, [2, 3] (with the alpha it was [1, 3],
    # and colour 2 was drawn grey instead of black)
    outputs = np.full((1, 2, 4, 2, 2), 2.0)
    outputs[0, 1, :3] = 3.0
    outputs[:, :, 3] = 1.0
    directions = ls.Directions.from_vectors(torch.eye(D)[:1])
    mosaic = plots.direction_grid(outputs, directions).axes[0].images[0].get_array()
    pad = 1
    assert np.asarray(mosaic[pad, pad]).tolist() == [0.0, 0.0, 0.0]
    assert np.asarray(mosaic[pad, pad + 2 + pad]).tolist() == [1.0, 1.0, 1.0]


def test_explain_draws_rgba_outputs_as_images(tmp_path):
    torch.manual_seed(0)
    encoder = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4 * 16 * 16, D))
    data = torch.rand(40, 4, 16, 16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (a random model: its flags and notes are not the subject)
        page = ls.explain(encoder, _rgba_decoder(), data, out=tmp_path / "report", anchors=2, steps=3,
                          directions="coordinates", progress=False)
    html = page.read_text()
    assert "traversal grid of anchor 0" in html and "image/gif" in html
    assert "Sensitivity" not in html  # (1,024 "features" of a sprite were drawn as a table)


# ---- degenerate outputs --------------------------------------------------------------------


def _tabular(z):
    return torch.stack([z[:, 0], 2 * z[:, 1], z[:, 0] * z[:, 2]], dim=1)


def _images(z):
    return torch.sigmoid(torch.nn.functional.pad(z, (0, 16 - D))).view(-1, 1, 4, 4)


def _constant(z):
    return torch.full((len(z), 1, 4, 4), 0.3)


CASES = {
    "one anchor": dict(anchors=1),
    "one step": dict(steps=1),
    "one latent": dict(dims=[1]),
    "constant outputs": dict(decoder=_constant),
}


def _pictures_of(result):
    images = is_image_output(result.out_shape)
    yield "effect_bars", lambda: plots.effect_bars(result)
    yield "sensitivity_heatmap", lambda: plots.sensitivity_heatmap(result)
    yield "response_curves", lambda: plots.response_curves(result)
    if images:
        yield "traversal_grid", lambda: plots.traversal_grid(result)
        yield "traversal_gif", lambda: plots.traversal_gif(result)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("decoder", [_tabular, _images], ids=["tabular", "images"])
def test_pictures_of_degenerate_sweeps_draw_without_warnings(case, decoder):
    options = dict(CASES[case])
    result = _sweep(options.pop("decoder", decoder), steps=options.pop("steps", 5), **options)
    for name, draw in _pictures_of(result):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            picture = draw()
        if name != "traversal_gif":
            _rendered(picture)


def test_a_curve_of_one_step_is_drawn_as_points():
    result = _sweep(_tabular, steps=1)
    lines = [line for line in plots.response_curves(result).axes[0].get_lines() if line.get_linestyle() != ":"]
    assert lines and all(line.get_marker() == "o" for line in lines)  # (a one-point line is invisible)


def test_all_zero_effects_and_slopes_are_said():
    result = _sweep(_constant, steps=5)
    texts = [t.get_text() for t in plots.effect_bars(result).axes[0].texts]
    assert any("every effect is 0" in t for t in texts)
    assert "every slope is 0" in plots.sensitivity_heatmap(result).axes[0].get_title()
    one_step = _sweep(_tabular, steps=1)
    assert "one step have no slope" in plots.sensitivity_heatmap(one_step).axes[0].get_title()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _rendered(plots.effect_bars(result, log=True))


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
def test_nonfinite_values_in_a_result_are_refused_by_name(value):
    images, tabular = _sweep(_images, steps=4), _sweep(_tabular, steps=4)

    def edited(result, field):
        array = getattr(result, field).clone()
        array.view(-1)[::3] = value
        return dataclasses.replace(result, **{field: array})

    cases = [
        (plots.traversal_grid, edited(images, "outputs"), "traversal_grid", "result.outputs"),
        (plots.traversal_gif, edited(images, "outputs"), "traversal_gif", "result.outputs"),
        (plots.response_curves, edited(tabular, "outputs"), "response_curves", "result.outputs"),
        (plots.response_curves, edited(tabular, "sensitivity"), "response_curves", "result.sensitivity"),
        (plots.sensitivity_heatmap, edited(tabular, "sensitivity"), "sensitivity_heatmap", "result.sensitivity"),
        (plots.effect_bars, edited(tabular, "dim_effect"), "effect_bars", r"result.dim_effect"),
    ]
    for draw, result, fn, name in cases:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with pytest.raises(ValueError, match=rf"latentsweep.plots.{fn}: {name} has \d+ NaN/Inf value"):
                draw(result)
    with pytest.raises(ValueError, match=r"effect_bars: results\['mine'\].dim_effect has 1 NaN/Inf"):
        plots.effect_bars({"mine": edited(tabular, "dim_effect"), "other": tabular})


def test_the_cli_sample_picture_leaves_rgba_alpha_out_of_its_colour_scale(tmp_path):
    """Opaque colours in [2, 3]: the scale spanned alpha's 1 too, so colour 2 was drawn grey."""
    from latentsweep.cli.samples import save_samples_picture

    images = np.ones((2, 4, 3, 3), dtype=np.float32)
    images[:, :3] = 2.0
    images[1, :3] = 3.0
    figure = save_samples_picture(images, tmp_path / "s.png", per_row=2, row_label=str, title="t")
    drawn = figure.axes[0].get_images()[0].get_array()
    assert float(np.asarray(drawn)[1, 1, 0]) == 0.0  # colour 2, the scale's low end: black
