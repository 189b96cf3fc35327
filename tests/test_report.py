"""The HTML report: one self-contained file (inline pictures, nothing fetched), with the
diagnosis, the flags and their recommendations, the recommended mode and the pictures; text
escaped; plain autoencoders; and, where Chromium is installed, a real render."""

from __future__ import annotations

import base64
import html
import io
import re
import shutil
import subprocess

import numpy as np
import pytest
import torch
from PIL import Image

import latentsweep
from picture_models import LATENT_DIM, small_decoder, synthetic_posterior

D = LATENT_DIM
TITLE = 'VAE <script>alert("x")</script> & co'


@pytest.fixture(scope="module")
def posterior() -> latentsweep.Posterior:
    return synthetic_posterior(200, seed=2)


@pytest.fixture(scope="module")
def image_results(posterior):
    decoder = small_decoder(64, 1, 8, 8)
    anchors = posterior[:2]
    return {
        "prior": latentsweep.traverse(decoder, anchors, steps=7, progress=False),
        "posterior": latentsweep.traverse(decoder, anchors, mode="posterior", steps=7, progress=False),
    }


@pytest.fixture(scope="module")
def vae_report(tmp_path_factory, posterior, image_results):
    path = tmp_path_factory.mktemp("report") / "nested" / "vae.html"
    written = latentsweep.report(
        path, posterior=posterior, results=image_results, title=TITLE,
        inputs=torch.rand(2, 1, 8, 8), anchor_indices=(0, 1),
    )
    return written, written.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def ae_report(tmp_path_factory, posterior):
    codes = posterior.mu
    result = latentsweep.traverse(small_decoder(13), codes[:4], mode="empirical", reference=codes, steps=5, progress=False)
    path = tmp_path_factory.mktemp("report") / "ae.html"
    names = [f"feat<{i}>" for i in range(13)]
    latentsweep.report(path, posterior=latentsweep.Posterior(codes), results=result, feature_names=names)
    return path.read_text(encoding="utf-8")


def _img_sources(document: str) -> list[str]:
    return re.findall(r"<img[^>]*\ssrc=\"([^\"]*)\"", document)


def test_report_is_written_with_the_diagnosis(vae_report, posterior):
    path, document = vae_report
    assert path.is_file() and path.name == "vae.html"
    assert document.startswith("<!DOCTYPE html>") and document.rstrip().endswith("</html>")
    diagnosis = latentsweep.diagnose(posterior)
    assert {f.code for f in diagnosis.flags} >= {"small-posterior-sd", "collapsed"}
    for flag in diagnosis.flags:
        assert f"<code>{flag.code}</code>" in document
        assert html.escape(flag.recommendation) in document
    assert "Recommended traversal mode: <code>prior</code>" in document
    assert "Traverse by the prior, not the posterior" in document
    assert html.escape(diagnosis.recommendation) in document
    assert html.escape('mode="prior", dims=[0, 1, 2, 3]') in document
    assert document.count('<tr class="flagged">') == D  # every dim carries a flag here


def test_report_pictures_are_inline(vae_report):
    _, document = vae_report
    sources = _img_sources(document)
    # KL bars, sigma histograms, effect bars, and per traversal 2 anchors x (grid + GIF).
    assert len(sources) == 3 + 2 * 2 * 2
    assert all(src.startswith(("data:image/png;base64,", "data:image/gif;base64,")) for src in sources)
    gifs = [src for src in sources if src.startswith("data:image/gif")]
    assert len(gifs) == 4
    gif = Image.open(io.BytesIO(base64.b64decode(gifs[0].split(",", 1)[1])))
    assert gif.n_frames == 2 * 7 - 2
    png = Image.open(io.BytesIO(base64.b64decode(sources[0].split(",", 1)[1])))
    assert png.format == "PNG" and png.size[0] > 300


def test_report_fetches_nothing(vae_report):
    _, document = vae_report
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", document, re.I)
    assert "http://" not in document and "https://" not in document
    for tag in ("<script", "<link", "<iframe", "@import", "url("):
        assert tag not in document.lower()


def test_report_escapes_text(vae_report, ae_report):
    _, document = vae_report
    assert "<script>" not in document
    assert f"<title>{html.escape(TITLE)}</title>" in document
    assert f"<h1>{html.escape(TITLE)}</h1>" in document
    assert "feat<" not in ae_report  # feature names appear only inside the pictures


def test_report_shows_prior_and_posterior_one_after_the_other(vae_report):
    _, document = vae_report
    assert "Traversals compared (2)" in document
    assert "All 2 traversals start from the same 2 anchor(s)" in document
    assert document.count('<div class="column">') == 2
    assert "<h3>prior</h3>" in document and "<h3>posterior</h3>" in document
    assert "mode &#x27;posterior&#x27;" in document


def test_report_plain_autoencoder(ae_report):
    assert "Recommended traversal mode: <code>empirical</code>" in ae_report
    assert "no KL per latent and no posterior SD" in ae_report
    alts = re.findall(r'alt="([^"]*)"', ae_report)
    assert alts == ["Effect per latent", "empirical: response curves", "empirical: sensitivity heatmap"]
    assert "No problems found." in ae_report


def test_report_from_a_result_alone(tmp_path, image_results):
    name = '<b>"prior"</b>'
    path = latentsweep.report(tmp_path / "r.html", results={name: image_results["prior"]}, gifs=False, max_dims=2)
    document = path.read_text(encoding="utf-8")
    assert "Recommended traversal mode" not in document
    assert len(_img_sources(document)) == 2  # effect bars and one grid
    assert "<b>" not in document and f"<h3>{html.escape(name)}</h3>" in document
    assert f'alt="{html.escape(name)}: traversal grid of anchor 0"' in document


def test_report_bad_arguments(tmp_path, posterior, image_results):
    with pytest.raises(ValueError, match="nothing to report"):
        latentsweep.report(tmp_path / "r.html")
    with pytest.raises(TypeError, match="TraversalResult"):
        latentsweep.report(tmp_path / "r.html", results=[image_results["prior"]])
    with pytest.raises(ValueError, match="image_shape"):
        latentsweep.report(tmp_path / "r.html", results=image_results, image_shape=(9, 9))
    with pytest.raises(ValueError, match="anchor_indices=5 is out of range"):
        latentsweep.report(tmp_path / "r.html", results=image_results, anchor_indices=(5,))
    with pytest.raises(TypeError, match="Posterior"):
        latentsweep.report(tmp_path / "r.html", posterior=posterior.mu)
    with pytest.raises(ValueError, match="is a folder"):
        latentsweep.report(tmp_path, results=image_results)
    with pytest.raises(TypeError, match="title must be a string"):
        latentsweep.report(tmp_path / "r.html", results=image_results, title=None)
    assert not (tmp_path / "r.html").exists()


def test_report_refuses_parts_of_models_of_different_latent_sizes(tmp_path, posterior, image_results):
    wider = latentsweep.Posterior(torch.cat([posterior.mu, posterior.mu[:, :2]], 1),
                                  torch.cat([posterior.logvar, posterior.logvar[:, :2]], 1))
    other = latentsweep.diagnose(wider)
    out = tmp_path / "r.html"
    with pytest.raises(ValueError, match=rf"different latent sizes \(diagnosis D={LATENT_DIM + 2}, "
                                         rf"results\['prior'\] D={LATENT_DIM}"):
        latentsweep.report(out, diagnosis=other, results=image_results)
    with pytest.raises(ValueError, match=rf"diagnosis D={LATENT_DIM + 2}, posterior D={LATENT_DIM}"):
        latentsweep.report(out, diagnosis=other, posterior=posterior)
    clusters = latentsweep.clusters(wider.mu, k=2, seed=0)
    with pytest.raises(ValueError, match=rf"posterior D={LATENT_DIM}, clusters D={LATENT_DIM + 2}"):
        latentsweep.report(out, posterior=posterior, clusters=clusters)
    assert not out.exists()
    # The pictures make the same check.
    with pytest.raises(ValueError, match=rf"the result's codes have D={LATENT_DIM} latents but the diagnosis has {LATENT_DIM + 2}"):
        latentsweep.plots.traversal_grid(image_results["prior"], diagnosis=other)
    with pytest.raises(ValueError, match=rf"codes have D={LATENT_DIM} latents but the diagnosis has {LATENT_DIM + 2}"):
        latentsweep.plots.sigma_histograms(posterior, diagnosis=other)
    # Traversals alone may compare models of different sizes.
    wide_decoder = torch.nn.Sequential(torch.nn.Linear(LATENT_DIM + 2, 64), torch.nn.Unflatten(1, (1, 8, 8)))
    wide_result = latentsweep.traverse(wide_decoder, wider[:2], steps=3, progress=False)
    latentsweep.report(out, results={"narrow": image_results["prior"], "wide": wide_result}, gifs=False)
    assert out.exists()


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.skipif(_chromium() is None, reason="no Chromium on this machine")
def test_report_renders_in_headless_chromium(vae_report, tmp_path):
    path, _ = vae_report
    screenshot = tmp_path / "report.png"
    command = [
        _chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
        f"--screenshot={screenshot}", "--window-size=1200,2000", path.resolve().as_uri(),
    ]
    run = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert screenshot.is_file(), f"Chromium wrote no screenshot (exit {run.returncode}): {run.stderr[-2000:]}"
    with Image.open(screenshot) as shot:
        pixels = np.asarray(shot.convert("RGB"))
    assert pixels.shape[:2] == (2000, 1200)
    non_white = (pixels < 245).any(axis=-1).mean()
    colours = len(np.unique(pixels.reshape(-1, 3)[::7], axis=0))
    assert non_white > 0.05, f"the page looks blank: {non_white:.1%} non-white pixels"
    assert colours > 50, f"the page looks blank: {colours} distinct colours"


def test_report_recommends_empirical_when_codes_miss_the_prior(tmp_path):
    gen = torch.Generator().manual_seed(3)
    mu = torch.randn(300, 3, generator=gen) * torch.tensor([1.0, 4.0, 1.0])  # z1 spreads far wider
    diagnosis = latentsweep.diagnose(latentsweep.Posterior(mu, torch.full((300, 3), -4.0)))
    assert diagnosis.flag("marginal-mismatch").dims == [1]
    document = latentsweep.report(tmp_path / "r.html", diagnosis=diagnosis).read_text(encoding="utf-8")
    assert "Recommended traversal mode: <code>empirical</code>" in document
    assert "Traverse by the spread of the codes" in document and "not by the posterior" in document
    assert "<code>marginal-mismatch</code>" in document
    assert html.escape('mode="empirical", reference=posterior.mu') in document
    assert len(_img_sources(document)) == 1  # KL bars only: no posterior, no results


def test_no_nan_is_written_as_a_number(tmp_path):
    """A collapsed VAE has no active latent to average; codes that do not vary have no share
    of variance: said in words, never "nan" or "nan%"."""
    decoder = lambda z: torch.sigmoid(z @ torch.ones(z.shape[1], 64)).view(-1, 1, 8, 8)  # noqa: E731
    generator = torch.Generator().manual_seed(0)
    collapsed = lambda x: (1e-3 * torch.randn(x.shape[0], 6, generator=generator), torch.zeros(x.shape[0], 6))  # noqa: E731
    page = latentsweep.explain(collapsed, decoder, torch.rand(40, 1, 8, 8, generator=generator), out=tmp_path / "e",
                               progress=False).read_text(encoding="utf-8")
    assert "No traversed latent is active" in page and "over nan" not in page
    codes = torch.zeros(30, 6)
    codes[:, 0] = 1
    flat = latentsweep.Posterior(codes, None)
    along = latentsweep.traverse(decoder, flat[:2], directions=torch.eye(6)[:2], steps=3, progress=False)
    page = latentsweep.report(tmp_path / "c.html", posterior=flat, directions=along).read_text(encoding="utf-8")
    assert "nan%" not in page and "<td>n/a</td>" in page


@pytest.mark.parametrize(
    "keyword, value, error, message",
    [
        ("inputs", "x", TypeError, "inputs must be a tensor or a numeric array"),
        ("inputs", torch.zeros(2, 1, 7, 7), ValueError, r"inputs must hold one output of shape \(1, 8, 8\)"),
        ("reconstructions", torch.zeros(3, 64), ValueError, r"reconstructions must hold one output of shape"),
        ("inputs", torch.zeros(1, 8, 8, device="meta"), ValueError, "inputs is on the meta device"),
    ],
)
def test_report_names_its_own_bad_inputs_up_front(tmp_path, image_results, keyword, value, error, message):
    """report's inputs= and reconstructions= are report's arguments: checked before any picture
    is drawn, with report's name (they were named traversal_grid's input and reconstruction)."""
    with pytest.raises(error, match=rf"^latentsweep\.report: {message}"):
        latentsweep.report(tmp_path / "r.html", results=image_results, gifs=False, **{keyword: value})
    assert not (tmp_path / "r.html").exists()


def test_report_checks_images_beside_results_without_outputs(tmp_path, posterior):
    """With keep_outputs=False no grid is drawn, but inputs= of the wrong shape is still the
    caller's mistake (it was accepted silently)."""
    result = latentsweep.traverse(small_decoder(64, 1, 8, 8), posterior[:2], steps=3, keep_outputs=False,
                                  progress=False)
    with pytest.raises(ValueError, match=r"^latentsweep\.report: inputs must hold one output of shape \(1, 8, 8\)"):
        latentsweep.report(tmp_path / "r.html", results=result, inputs=torch.zeros(2, 1, 7, 7))
    latentsweep.report(tmp_path / "r.html", results=result, inputs=torch.zeros(2, 1, 8, 8))
    assert "were not kept" in (tmp_path / "r.html").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "names, error, message",
    [
        ([f"f{i}" for i in range(3)], ValueError, "feature_names has 3 names but the decoder outputs 7 features"),
        ("abc", TypeError, "feature_names must be a sequence of names, got one string"),
        (7, TypeError, "feature_names must be a sequence of names, got int"),
    ],
)
def test_report_names_its_own_bad_feature_names_up_front(tmp_path, posterior, names, error, message):
    """Named as report's argument, not response_curves'; before the pictures. (7 features: all
    are drawn, so the report picks none itself.)"""
    result = latentsweep.traverse(small_decoder(7), posterior.mu[:2], steps=3, progress=False)
    with pytest.raises(error, match=rf"^latentsweep\.report: {message}"):
        latentsweep.report(tmp_path / "r.html", results=result, feature_names=names)
    assert not (tmp_path / "r.html").exists()


def test_report_refuses_feature_names_for_outputs_drawn_as_images(tmp_path, posterior):
    """Image outputs have no features to name: the names were ignored (the command line refused
    them), whether the outputs are images or drawn as such by image_shape."""
    images = latentsweep.traverse(small_decoder(64, 1, 8, 8), posterior[:2], steps=3, progress=False)
    with pytest.raises(ValueError, match=r"^latentsweep\.report: feature_names names the features of tabular "
                                         r"outputs, but these outputs \(shape \[1, 8, 8\] per code\) are drawn as images"):
        latentsweep.report(tmp_path / "r.html", results=images, feature_names=[f"p{i}" for i in range(64)])
    flat = latentsweep.traverse(small_decoder(64), posterior[:2], steps=3, progress=False)
    with pytest.raises(ValueError, match=r"outputs \(shape \[64\] per code\) are drawn as images"):
        latentsweep.report(tmp_path / "r.html", results=flat, image_shape=(8, 8), feature_names=[f"p{i}" for i in range(64)])
    assert not (tmp_path / "r.html").exists()
    latentsweep.report(tmp_path / "r.html", results=flat, feature_names=[f"p{i}" for i in range(64)])


def test_report_takes_feature_names_from_a_generator(tmp_path, posterior):
    """Checked once up front and passed on as the checked list (a generator is read once)."""
    result = latentsweep.traverse(small_decoder(13), posterior.mu[:2], steps=3, progress=False)
    document = latentsweep.report(tmp_path / "r.html", results={"a": result, "b": result},
                                  feature_names=(f"feat{i}" for i in range(13))).read_text(encoding="utf-8")
    assert document.count("<img") == 5  # effect bars, then curves and heatmap of each


def test_a_diagnosis_of_the_means_alone_beside_a_vae_posterior_is_refused(tmp_path, posterior):
    """diagnose(posterior.mu) by mistake: the page called the VAE a plain autoencoder (traverse
    principal directions, no KL) beside the histograms of its posterior SDs."""
    with pytest.raises(ValueError, match=r"latentsweep.report: the diagnosis is a plain autoencoder's \(no "
                                         r"log-variances\) but posterior has them"):
        latentsweep.report(tmp_path / "r.html", diagnosis=latentsweep.diagnose(posterior.mu), posterior=posterior)
    with pytest.raises(ValueError, match=r"the diagnosis is a VAE's \(with log-variances\) but posterior has none"):
        latentsweep.report(tmp_path / "r.html", diagnosis=latentsweep.diagnose(posterior),
                           posterior=latentsweep.Posterior(posterior.mu))
    assert not (tmp_path / "r.html").exists()


def test_a_report_says_once_that_it_draws_some_of_the_steps(tmp_path, posterior):
    """One grid per anchor and result, each of 60 steps: the column warning was said once per
    grid (matplotlib's warnings filters undo Python's once-per-line rule), 16 lines for one
    explain call; now once, by the report."""
    decoder = small_decoder(64, 1, 8, 8)
    results = {name: latentsweep.traverse(decoder, posterior[:3], mode=mode, steps=60, progress=False)
               for name, mode in (("prior", "prior"), ("posterior", "posterior"))}
    with pytest.warns(UserWarning) as caught:
        latentsweep.report(tmp_path / "r.html", results=results, anchor_indices=(0, 1, 2), gifs=False, max_dims=2)
    said = [str(w.message) for w in caught if "steps as columns" in str(w.message)]
    assert said == ["latentsweep.report: drawing 48 of 60 steps as columns (evenly spaced, the first and the last "
                    "included)"]
