"""Pictures of large outputs (a Stable-Diffusion VAE's 3 x 512 x 512 and 1024 x 1024 images)
without large memory. The report's traversal grid of 12 latents x 11 steps of 3 x 512 x 512
outputs took 3.6 GB to draw and 3 GB more to save, its GIF 2 GB, the page 4.1 GB: every drawn
output was checked, colour-scaled and coloured in float64 copies at its full size, though the page
shows a tile at 68 pixels. Measured here at a small size: the bytes numpy allocates (tracemalloc),
relative to the outputs or to the picture itself, with the blocks the checks read made small."""

from __future__ import annotations

import importlib
import math
import re
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import latentsweep as ls
from latentsweep import html_report
from latentsweep.plots import _common, _images
from latentsweep.plots.cluster_panel import cluster_panel
from latentsweep.plots.direction_grid import direction_grid
from latentsweep.plots.traversal_gif import gif_bytes

SIDE = 256  # a test's outputs: 2 latents x 3 steps of 3 x 256 x 256 (4.5 MiB of float32)


def _peak_bytes(call):
    """(the most bytes Python and numpy held at once during ``call()`` above those before, its value)."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        value = call()
        return tracemalloc.get_traced_memory()[1] - before, value
    finally:
        tracemalloc.stop()


@pytest.fixture
def small_blocks(monkeypatch):
    """The checks read one image at a time (4M values a block at scale; these outputs are fewer)."""
    monkeypatch.setattr(_images, "BLOCK_VALUES", 3 * SIDE * SIDE, raising=False)


def _images_result(squash=torch.sigmoid, side: int = SIDE, dims=(0, 1), channels: int = 3) -> ls.TraversalResult:
    ramp = torch.linspace(-1, 1, side)

    def decoder(z):
        return squash(z[:, :channels, None, None] * ramp[:, None] + ramp + z[:, 3:4, None, None])

    anchors = torch.randn(1, 4, generator=torch.Generator().manual_seed(0))
    return ls.traverse(decoder, anchors, dims=list(dims), steps=3, progress=False)


def _mosaic_bytes(figure) -> int:
    return sum(np.asarray(image.get_array()).nbytes for ax in figure.axes for image in ax.get_images())


# --- the colour scale and the checks read the outputs a block at a time ---------------------------


@pytest.mark.parametrize("squash, most", [(torch.sigmoid, 0.1), (torch.tanh, 1.4)], ids=["in [0, 1]", "beyond"])
def test_the_colour_range_holds_no_float64_copy_of_the_outputs(small_blocks, squash, most):
    """Their finite values in float64 (twice: picked, then joined), masks of all of them, then
    halved in float64: 4 to 4.5 times the outputs' float32 bytes. Outputs beyond [0, 1] need
    their finite values once, in their own dtype, for the quantiles of the bulk (1.0), and one of
    the 12 images' temporaries at a time (0.2)."""
    outputs = _images_result(squash, dims=range(4)).outputs[0].numpy()
    peak, _ = _peak_bytes(lambda: _common.colour_range("f", None, None, outputs, image_shape=(3, SIDE, SIDE)))
    assert peak < most * outputs.nbytes, peak / outputs.nbytes


def test_the_quantiles_of_the_bulk_are_those_of_numpy_in_float64():
    """The colour range's quantiles, read from the values in their own dtype, are numpy's of the
    values in float64 to the last bit (the pictures' colours are those they were)."""
    generator = np.random.default_rng(0)
    for size in (1, 2, 3, 10, 11, 997, 4096):
        values = (generator.standard_normal(size) * 10.0 ** generator.integers(-3, 30)).astype(np.float32)
        expected = np.quantile(values.astype(np.float64), _common.BULK_QUANTILES).tolist()
        assert _common._quantiles(values.copy(), _common.BULK_QUANTILES) == expected, size


# --- the grids paint a tile at a time into their picture --------------------------------------------


def _traversal_grid(result):
    return ls.traversal_grid(result)


def _direction_grid(result):
    return direction_grid(result.outputs[0], ls.Directions.from_vectors(torch.eye(4)[:2]))


def _cluster_panel(result):
    clusters = ls.clusters(torch.randn(40, 4, generator=torch.Generator().manual_seed(0)), k=3)
    return cluster_panel(clusters, centroid_outputs=result.outputs[0, 0], interpolation={(0, 1): result.outputs[0, 1]})


@pytest.mark.parametrize("draw", [_traversal_grid, _direction_grid, _cluster_panel])
def test_a_picture_holds_its_image_not_every_tile_in_float64_beside_it(small_blocks, draw):
    """Every tile was coloured at once in float64 ([K, S, H, W, 3], as large as the picture) and
    its temporaries, then copied into the picture: 3 to 3.4 times the picture's bytes. Now the
    picture and matplotlib's copy of it (imshow copies and masks its image: 2.25 times)."""
    result = _images_result()
    draw(result).clear()  # (one-time allocations: fonts, colour maps)
    peak, figure = _peak_bytes(lambda: draw(result))
    assert peak < 2.5 * _mosaic_bytes(figure), peak / _mosaic_bytes(figure)


def test_a_grid_reads_and_checks_only_the_rows_it_draws(small_blocks):
    """All the anchor's traversals were checked for NaN (a mask of them all, a quarter of their
    bytes) before the drawn ones were picked: of 48 latents, 1 drawn, that mask alone was 4.7
    times its picture."""
    ramp = torch.linspace(-1, 1, SIDE)
    many = ls.traverse(lambda z: torch.sigmoid(z[:, :3, None, None] * ramp[:, None] + ramp),
                       torch.randn(1, 48, generator=torch.Generator().manual_seed(0)), steps=3, progress=False)
    ls.traversal_grid(many, max_dims=1).clear()
    peak, figure = _peak_bytes(lambda: ls.traversal_grid(many, max_dims=1))
    assert peak < 2.5 * _mosaic_bytes(figure), peak / _mosaic_bytes(figure)  # (as above)


# --- the GIF ---------------------------------------------------------------------------------------


def test_a_gif_too_large_is_refused_before_its_tiles_are_drawn(small_blocks, monkeypatch):
    """Every tile was coloured in float64 (8 times the refused bytes, with temporaries as many
    again) before the bound was checked."""
    monkeypatch.setattr(importlib.import_module("latentsweep.plots.traversal_gif"), "MAX_TILE_BYTES", 1000)
    result = _images_result()
    nbytes = result.outputs.numel() * 4

    def refused():
        with pytest.raises(ValueError, match="traversal_gif: tile_size=64 makes 2 x 3 tiles of 256 x 256 pixels"):
            ls.traversal_gif(result)

    peak, _ = _peak_bytes(refused)
    assert peak < 0.2 * nbytes, peak / nbytes  # (the checks' masks of one image at a time)


def test_a_shrunk_gif_holds_its_small_tiles_only(small_blocks):
    """The report's GIF coloured its outputs' full-size float64 copies before shrinking them
    (2 GB of 12 x 11 tiles of 3 x 512 x 512): 5 times the outputs' bytes."""
    result = _images_result()
    nbytes = result.outputs.numel() * 4
    gif_bytes(result, max_tile_size=64)
    peak, _ = _peak_bytes(lambda: gif_bytes(result, max_tile_size=64))
    assert peak < 0.3 * nbytes, peak / nbytes


# --- the report draws tiles no larger than it shows ------------------------------------------------


def test_the_reports_pictures_draw_large_outputs_averaged_down_to_its_tile_bound(monkeypatch, tmp_path):
    """Its grids and cluster panel drew 512 x 512 outputs at full size, a tile shown at 68
    pixels (0.75 inches at 90 dpi): 3.6 GB to draw 12 x 11 of them, 3 GB more to save them. Now
    at most 128 pixels a side, proportionally more at a higher dpi."""
    drawn = {}

    def spy(module, name):
        draw = getattr(module, name)

        def drawing(*args, **kwargs):
            figure = draw(*args, **kwargs)
            drawn.setdefault(name, []).append(max(max(np.asarray(ax.get_images()[0].get_array()).shape[:2])
                                                  for ax in figure.axes if ax.get_images()))
            return figure

        monkeypatch.setattr(module, name, drawing)

    spy(html_report, "traversal_grid")
    spy(importlib.import_module("latentsweep.plots.direction_grid"), "direction_grid")
    spy(importlib.import_module("latentsweep.plots.cluster_panel"), "cluster_panel")
    side = 300  # > 128: averaged over 3 x 3 pixels, 100 pixels a tile
    ramp = torch.linspace(-1, 1, side)
    decoder = lambda z: torch.sigmoid(z[:, :1, None, None] * ramp[:, None] + ramp)  # noqa: E731
    codes = torch.randn(20, 4, generator=torch.Generator().manual_seed(0))
    latents = ls.traverse(decoder, codes[:1], dims=[0], steps=2, progress=False)
    along = ls.traverse(decoder, codes[:1], directions=torch.eye(4)[:1], steps=2, progress=False)
    clusters = ls.clusters(codes, k=2)
    report = dict(results=latents, directions=along, clusters=clusters, centroid_outputs=decoder(clusters.centroids))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ls.report(tmp_path / "r.html", dpi=30, **report)
        # one row of two steps (or two tiles), each at most 128 pixels (the tile and its margins)
        assert all(size < 2.5 * 128 for sizes in drawn.values() for size in sizes), drawn
        assert sorted(drawn) == ["cluster_panel", "direction_grid", "traversal_grid"]
        assert len(drawn["traversal_grid"]) == 2  # its own, and beside the directions
        drawn.clear()
        ls.report(tmp_path / "r.html", dpi=180, gifs=False, **report)  # at most 256 pixels: means of 2 x 2
    shrunk_by_two = math.ceil(side / 2)
    assert all(2 * shrunk_by_two < size < 2.5 * shrunk_by_two for sizes in drawn.values() for size in sizes), drawn


def test_max_tile_size_is_checked_and_drawn_as_the_means_of_the_blocks():
    result = _images_result(side=10)
    for bad, error in ((0, ValueError), (1.5, TypeError), ("64", TypeError)):
        with pytest.raises(error, match="traversal_grid: max_tile_size"):
            ls.traversal_grid(result, max_tile_size=bad)
    full = np.asarray(ls.traversal_grid(result, order="dims").axes[0].get_images()[0].get_array())
    small = np.asarray(ls.traversal_grid(result, order="dims", max_tile_size=5).axes[0].get_images()[0].get_array())
    assert small.shape[0] < full.shape[0] / 1.5 and small.shape[1] < full.shape[1] / 1.5
    # the first tile (its pad: 0.08 of its side, at least 1 pixel): the means of 2 x 2 pixels of
    # RGB outputs in [0, 1] (drawn as they are)
    outputs = result.outputs[0, 0, 0].numpy().transpose(1, 2, 0)  # [10, 10, 3]
    means = outputs.reshape(5, 2, 5, 2, 3).mean(axis=(1, 3))
    np.testing.assert_allclose(small[1:6, 1:6], means, rtol=1e-6)
    np.testing.assert_allclose(full[1:11, 1:11], outputs, rtol=1e-6)


def test_the_readme_and_the_report_quote_its_tile_bound():
    readme = re.sub(r"\s+", " ", (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8"))
    docstring = re.sub(r"\s+", " ", ls.report.__doc__)
    pixels, dpi = html_report.TILE_PIXELS, html_report.DEFAULT_DPI
    assert f"tiles at most {pixels} pixels a side ({pixels} x dpi / {dpi} at a dpi above {dpi}; its GIFs' at {pixels})" in readme
    assert f"larger than {pixels} pixels a side (more at a dpi above {dpi}: {pixels} x dpi / {dpi})" in docstring
    assert ls.report.__kwdefaults__["dpi"] == dpi


def _grids_drawn(monkeypatch, module) -> list[dict]:
    """The keywords of each traversal_grid that ``module`` draws from here on."""
    drawn, draw = [], module.traversal_grid

    def recording(*args, **kwargs):
        drawn.append(kwargs)
        return draw(*args, **kwargs)

    monkeypatch.setattr(module, "traversal_grid", recording)
    return drawn


def test_the_training_logs_draw_tiles_no_larger_than_they_show(monkeypatch):
    """log_traversals (and the Lightning callback) drew the outputs' tiles at their own size for
    a picture of 0.75 inches a tile: 3.6 GB of memory for 12 x 11 outputs of 3 x 512 x 512."""
    import matplotlib

    from latentsweep.integrations import _common as integrations_common
    from latentsweep.integrations.tensorboard import log_traversals
    from latentsweep.plots._common import shown_tile_pixels
    from training_models import TinyVAE, digits

    class Writer:
        def add_scalar(self, *args, **kwargs):
            pass

        def add_image(self, *args, **kwargs):
            pass

        def add_text(self, *args, **kwargs):
            pass

    drawn = _grids_drawn(monkeypatch, integrations_common)
    torch.manual_seed(0)
    model = TinyVAE()
    log_traversals(Writer(), model.encoder, model.decoder, digits(16), step=1)
    assert drawn and all(kwargs["max_tile_size"] == shown_tile_pixels(matplotlib.rcParams["figure.dpi"])
                         for kwargs in drawn)


def test_the_command_lines_traversal_pictures_draw_tiles_no_larger_than_they_show(monkeypatch, tmp_path):
    """latentsweep traverse saved its grids (at dpi 100) from tiles at the outputs' own size."""
    import latentsweep.plots
    from latentsweep.cli import main
    from latentsweep.plots._common import SAVE_DPI, shown_tile_pixels

    (tmp_path / "image_model.py").write_text(
        "import torch\n"
        "class Model(torch.nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.encoder = torch.nn.Linear(64, 2)\n"
        "        self.decoder = torch.nn.Sequential(torch.nn.Linear(2, 64), torch.nn.Sigmoid())\n")
    np.save(tmp_path / "x.npy", np.random.default_rng(0).random((6, 64), dtype=np.float32))
    drawn = _grids_drawn(monkeypatch, latentsweep.plots)
    code = main(["traverse", "--model", str(tmp_path / "image_model.py") + ":Model", "--data", str(tmp_path / "x.npy"),
                 "--anchors", "1", "--steps", "3", "--image-shape", "8,8", "--out", str(tmp_path / "out")])
    assert code == 0
    assert drawn and all(kwargs["max_tile_size"] == shown_tile_pixels(SAVE_DPI) for kwargs in drawn)


def test_the_samples_picture_averages_large_outputs_down_to_the_shown_tile_bound(tmp_path):
    """latentsweep sample's picture had a tile bound of its own (256 pixels, beside the report's
    rule) and reached it by striding, every third pixel of a 600-pixel output (aliasing)."""
    from latentsweep.cli.samples import save_samples_picture
    from latentsweep.plots._common import SAVE_DPI, shown_tile_pixels

    images = np.random.default_rng(0).random((2, 1, 600, 600), dtype=np.float32)
    figure = save_samples_picture(images, tmp_path / "s.png", per_row=2, row_label=str, title="t")
    canvas = np.asarray(figure.axes[0].get_images()[0].get_array())
    side = canvas.shape[0] + 1  # one row of tiles, and a pixel after it
    assert side - 1 <= shown_tile_pixels(SAVE_DPI)
    factor = -(-600 // shown_tile_pixels(SAVE_DPI))
    means = images[0, 0].reshape(600 // factor, factor, 600 // factor, factor).mean(axis=(1, 3))
    # (the grey colour map's 256 levels: a strided pixel is ~0.06 from its block's mean)
    np.testing.assert_allclose(canvas[: side - 1, : side - 1, 0], means, rtol=0, atol=1.01 / 255)
