"""explain, report and the command line's report at a large model's scale (a Stable-Diffusion
VAE's [4, 32, 32] latents and 3 x 256 x 256 images, a tabular VAE's 512 latents, 50,000-200,000
inputs), found adversarially. Each defect kept at a small size: a machine's memory as a
monkeypatched number, a module's bound made small, a few hundred pixels for a large image."""

from __future__ import annotations

import base64
import contextlib
import functools
import importlib
import io
import re

import numpy as np
import pytest
import torch
from PIL import Image

import latentsweep as ls
from latentsweep import _checks, explain_work, explanation, html_report, merge
from latentsweep.plots import _common
from latentsweep.plots._images import shrunk
from latentsweep.sinks import Geometry
from cli_models import tiny_data, tiny_vae_source
from peak_memory import linux_only, peak_bytes
from picture_models import LATENT_DIM, synthetic_posterior

MIB = 2**20


class CountingDecoder(torch.nn.Module):
    """LATENT_DIM -> ``features`` values, counting the codes it decodes."""

    def __init__(self, features: int):
        super().__init__()
        torch.manual_seed(0)
        self.layer = torch.nn.Linear(LATENT_DIM, features)
        self.rows = 0

    def forward(self, z):
        self.rows += z.shape[0]
        return torch.sigmoid(self.layer(z))


# --- explain counts its sweeps together, before the first, in its own words ----------------------


def test_sweeps_that_fit_alone_but_not_together_are_refused_before_any_sweep(monkeypatch, tmp_path):
    """Each of explain's sweeps was checked alone, by traverse, against half of the memory: two
    of 45% each (the latents, and the posterior's range beside them) passed and together
    held 90% (at [4, 32, 32] latents of 3 x 256 x 256 images traverse refused each with its own
    advice, out='sweep.zarr' or keep_outputs=False, which explain does not take)."""
    decoder = CountingDecoder(2048)
    one_sweep = Geometry(2, 4, 5, (2048,), torch.float32).result_bytes(True)  # 2 anchors x 4 active latents x 5 steps
    monkeypatch.setattr(_checks, "physical_memory", lambda: 3 * one_sweep)  # half of it: 1.5 sweeps
    with pytest.raises(ValueError, match=r"^latentsweep\.explain: keeping its sweeps' results, 80 decoded outputs of "
                                         r"shape \[2048\] \(anchors x traversals x steps: latents in mode 'prior' "
                                         r"2 x 4 x 5; latents in mode 'posterior' \(for contrast\) 2 x 4 x 5\), needs "
                                         r".* GiB, more than 50% of this CPU's .*; pass fewer steps, anchors or dims$"):
        ls.explain(None, decoder, None, posterior=synthetic_posterior(40, seed=0), out=tmp_path, anchors=2, steps=5,
                   progress=False)
    assert decoder.rows < 10  # the one code probed for the outputs' shape (and its anchor), no grid
    assert not (tmp_path / "report.html").exists()


def test_a_refusal_after_encoding_says_how_not_to_encode_again(monkeypatch, tmp_path):
    monkeypatch.setattr(_checks, "physical_memory", lambda: 80_000)  # 2 x 8 x 6 x 11 outputs of 16 values: 72 kB
    encoder = torch.nn.Linear(16, 2 * LATENT_DIM)
    with pytest.raises(ValueError, match=r"pass fewer steps, anchors or dims \(the data is encoded first: encode it "
                                         r"once, posterior = latentsweep\.encode\(encoder, data\), and pass posterior="):
        ls.explain(lambda x: encoder(x).chunk(2, dim=1), CountingDecoder(16), torch.rand(40, 16), out=tmp_path,
                   progress=False)


def test_a_large_explanation_says_what_it_decodes_and_how_to_decode_less(monkeypatch, tmp_path):
    unwritten = functools.wraps(html_report.report)(lambda path, **_: path)  # (the pictures are not what is tested)
    monkeypatch.setattr(explanation, "report", unwritten)
    options = dict(posterior=synthetic_posterior(40, seed=0), anchors=2, steps=5, progress=False)
    with _no_sweeps_warning():  # (as small as this, nothing to say)
        ls.explain(None, CountingDecoder(64), None, out=tmp_path / "small", **options)
    monkeypatch.setattr(explain_work, "LARGE_WORK_VALUES", 80 * 64 - 1)  # the two latent sweeps' values
    with pytest.warns(UserWarning, match=r"explain: its sweeps decode 80 decoded outputs of shape \[64\] .* 2 x 4 x 5; "
                                         r".*: this may take long; pass fewer steps, anchors or dims"):
        ls.explain(None, CountingDecoder(64), None, out=tmp_path / "large", **options)


@contextlib.contextmanager
def _no_sweeps_warning():
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    said = [str(w.message) for w in caught if "its sweeps decode" in str(w.message)]
    assert not said, said


# --- traverse counts the sensitivity [K, F] of every traversal --------------------------------------


@pytest.mark.parametrize("store", [False, True], ids=["memory", "store"])
def test_statistics_too_large_for_the_memory_are_refused_before_decoding(monkeypatch, tmp_path, store):
    """traverse(keep_outputs=False) of every latent of a [4, 32, 32] latent with 3 x 256 x 256
    outputs counted only the effect [A, K, S] (3 MB) and held 22 GB of a 24 GB machine: the
    sensitivity [K, F], its float64 sums merged in unit order and the C++ statistics' own."""
    decoded = []

    def decoder(z):
        decoded.append(z.shape[0])
        return z.repeat(1, 16)  # F = 1024

    anchors = torch.zeros(1, 64)
    grid = Geometry(1, 64, 2, (1024,), torch.float32)
    statistics = grid.result_bytes(False) + grid.merging_bytes(True)  # 1.3 MB; the effect 512 bytes
    monkeypatch.setattr(_checks, "physical_memory", lambda: statistics - 1)
    with pytest.raises(ValueError, match=r"^latentsweep\.traverse: the statistics of 64 traversals of 1,024 output "
                                         r"features each .* needs .* GiB, more than this CPU's .*; traverse fewer "
                                         r"latents \(dims=\) or directions$"):
        ls.traverse(decoder, anchors, steps=2, keep_outputs=False, progress=False, batch_size=16,
                    out=tmp_path / "s.zarr" if store else None)
    assert sum(decoded) <= 1  # the anchor, probed for the outputs' shape
    monkeypatch.setattr(_checks, "physical_memory", lambda: statistics)
    ls.traverse(decoder, anchors, steps=2, keep_outputs=False, progress=False, batch_size=16,
                out=tmp_path / "t.zarr" if store else None)


def test_the_sensitivity_is_divided_into_the_result_with_the_same_bits(monkeypatch):
    sums = torch.randn(37, 50, dtype=torch.float64) * 1e3
    merged = merge.OrderedMerge(37, 50)
    merged.sensitivity_sum.copy_(sums)
    monkeypatch.setattr(merge, "RESULT_BLOCK_VALUES", 120)  # blocks of 2 latents' rows
    for dtype in (torch.float32, torch.float64):
        _, sensitivity = merged.result("f", num_anchors=3, num_steps=2, dtype=dtype)
        assert torch.equal(sensitivity, (sums / 3.0).to(dtype))
    assert torch.equal(merged.sensitivity_sum, sums)  # (the sums stay as they were)
    merged.sensitivity_sum[5, 7] = 1e300
    with pytest.raises(ValueError, match=r"sensitivity overflowed float32 in rows \[5\]"):
        merged.result("f", num_anchors=1, num_steps=2, dtype=torch.float32)


@linux_only
def test_the_merge_holds_no_second_float64_copy_of_the_sums():
    """The quotient of all the sums at once was a float64 [K, F] beside them (6 GiB at 4,096
    latents of 3 x 256 x 256 outputs)."""
    setup = """
import torch
from latentsweep.merge import OrderedMerge
merged = OrderedMerge(256, 65536)   # sums: 128 MiB of float64
merged.sensitivity_sum.fill_(1.0)
"""
    peak = peak_bytes(setup, "result = merged.result('f', num_anchors=2, num_steps=3, dtype=torch.float32)")
    assert peak < 128 * MIB, peak / MIB  # the float32 result (64 MiB) and a block's temporaries: 90; was 193


# --- pictures of many latents and inputs --------------------------------------------------------------


@linux_only
def test_the_posterior_sds_read_only_the_drawn_latents():
    """sigma_histograms made float64 posterior SDs of every latent to draw 48 of them: +4.7 GB at
    N = 50,000 inputs of D = 4,096 latents (the report's 'Latent space' section)."""
    setup = """
import torch, latentsweep as ls
from latentsweep.plots import sigma_histograms
g = torch.Generator().manual_seed(0)
posterior = ls.Posterior(torch.randn(10000, 1024, generator=g), torch.randn(10000, 1024, generator=g) - 4)
sigma_histograms(ls.Posterior(posterior.mu[:100, :4], posterior.logvar[:100, :4]), max_dims=2).clear()
"""
    peak = peak_bytes(setup, "sigma_histograms(posterior, max_dims=2).clear()")
    assert peak < 20 * MIB, peak / MIB  # the log-variances alone are 40 MiB of float32 (were 230 MiB read)


def test_the_report_draws_the_posterior_sds_of_largest_kl_when_not_all_fit(monkeypatch, tmp_path):
    """The report's 48 panels were the first 48 latents by index: a corner of one channel of a
    [4, 32, 32] latent, whatever their KL."""
    drawn = []
    draw = html_report.sigma_histograms

    def spy(*args, **kwargs):
        figure = draw(*args, **kwargs)
        drawn.extend(re.match(r"(z\d+):", ax.get_title())[1] for ax in figure.axes)
        return figure

    monkeypatch.setattr(html_report, "sigma_histograms", spy)
    monkeypatch.setattr(_common, "DEFAULT_MAX_PANELS", 2)
    posterior = synthetic_posterior(40, seed=0)  # KL: z1 > z3 > z2 > z0 > collapsed z4, z5
    path = ls.report(tmp_path / "r.html", posterior=posterior, dpi=30)
    assert drawn == ["z1", "z3"]
    assert "The 2 latents of largest KL of the 6 are drawn." in path.read_text()


def _images_result(side: int) -> ls.TraversalResult:
    decoder = lambda z: torch.sigmoid(z[:, :3, None, None] + torch.linspace(-1, 1, side)).expand(-1, 3, side, side)  # noqa: E731
    return ls.traverse(decoder, torch.randn(1, LATENT_DIM), dims=[0, 1], steps=3, progress=False)


def _gifs(path) -> list[Image.Image]:
    found = re.findall(r'src="data:image/gif;base64,([^"]+)"', path.read_text())
    return [Image.open(io.BytesIO(base64.b64decode(data))) for data in found]


def test_the_reports_gifs_draw_large_outputs_at_most_gif_tile_pixels_a_side(tmp_path):
    """A report's GIF held every tile at the outputs' own size: 5.9 MB each for 12 latents of
    3 x 256 x 256 images, 24 MB at 512 x 512 (a page of 59 MB), though the page shows them at
    about 110 pixels."""
    (gif,) = _gifs(ls.report(tmp_path / "r.html", results=_images_result(300), dpi=30))
    # 2 tiles of 300 / 3 = 100 pixels side by side (and their labels' margins), not of 300
    assert gif.size[0] < 2 * 300 and gif.size[1] < 300, gif.size
    (small,) = _gifs(ls.report(tmp_path / "s.html", results=_images_result(96), dpi=30))
    assert small.size[0] > 2 * 96  # smaller outputs as they were


def test_the_reports_gif_of_outputs_larger_than_its_bound_is_drawn_not_refused(monkeypatch, tmp_path):
    """At 12 latents x 11 steps of 3 x 1024 x 1024 outputs the GIF's tiles (415 MB) were refused
    after every sweep of explain had run: its report was lost."""
    monkeypatch.setattr(importlib.import_module("latentsweep.plots.traversal_gif"), "MAX_TILE_BYTES", 2 * 3 * 300 * 300 * 3 - 1)  # as 300 x 300 tiles
    path = ls.report(tmp_path / "r.html", results=_images_result(300), dpi=30)
    assert len(_gifs(path)) == 1


def test_shrunk_images_are_the_means_of_their_blocks():
    images = np.arange(2 * 3 * 5 * 7, dtype=np.float32).reshape(2, 1, 3, 5, 7)  # [2, 1] images (3, 5, 7)
    small, shape = shrunk(images, 2, (3, 5, 7), max_side=4)  # factor 2: 5 x 7 -> 3 x 4
    assert shape == (3, 3, 4) and small.shape == (2, 1, 3, 3, 4)
    assert small[1, 0, 2, 0, 0] == images[1, 0, 2, 0:2, 0:2].mean()
    assert small[1, 0, 2, 2, 3] == images[1, 0, 2, 4, 6]  # the corner's block holds one pixel
    assert shrunk(images, 2, (3, 5, 7), max_side=7)[0] is images


# --- the command line's report --------------------------------------------------------------------------


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_report_command_shows_its_sweeps_progress_on_a_terminal(tmp_path):
    """Its sweeps ran with progress=False: on a terminal the encoder's bar, then nothing for the
    sweeps (hours at a Stable-Diffusion VAE's scale)."""
    from latentsweep.cli import main

    (tmp_path / "tiny.py").write_text(tiny_vae_source())
    np.save(tmp_path / "data.npy", tiny_data())
    stderr = Terminal()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(stderr):
        code = main(["report", "--model", f"{tmp_path / 'tiny.py'}:make", "--data", str(tmp_path / "data.npy"),
                     "--anchors", "2", "--steps", "3", "--out", str(tmp_path / "out")])
    assert code == 0, stderr.getvalue()
    assert re.search(r"traverse: 100%.* 18\.0/18\.0 ", stderr.getvalue()), stderr.getvalue()  # 2 x 3 latents x 3 steps


def test_a_diagnosis_table_of_many_latents_scrolls_in_a_box_of_its_own(tmp_path):
    """The report's diagnosis table of 4,096 latents (a [4, 32, 32] latent) was 4,096 rows in the
    page's flow, about 1 MB of text between the findings and the first picture."""
    from latentsweep import html_report

    def table_box(latents: int) -> str:
        gen = torch.Generator().manual_seed(0)
        posterior = ls.Posterior(torch.randn(30, latents, generator=gen), torch.randn(30, latents, generator=gen) - 2)
        page = ls.report(tmp_path / f"r{latents}.html", diagnosis=ls.diagnose(posterior)).read_text()
        return page.split("<h2>Diagnosis</h2>", 1)[1].split("<table>", 1)[0]

    assert 'class="scroll"' in table_box(html_report.TABLE_ROWS_IN_PAGE)
    assert 'class="scroll tall"' in table_box(html_report.TABLE_ROWS_IN_PAGE + 1)
