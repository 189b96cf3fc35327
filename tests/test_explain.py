"""latentsweep.explain (issue 8 item 7): the whole workflow in one call. What it traverses,
clusters and interpolates is checked against the same steps called one by one (encode,
diagnose, principal_directions, traverse, clusters, interpolate), through the numbers the
report prints; then its options and its errors."""

from __future__ import annotations

import html
import math
import re

import pytest
import torch

import latentsweep as ls
from latentsweep.explanation import MIN_DIRECTION_SHARE, output_image_shape
from picture_models import LATENT_DIM, small_decoder, synthetic_posterior

N = 60
FAST = dict(anchors=2, steps=5, gifs=False, dpi=30, progress=False)


def text_of(path) -> str:
    document = path.read_text(encoding="utf-8")
    body = re.sub(r"<style>.*?</style>|<img[^>]*>", " ", document, flags=re.S)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", body)))


def headings(path) -> list[str]:
    return [html.unescape(re.sub(r"<[^>]+>", "", h)) for h in re.findall(r"<h2>(.*?)</h2>", path.read_text())]


def direction_table(path) -> dict[str, tuple[float, float | None]]:
    """{label: (effect, share)} from the report's table of directions."""
    document = path.read_text(encoding="utf-8")
    table = document[document.index("<th>direction</th>"):]
    table = table[: table.index("</table>")]
    rows = {}
    for cells in re.findall(r"<tr>(.*?)</tr>", table):  # the header row starts before the slice
        values = [html.unescape(c) for c in re.findall(r"<td>(.*?)</td>", cells)]
        rows[values[0]] = (float(values[1]), float(values[2].rstrip("%")) / 100 if len(values) > 2 else None)
    return rows


@pytest.fixture(scope="module")
def decoder():
    return small_decoder(16, 1, 4, 4)


@pytest.fixture(scope="module")
def vae():
    return synthetic_posterior(N, seed=1)  # dims 0-3 active, 4-5 collapsed


@pytest.fixture(scope="module")
def ae_codes():
    g = torch.Generator().manual_seed(2)
    mixing = torch.randn(LATENT_DIM, LATENT_DIM, generator=g)
    return ls.Posterior(torch.randn(N, LATENT_DIM, generator=g) * torch.linspace(3, 0.5, LATENT_DIM) @ mixing)


def test_a_vae_gets_its_active_latents_the_posterior_contrast_and_principal_directions(tmp_path, decoder, vae):
    path = ls.explain(None, decoder, None, posterior=vae, out=tmp_path, directions="pca", **FAST)
    assert path == tmp_path / "report.html"
    text = text_of(path)
    assert "Traversals compared (2)" in headings(path) and "Traversals along directions" in headings(path)
    # The latents: the 4 active ones (2 collapsed), by the prior and by the posterior.
    diagnosis = ls.diagnose(vae)
    mode = diagnosis.recommended_mode
    assert diagnosis.active_dims == [0, 1, 2, 3]
    assert f"mode '{mode}': 2 anchors × 4 latents × 5 steps" in text
    assert "mode 'posterior': 2 anchors × 4 latents × 5 steps" in text
    # The directions: principal components with at least 1% of the variance, as one would call them.
    pcs = ls.principal_directions(vae, k=LATENT_DIM)
    keep = int((pcs.explained_variance_ratio >= MIN_DIRECTION_SHARE).sum())
    assert keep == 4  # the collapsed latents leave components with almost no variance
    expected = ls.traverse(decoder, vae[:2], directions=pcs[:keep], mode=mode, steps=5, progress=False,
                           reference=vae.mu if mode == "empirical" else None)
    table = direction_table(path)
    assert list(table) == list(expected.labels)
    for k, label in enumerate(expected.labels):
        effect, share = table[label]
        assert effect == pytest.approx(float(expected.dim_effect[k]), rel=2e-3)
        assert share == pytest.approx(float(pcs.explained_variance_ratio[k]), abs=6e-4)
    assert "Beside the latents" in text  # the two grids side by side


def test_an_autoencoder_gets_principal_directions_and_clusters_with_straight_paths(tmp_path, decoder, ae_codes):
    path = ls.explain(None, decoder, None, posterior=ae_codes, out=tmp_path / "ae.html", clusters=3, **FAST)
    assert path == tmp_path / "ae.html"
    names = headings(path)
    assert "Traversals along directions" in names and "Clusters" in names
    assert not any(h.startswith("Traversals compared") or h == "Traversals" for h in names)  # no latent traversal
    text = text_of(path)
    assert "mode 'empirical'" in text and "A plain autoencoder: read it along principal directions" in text
    found = ls.clusters(ae_codes, k=3, seed=0)
    sizes = found.sizes.tolist()
    assert f"3 clusters of {N} codes (KMeans with k=3), of {min(sizes)} to {max(sizes)} codes each." in text
    (near, far) = found.closest_and_farthest()
    for role, (i, j) in (("closest", near), ("farthest", far)):
        distance = float((found.centroids[j] - found.centroids[i]).double().norm())
        assert f"The {role} clusters are {i} and {j}, their centroids {distance:.3g} apart" in text
        path_result = ls.interpolate(decoder, found.centroids[i], found.centroids[j], steps=5, progress=False)
        assert f"Along the linear path from {i} to {j} (5 steps) the output moves by " \
               f"{float(path_result.change[0, -1]):.3g} in all" in text


def test_labels_make_the_clusters_and_a_vae_takes_slerp_paths_and_cluster_directions(tmp_path, decoder, vae):
    labels = ["a" if float(v) > 0 else "b" for v in vae.mu[:, 1]]
    path = ls.explain(None, decoder, None, posterior=vae, out=tmp_path, labels=labels, directions="clusters", **FAST)
    text = text_of(path)
    assert "2 clusters of 60 codes (your labels)" in text and "Along the slerp path from a to b" in text
    found = ls.clusters(vae, labels)
    direction = found.directions(0, 1)
    options = ls.diagnose(vae).traversal_options()
    expected = ls.traverse(decoder, vae[:2], directions=direction, steps=5, progress=False, mode=options["mode"],
                           reference=options.get("reference"))
    assert list(direction_table(path)) == ["a->b"]
    assert direction_table(path)["a->b"][0] == pytest.approx(float(expected.dim_effect[0]), rel=2e-3)


def test_your_own_directions_and_an_encoder_run_end_to_end(tmp_path, decoder):
    torch.manual_seed(0)
    encoder = torch.nn.Linear(16, LATENT_DIM)
    data = torch.rand(N, 16)
    vectors = torch.eye(LATENT_DIM)[:2] * 3.0  # scaled to unit length: the first two latents
    path = ls.explain(encoder, decoder, data, out=tmp_path, directions=vectors, **FAST)
    text = text_of(path)
    assert "your directions" in text and list(direction_table(path)) == ["u0", "u1"]
    posterior = ls.encode(encoder, data, progress=False)
    coordinates = ls.traverse(decoder, posterior[:2], dims=[0, 1], mode="empirical", reference=posterior.mu, steps=5,
                              progress=False)
    for k, label in enumerate(["u0", "u1"]):  # one-hot directions are the coordinate traversals
        assert direction_table(path)[label][0] == pytest.approx(float(coordinates.dim_effect[k]), rel=2e-3)


def test_coordinates_only_and_an_explicit_mode(tmp_path, decoder, ae_codes, vae):
    text = text_of(ls.explain(None, decoder, None, posterior=ae_codes, out=tmp_path / "a", directions="coordinates",
                              **FAST))
    assert "Traversals along directions" not in text and f"2 anchors × {LATENT_DIM} latents" in text
    text = text_of(ls.explain(None, decoder, None, posterior=vae, out=tmp_path / "b", mode="absolute", dims=[1],
                              **FAST))
    assert "mode 'absolute': 2 anchors × 1 latents" in text
    text = text_of(ls.explain(None, decoder, None, posterior=ae_codes, out=tmp_path / "c", dims=[0, 2], **FAST))
    assert "mode 'empirical': 2 anchors × 2 latents" in text and "Traversals along directions" in text


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(directions="spline"), ValueError, "directions must be one of"),
        (dict(directions=3), TypeError, "directions must be one of"),
        (dict(directions="clusters"), ValueError, "directions='clusters' needs clusters=K"),
        (dict(clusters=1), ValueError, "clusters must be >= 2"),
        (dict(clusters=2, labels=[0, 1] * 30), ValueError, "not both"),
        (dict(clusters=N), ValueError, "clusters"),
        (dict(mode="sideways"), ValueError, "mode must be one of"),
        (dict(anchors=0), ValueError, "anchors must be >= 1"),
        (dict(out=3), TypeError, "out must be a folder"),
        (dict(posterior="codes"), TypeError, "posterior must be a latentsweep.Posterior"),
        (dict(posterior=None), ValueError, "give data"),
        (dict(data=torch.zeros(3, 16)), ValueError, "data must hold the 60 inputs of posterior"),
        (dict(directions=torch.zeros(1, LATENT_DIM)), ValueError, "zero"),
        (dict(directions=torch.ones(1, 3)), ValueError, "directions must be"),
        (dict(bogus=1), TypeError, r"explain: unexpected keyword argument\(s\) \['bogus'\]; the report takes"),
        (dict(max_dims=0), ValueError, "explain: max_dims must be >= 1"),
    ],
)
def test_bad_arguments_are_named(tmp_path, decoder, vae, kwargs, error, match):
    options = dict(posterior=vae, out=tmp_path, data=None, **FAST) | kwargs
    with pytest.raises(error, match=match):
        ls.explain(None, decoder, **options)
    assert not (tmp_path / "report.html").exists()


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(feature_names="abc"), TypeError, "explain: feature_names must be a sequence of names, got one string"),
        (dict(feature_names=7), TypeError, "explain: feature_names must be a sequence of names, got int"),
        (dict(gifs=1), TypeError, "explain: gifs must be True or False"),
        (dict(dpi=5), ValueError, "explain: dpi must be >= 10"),
        (dict(dpi=2.5), TypeError, "explain: dpi must be an int"),
        (dict(title=3), TypeError, "explain: title must be a string"),
        (dict(anchor_indices=1), TypeError, "explain: anchor_indices must be a sequence of ints"),
        (dict(anchor_indices=(0, "b")), TypeError, r"explain: anchor_indices\[1\] must be an int, got str"),
        (dict(anchor_indices=(2,)), ValueError, r"explain: anchor_indices=2 is out of range for 2 anchor\(s\)"),
        (dict(reconstructions="x"), TypeError, "explain: reconstructions must be a tensor or a numeric array, got str"),
        (dict(reconstructions=torch.zeros(2, 3, dtype=torch.complex64)), TypeError,
         "explain: reconstructions must hold real numbers"),
    ],
)
def test_report_options_are_checked_before_the_decoder_runs(tmp_path, vae, kwargs, error, match):
    """A bad report option used to surface after every sweep (the report is written last)."""
    def decoder(z):
        raise AssertionError("the decoder ran before the report options were checked")

    with pytest.raises(error, match=match):
        ls.explain(None, decoder, None, posterior=vae, out=tmp_path, **(FAST | kwargs))
    assert not (tmp_path / "report.html").exists()


def test_an_out_that_cannot_be_written_is_refused_before_any_work(tmp_path, decoder, vae):
    (tmp_path / "a-file").write_text("in the way")
    for out in (tmp_path / "a-file", tmp_path / "a-file" / "r.html"):
        with pytest.raises(ValueError, match=r"explain: out=.*: the file .*a-file' is in the way of its folder"):
            ls.explain(None, decoder, None, posterior=vae, out=out, **FAST)
    (tmp_path / "folder.html").mkdir()
    with pytest.raises(ValueError, match=r"explain: out=.*folder\.html' is a folder; give the file to write"):
        ls.explain(None, decoder, None, posterior=vae, out=tmp_path / "folder.html", **FAST)
    with pytest.raises(ValueError, match=r"report: path=.*: the file .*a-file' is in the way"):
        ls.report(tmp_path / "a-file" / "r.html", diagnosis=ls.diagnose(vae))


def test_mode_posterior_needs_a_vae(tmp_path, decoder, ae_codes):
    with pytest.raises(ValueError, match="mode='posterior' needs an encoder that gives a posterior"):
        ls.explain(None, decoder, None, posterior=ae_codes, out=tmp_path, mode="posterior", **FAST)


def test_the_image_shape_rule():
    assert output_image_shape((1, 8, 8)) == (1, 8, 8)
    assert output_image_shape((64,), (8, 8)) == (8, 8)
    assert output_image_shape((64,), None, torch.zeros(3, 1, 8, 8)) == (1, 8, 8)  # the inputs' shape
    assert output_image_shape((64,), None, torch.zeros(3, 64)) is None  # flat inputs: tabular
    assert output_image_shape((13,)) is None
    with pytest.raises(ValueError, match=r"image_shape \(5, 5\) holds 25 values"):
        output_image_shape((64,), (5, 5), fn="--image-shape")
    assert math.prod(output_image_shape((3, 4, 4))) == 48


def test_the_recommended_call_of_an_autoencoder_traverses_its_principal_directions(tmp_path, decoder, ae_codes):
    document = ls.report(tmp_path / "r.html", posterior=ae_codes).read_text()
    call = 'latentsweep.traverse(decoder, posterior[:8], mode="empirical", reference=posterior.mu, ' \
           "directions=latentsweep.principal_directions(posterior))"
    assert html.escape(call) in document
    # and the call runs as printed
    latentsweep, posterior = ls, ae_codes
    result = eval(call, {"latentsweep": latentsweep, "posterior": posterior, "decoder": decoder})
    assert result.directions is not None and result.labels[0].startswith("PC1")


@pytest.mark.parametrize("name", ["path", "diagnosis", "results", "inputs", "centroid_outputs", "interpolations"])
def test_report_keywords_that_explain_fills_are_refused_before_any_work(tmp_path, decoder, vae, name):
    """One list of what explain passes to report (its call); the rest of report's keywords are the user's."""
    taken = r"\['anchor_indices', 'dpi', 'gifs', 'max_dims', 'reconstructions'\]"
    with pytest.raises(TypeError, match=rf"explain: unexpected keyword argument\(s\) \['{name}'\]; the report takes {taken}"):
        ls.explain(None, decoder, None, posterior=vae, out=tmp_path, **FAST, **{name: None})
    assert not (tmp_path / "report.html").exists()


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(feature_names=["a", "b"]), ValueError, "explain: feature_names has 2 names but the decoder outputs 5 features"),
        (dict(image_shape=(3, 3)), ValueError, r"explain: image_shape \(3, 3\) holds 9 values"),
        (dict(feature_names=list("abcde"), image_shape=(1, 5)), ValueError,
         r"explain: feature_names names the features of tabular outputs, but these outputs \(shape \[5\] per code\) "
         "are drawn as images"),
    ],
)
def test_options_that_need_the_outputs_shape_are_checked_before_the_sweeps(tmp_path, kwargs, error, match):
    """They failed after every sweep (named latentsweep.report, or just latentsweep:): one decoded
    point tells the outputs' shape first."""
    posterior = ls.Posterior(torch.randn(6, 3, generator=torch.Generator().manual_seed(0)))
    calls = []

    def decoder(z):
        calls.append(len(z))
        return torch.tanh(z @ torch.ones(3, 5))

    with pytest.raises(error, match=match):
        ls.explain(None, decoder, None, posterior=posterior, out=tmp_path, anchors=4, steps=5, **kwargs)
    assert sum(calls) <= 3, calls  # the probe's two points (and its anchor), no sweep


class CountingDecoder(torch.nn.Module):
    """The small decoder, counting its calls: what explain refuses up front never decodes."""

    def __init__(self):
        super().__init__()
        self.inner, self.calls = small_decoder(16, 1, 4, 4), 0

    def forward(self, z):
        self.calls += 1
        return self.inner(z)


def test_an_autoencoder_whose_codes_do_not_vary_is_refused_before_anything_is_decoded(tmp_path):
    """An encoder that gives every input one code: principal_directions' error came from inside
    explain after its first decoding, naming principal_directions."""
    decoder = CountingDecoder()
    encoder = torch.nn.Sequential(torch.nn.Linear(4, LATENT_DIM), torch.nn.ReLU())
    with torch.no_grad():
        encoder[0].bias.fill_(-10.0), encoder[0].weight.zero_()  # a dead layer: zeros for every input
    with pytest.raises(ValueError, match=r"latentsweep.explain: the codes do not vary: all 20 inputs have the same "
                                         r"code.*encoder ignores its input"):
        ls.explain(encoder, decoder, torch.randn(20, 4), out=tmp_path, **FAST)
    with pytest.raises(ValueError, match=r"latentsweep.explain: the codes do not vary"):  # and when asked for them
        ls.explain(None, decoder, None, posterior=ls.Posterior(torch.ones(20, LATENT_DIM)), out=tmp_path,
                   directions="pca", **FAST)
    assert decoder.calls == 0 and not (tmp_path / "report.html").exists()


@pytest.mark.parametrize("variational", [False, True])
def test_codes_with_nan_or_inf_are_refused_with_their_rows_before_anything_is_decoded(tmp_path, variational):
    """The diagnosis skips them, then principal_directions (or traverse's reference, or an
    anchor) raised on them after decoding had begun, naming index (3, 0) of its own codes."""
    decoder = CountingDecoder()
    mu = torch.randn(N, LATENT_DIM, generator=torch.Generator().manual_seed(3))
    logvar = torch.zeros_like(mu) - 1 if variational else None
    (logvar if variational else mu)[[5, 40], 1] = math.inf
    mu[40, 2] = math.nan
    what = "mu or logvar" if variational else "mu"
    with pytest.raises(ValueError, match=rf"latentsweep.explain: posterior has NaN/Inf \(in {what}\) for 2 of its "
                                         rf"{N} inputs: 5, 40; .*posterior\[keep\]"):
        ls.explain(None, decoder, None, posterior=ls.Posterior(mu, logvar), out=tmp_path, **FAST)
    assert decoder.calls == 0 and not (tmp_path / "report.html").exists()


@pytest.mark.parametrize("dims, error, message", [
    ([], ValueError, "dims must not be empty"),
    ([1, 1], ValueError, r"dims must be distinct, got \[1\] more than once"),
    ([LATENT_DIM], ValueError, rf"dims must lie in \[0, {LATENT_DIM}\)"),
    ([0.5], TypeError, r"dims\[...\] must be an int"),
])
def test_bad_dims_are_named_as_explains_before_anything_is_decoded(tmp_path, decoder, vae, dims, error, message):
    """They were named as latentsweep.traverse's, after the clusters and a first decoding."""
    def never(z):
        raise AssertionError("decoded before the check")

    with pytest.raises(error, match=f"latentsweep.explain: {message}"):
        ls.explain(None, never, None, posterior=vae, out=tmp_path, dims=dims)
    assert not (tmp_path / "report.html").exists()


@pytest.mark.parametrize("labels, named", [([0, 0, 1, 1, 2, 2, 3, 3], "0 and 1"),
                                           (list("aabbccdd"), "'a' and 'b'")])
def test_clusters_with_the_same_centroid_are_named_as_explains_with_what_to_do(tmp_path, labels, named):
    """Clusters 0 and 1 share a centroid: the error named latentsweep.Clusters.directions (which
    the caller never called) and the clusters' indices, and said nothing about what to do."""
    decoder = CountingDecoder()
    codes = torch.tensor([[0, 0], [2, 2], [0, 0], [2, 2], [5, 5], [5, 6], [1, 1], [1, 1]], dtype=torch.float32)
    with pytest.raises(ValueError, match=rf"^latentsweep.explain: directions='clusters' finds no direction between the "
                                         rf"clusters labelled {named}: their centroids \(mean codes\) are the same; "
                                         r"give them one label .*directions='pca'"):
        ls.explain(lambda x: x, decoder, codes, labels=labels, directions="clusters", out=tmp_path)
    assert decoder.calls == 0 and not (tmp_path / "report.html").exists()


@pytest.mark.parametrize("stop", [RuntimeError("decoder broke"), KeyboardInterrupt()])
def test_a_sweep_stopped_inside_explain_gives_explains_advice(tmp_path, capsys, stop):
    """A sweep stopped inside explain (a decoder that failed, Ctrl-C) advised traverse's "Pass
    out='sweep.zarr' to keep partial results on disk", which explain does not take."""
    decoder, calls = torch.nn.Linear(3, 4), []

    def stopping(codes):
        calls.append(len(codes))
        if len(codes) > 20:  # the first sweep's first chunk (not a probe: those decode at most the 20 anchors)
            raise stop
        return decoder(codes)

    codes = ls.Posterior(torch.randn(20, 3, generator=torch.Generator().manual_seed(0)),
                         torch.full((20, 3), -2.0))
    with pytest.raises(type(stop)) as raised:
        ls.explain(None, stopping, None, posterior=codes, out=tmp_path, steps=41, anchors=20, progress=False,
                   gifs=False, dpi=20)
    said = " ".join(getattr(raised.value, "__notes__", ())) + capsys.readouterr().err
    assert "latentsweep.explain: its traverse sweep stopped after 0 of 1 work units. Nothing of this call is kept" in said
    assert "sweep.zarr" not in said
    assert not (tmp_path / "report.html").exists()
