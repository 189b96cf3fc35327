"""Structured latents: anchors [A, *latent_shape] (here [A, 2, 3, 3]) decoded by a small
convolutional decoder that takes [B, 2, 3, 3], against plain torch (the flat grid reshaped and
decoded in one call); flat indices as dims; channel directions; stores; bad shapes."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

import latentsweep as ls
from sweep_reference import reference_direction_grid, reference_sweep

SHAPE = (2, 3, 3)
D = math.prod(SHAPE)
GEN = torch.Generator().manual_seed(8)
ANCHORS = torch.randn(3, *SHAPE, generator=GEN, dtype=torch.float64)
LOGVAR = torch.randn(3, *SHAPE, generator=GEN, dtype=torch.float64) - 1
REFERENCE = torch.randn(40, *SHAPE, generator=GEN, dtype=torch.float64)
STATISTICS = ("effect", "dim_effect", "sensitivity")


def conv_decoder() -> torch.nn.Module:
    """[B, 2, 3, 3] -> [B, 1, 6, 6]; refuses flat codes, as a real convolutional decoder does."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.ConvTranspose2d(2, 4, kernel_size=2, stride=2), torch.nn.Tanh(),
        torch.nn.Conv2d(4, 1, kernel_size=3, padding=1), torch.nn.Sigmoid(),
    ).double()
    return model


DECODER = conv_decoder()


def flat_decoder(codes: torch.Tensor) -> torch.Tensor:
    """The reference's view: the same decoder on flat codes."""
    return DECODER(codes.reshape(-1, *SHAPE))


def assert_matches(result, expected, *, atol=1e-12):
    torch.testing.assert_close(result.outputs, expected["outputs"], rtol=0, atol=atol)
    for name in STATISTICS:
        torch.testing.assert_close(getattr(result, name).double(), expected[name], rtol=1e-9, atol=atol)


def test_coordinates_of_a_structured_latent_are_flat_indices():
    dims = [0, 5, 17]
    result = ls.traverse(DECODER, ANCHORS, dims=dims, steps=5, batch_size=7, progress=False)
    flat = ANCHORS.reshape(3, D)
    assert result.latent_shape == SHAPE and torch.equal(result.anchors, flat)
    assert result.labels == ("z[0,0,0]", "z[0,1,2]", "z[1,2,2]")
    assert result.out_shape == (1, 6, 6)
    assert torch.equal(result.values, ls.traversal_values(flat, dims=dims, steps=5))
    expected = reference_sweep(flat_decoder, flat, torch.tensor(dims), result.values)
    assert_matches(result, expected)
    # (c, h, w) -> the flat index of torch.flatten, as documented
    assert int(np.ravel_multi_index((1, 2, 2), SHAPE)) == 17
    assert "latent shape [2, 3, 3]" in result.summary()


def test_all_coordinates_by_default_and_flat_anchors_with_latent_shape():
    structured = ls.traverse(DECODER, ANCHORS, steps=3, progress=False)
    assert structured.values.shape == (3, D, 3) and len(structured.labels) == D
    flat = ls.traverse(DECODER, ANCHORS.reshape(3, D), latent_shape=SHAPE, steps=3, progress=False)
    assert flat.latent_shape == SHAPE and flat.labels == structured.labels
    assert torch.equal(flat.outputs, structured.outputs)
    for name in STATISTICS:
        assert torch.equal(getattr(flat, name), getattr(structured, name))


@pytest.mark.parametrize("mode, options", [
    ("prior", {}), ("absolute", {}), ("quantile", {}), ("posterior", {"logvar": LOGVAR}),
    ("empirical", {"reference": REFERENCE}),
])
def test_channel_directions_in_every_mode_match_the_reference(mode, options):
    channels = ls.channel_directions(SHAPE, dtype=torch.float64)
    result = ls.traverse(DECODER, ANCHORS, directions=channels, mode=mode, steps=5, progress=False, **options)
    flat = ANCHORS.reshape(3, D)
    flat_options = {k: v.reshape(v.shape[0], D) for k, v in options.items()}
    assert torch.equal(result.values, ls.traversal_values(flat, mode=mode, steps=5, directions=channels, **flat_options))
    # traversal_values takes the structured tensors too
    assert torch.equal(result.values, ls.traversal_values(ANCHORS, mode=mode, steps=5, directions=channels, **options))
    unit = ls.unit_directions(channels.vectors)
    expected = reference_sweep(flat_decoder, flat, torch.arange(2), result.values,
                               grid=reference_direction_grid(flat, unit, result.values))
    assert_matches(result, expected)
    assert result.labels == ("channel 0", "channel 1")


def test_channel_directions_shift_one_channel_uniformly():
    channels = ls.channel_directions((3, 4, 5))
    assert channels.vectors.shape == (3, 60) and channels.source == "channels"
    grid = channels.vectors.view(3, 3, 4, 5)
    for c in range(3):
        assert torch.allclose(grid[c, c], torch.full((4, 5), 1 / math.sqrt(20)))
        assert not grid[c, [i for i in range(3) if i != c]].any()
    torch.testing.assert_close(torch.linalg.vector_norm(channels.vectors, dim=1), torch.ones(3))
    # The coordinate along channel c is sqrt(P) x the channel's mean; setting it to v makes
    # the channel's mean v / sqrt(P), every element shifted alike, the other channels untouched.
    anchor = torch.randn(1, 3, 4, 5, dtype=torch.float64)
    codes = ls.direction_codes(anchor.reshape(1, -1), channels.vectors.double(),
                               torch.full((3, 1), 3.0, dtype=torch.float64))  # [K, S]
    row = codes[1].view(3, 4, 5)
    torch.testing.assert_close(row[1] - anchor[0, 1], (3.0 / math.sqrt(20) - anchor[0, 1].mean()).expand(4, 5))
    assert torch.equal(row[[0, 2]], anchor[0, [0, 2]])
    assert torch.equal(ls.channel_directions((4,)).vectors, torch.eye(4))


def test_directions_shaped_like_the_latent_and_flat_agree():
    raw = torch.randn(2, *SHAPE, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    shaped = ls.traverse(DECODER, ANCHORS, directions=raw, steps=4, progress=False)
    flat = ls.traverse(DECODER, ANCHORS, directions=raw.reshape(2, D), steps=4, progress=False)
    assert torch.equal(shaped.outputs, flat.outputs) and torch.equal(shaped.directions, flat.directions)
    one = ls.traverse(DECODER, ANCHORS, directions=raw[0], steps=4, progress=False)  # [*latent_shape]: one
    assert torch.equal(one.directions, shaped.directions[:1])
    torch.testing.assert_close(one.outputs, shaped.outputs[:, :1], rtol=0, atol=1e-14)  # another batch size


def test_principal_directions_and_clusters_flatten_structured_codes():
    pcs = ls.principal_directions(REFERENCE, k=3)
    flat_pcs = ls.principal_directions(REFERENCE.reshape(40, D), k=3)
    assert torch.equal(pcs.vectors, flat_pcs.vectors) and pcs.vectors.shape == (3, D)
    found = ls.clusters(REFERENCE, k=3, seed=0)
    flat_found = ls.clusters(REFERENCE.reshape(40, D), k=3, seed=0)
    assert torch.equal(found.centroids, flat_found.centroids)
    torch.testing.assert_close(pcs.project(REFERENCE), flat_pcs.project(REFERENCE.reshape(40, D)), rtol=0, atol=0)
    result = ls.traverse(DECODER, ANCHORS, directions=pcs, steps=3, progress=False)
    assert result.labels[0].startswith("PC1 (")


def test_a_structured_store_records_its_latent_shape(tmp_path):
    path = tmp_path / "s.zarr"
    kwargs = dict(directions=ls.channel_directions(SHAPE, dtype=torch.float64), steps=4, progress=False)
    result = ls.traverse(DECODER, ANCHORS, out=path, **kwargs)
    opened = ls.open_sweep(path)
    assert opened.latent_shape == SHAPE and opened.labels == ("channel 0", "channel 1")
    assert np.array_equal(np.asarray(opened.outputs), np.asarray(result.outputs))
    with pytest.raises(ValueError, match="differs in: .*latent_shape"):  # the same flat codes, another shape
        ls.traverse(lambda z: DECODER(z.reshape(-1, *SHAPE)), ANCHORS.reshape(3, 2, 9), out=path, resume=True,
                    **kwargs)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(directions=torch.ones(2, 3, 3, 2, dtype=torch.float64)), ValueError, r"directions must be \[K, \*latent_shape\]"),
        (dict(directions=torch.ones(2, 17, dtype=torch.float64)), ValueError, r"directions must be \[K, D=18\]"),
        (dict(latent_shape=(3, 3, 3)), ValueError, r"latent_shape=\(3, 3, 3\) but the anchors are"),
        (dict(latent_shape="2,3,3"), TypeError, "latent_shape must be a tuple of ints"),
        (dict(mode="posterior", logvar=torch.zeros(3, 3, 3, 2, dtype=torch.float64)), ValueError, r"logvar must be \[A, \*latent_shape\] = \[A, 2, 3, 3\]"),
        (dict(mode="empirical", reference=torch.zeros(5, 3, 3, 2, dtype=torch.float64)), ValueError, r"reference must be \[M, \*latent_shape\]"),
        (dict(dims=[18]), ValueError, r"dims must lie in \[0, 18\)"),
    ],
)
def test_mismatched_shapes_are_named(kwargs, error, match):
    with pytest.raises(error, match=match):
        ls.traverse(DECODER, ANCHORS, steps=3, progress=False, **kwargs)


def test_flat_anchors_with_a_wrong_latent_shape_and_empty_latents():
    with pytest.raises(ValueError, match=r"latent_shape=\(4, 4\) holds 16 values but the codes have D=18"):
        ls.traverse(DECODER, ANCHORS.reshape(3, D), latent_shape=(4, 4), progress=False)
    with pytest.raises(ValueError, match=r"latent_shape\[...\] must be"):
        ls.traverse(DECODER, ANCHORS.reshape(3, D), latent_shape=(0, 18), progress=False)
    with pytest.raises(ValueError, match="at least one code of at least one latent"):
        ls.traverse(DECODER, torch.zeros(3, 2, 0, 3, dtype=torch.float64), progress=False)


@pytest.mark.parametrize("bad, error", [("4,8,8", TypeError), ((), ValueError), ((4, 0), ValueError),
                                        ((4, 2.5), TypeError)])
def test_channel_directions_refuse_bad_shapes(bad, error):
    with pytest.raises(error, match="latentsweep.channel_directions: latent_shape"):
        ls.channel_directions(bad)


def test_channel_directions_that_do_not_fit_in_memory_are_refused_before_allocating():
    """A (4096, 64, 64) latent's directions are [4096, 2^24] dense rows: 512 GiB in float64,
    allocated without a word."""
    with pytest.raises(ValueError, match=r"latentsweep.channel_directions: the vectors \[C=4096, D=16777216\] "
                                         r"needs .* GiB.*Directions.from_vectors"):
        ls.channel_directions((4096, 64, 64))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("cuda_graph", [False, True])
def test_a_structured_direction_sweep_on_cuda_matches_the_cpu(cuda_graph):
    """The pipelined CUDA executor writes direction rows on its side stream; the decoder gets
    [B, *latent_shape] views of the (graph's static) buffer."""
    channels = ls.channel_directions(SHAPE, dtype=torch.float64)
    kwargs = dict(directions=channels, mode="empirical", reference=REFERENCE, steps=6, batch_size=8, progress=False)
    cpu = ls.traverse(DECODER, ANCHORS, **kwargs)
    on_gpu = {**kwargs, "directions": channels.to("cuda"), "reference": REFERENCE.cuda()}
    gpu = ls.traverse(conv_decoder().cuda(), ANCHORS.cuda(), cuda_graph=cuda_graph, **on_gpu)
    torch.testing.assert_close(gpu.outputs, cpu.outputs, rtol=1e-9, atol=1e-12)
    for name in STATISTICS:
        torch.testing.assert_close(getattr(gpu, name), getattr(cpu, name), rtol=1e-9, atol=1e-12)


# ---- structured codes from the encoder: encode, Posterior, traverse, explain ----------------
def spatial_encoder(x: torch.Tensor):
    """[B, 36] inputs -> (mu, logvar) of [B, 2, 3, 3]: a spatial VAE's encoder, deterministic."""
    mu = torch.tanh(x[:, :D] + x[:, D:].flip(1)).reshape(-1, *SHAPE)
    return mu, torch.full_like(mu, -2.0) + 0.1 * mu


INPUTS = torch.randn(30, 2 * D, generator=GEN, dtype=torch.float64)


def test_encode_keeps_structured_codes_flat_with_their_shape():
    """encode refused [B, C, H, W] codes ("flatten it"); now they are D flat latents in
    torch.flatten order, and the posterior knows their shape."""
    posterior = ls.encode(spatial_encoder, INPUTS, batch_size=7)
    mu, logvar = spatial_encoder(INPUTS)
    assert posterior.latent_shape == SHAPE and posterior.mu.shape == (30, D)
    assert torch.equal(posterior.mu, mu.reshape(30, D)) and torch.equal(posterior.logvar, logvar.reshape(30, D))
    assert posterior[3:5].latent_shape == SHAPE and posterior.to(torch.float32).latent_shape == SHAPE
    assert posterior[[]].mu.shape == (0, D)
    assert ls.encode(lambda x: x[:, :D], INPUTS).latent_shape == (D,)
    # a shape that changes between batches, and NaN in one element of a structured code
    shapes = iter([SHAPE, (3, 2, 3)])
    with pytest.raises(ValueError, match=r"codes of shape \[3, 2, 3\] for batch 1 but \[2, 3, 3\] for batch 0"):
        ls.encode(lambda x: torch.zeros(len(x), *next(shapes)), INPUTS, batch_size=20)
    poisoned = INPUTS.clone()
    poisoned[12, 4] = math.nan
    with pytest.raises(ValueError, match=r"mu has NaN/Inf for batch 1, in 1 row\(s\) of the data: 12"):
        ls.encode(spatial_encoder, poisoned, batch_size=10)


def test_a_posterior_of_structured_codes():
    mu, logvar = spatial_encoder(INPUTS[:4])
    posterior = ls.Posterior(mu, logvar)
    assert posterior.latent_shape == SHAPE and posterior.latent_dim == D and posterior.mu.shape == (4, D)
    flat = ls.Posterior(mu.reshape(4, D), logvar.reshape(4, D), latent_shape=SHAPE)
    assert flat == posterior and ls.Posterior(mu.reshape(4, D), logvar.reshape(4, D)) != posterior
    assert ls.Posterior(mu[0].reshape(D)).latent_shape == (D,)
    with pytest.raises(ValueError, match=r"latent_shape=\(3, 6\) but the means \(mu\) are \[N, \*\[2, 3, 3\]\]"):
        ls.Posterior(mu, latent_shape=(3, 6))
    with pytest.raises(ValueError, match=r"latent_shape=\(2, 3, 4\) holds 24 values but the codes have D=18"):
        ls.Posterior(mu.reshape(4, D), latent_shape=(2, 3, 4))
    with pytest.raises(ValueError, match="got a 0-D tensor"):
        ls.Posterior(torch.tensor(1.0))


def test_a_structured_posterior_is_traversed_in_the_decoders_shape():
    """traverse(decoder, posterior) gives the decoder [B, 2, 3, 3] codes (it refuses flat
    ones), bit for bit the sweep of the structured anchors; mode 'posterior' reads its logvar."""
    posterior = ls.encode(spatial_encoder, INPUTS)[:3]
    for mode in ("prior", "posterior"):
        # (a fixed batch: "auto" is timed on the CPU, and two sweeps planned with other sizes
        # merge their units' statistics in other groupings, which differ in the last bits)
        got = ls.traverse(DECODER, posterior, mode=mode, steps=5, progress=False, batch_size=8)
        expected = ls.traverse(DECODER, posterior.mu.view(3, *SHAPE), mode=mode, steps=5, progress=False,
                               logvar=posterior.logvar.view(3, *SHAPE), batch_size=8)
        assert got.latent_shape == SHAPE and got.labels[1] == "z[0,0,1]"
        for name in ("outputs", "values", *STATISTICS):
            assert torch.equal(getattr(got, name), getattr(expected, name)), (mode, name)


def test_explain_reports_a_structured_latent(tmp_path):
    """explain (and `latentsweep report`) could not take a spatial VAE: encode refused its codes.
    Its latents, principal directions, clusters and the paths between them reach the decoder in
    the latent's shape."""
    def decoder(codes):
        assert codes.shape[1:] == SHAPE, codes.shape
        return DECODER(codes)

    path = ls.explain(spatial_encoder, decoder, INPUTS, out=tmp_path, clusters=3, directions="pca", anchors=2,
                      steps=3, max_dims=4, progress=False)
    page = path.read_text()
    assert re.search(r"z\[\d,\d,\d\]", page) and "<h2>Clusters</h2>" in page and "Along the" in page and "PC1" in page
    # one name per latent: the KL table, the flags and the clusters' sentences said z9 where the
    # traversals said z[1,0,0]
    text = re.sub(r"data:[^\"']*", "", page)  # (the pictures' base64)
    assert not re.search(r"\bz\d", text), re.findall(r".{40}\bz\d.{20}", text)[:3]


def test_a_posteriors_logvar_may_be_flat_or_shaped_like_the_latent():
    """Posterior(flat mu, logvar [N, *shape], latent_shape=shape) and structured mu with a flat
    logvar were refused (the logvar had to repeat mu's own shape); dataclasses.replace of mu
    then always failed for a structured posterior."""
    import dataclasses

    mu, logvar = spatial_encoder(INPUTS[:4])
    expected = ls.Posterior(mu, logvar)
    assert ls.Posterior(mu.reshape(4, D), logvar, latent_shape=SHAPE) == expected
    assert ls.Posterior(mu, logvar.reshape(4, D)) == expected
    assert dataclasses.replace(expected, mu=mu + 1).latent_shape == SHAPE
    with pytest.raises(ValueError, match=r"logvar must have mu's shape \(4, 2, 3, 3\) \(or \[N, D\] = \(4, 18\)\), "
                                         r"got \(4, 3, 3, 2\)"):
        ls.Posterior(mu, logvar.reshape(4, 3, 3, 2))
    for shape in ({2: 0, 3: 0, 3.5: 0}, {2, 9}):  # iterable, but no order of axes
        with pytest.raises(TypeError, match="latent_shape must be a tuple of ints"):
            ls.Posterior(mu.reshape(4, D), latent_shape=shape)


def test_metrics_read_structured_codes_as_flat_latents():
    """evaluate refused a representation returning [n, C, H, W] codes, which encode, explain and
    report take: they are D latents in torch.flatten order, scored as the flat codes are."""
    from latentsweep.datasets import LabelledArrays

    observations = INPUTS.float()
    data = LabelledArrays(observations, (observations[:, :2] > 0).long())
    def structured(x):
        return spatial_encoder(x.double())[0].float()
    def flat(x):
        return structured(x).flatten(1)
    options = dict(metrics=["mig", "sap", "unsupervised"], num_train=20, num_test=10, progress=False)
    with pytest.warns(UserWarning):  # (too few points to compare models)
        got = ls.metrics.evaluate(structured, data, **options).scores
    with pytest.warns(UserWarning):
        expected = ls.metrics.evaluate(flat, data, **options).scores
    assert got == expected


def test_a_structured_latent_has_one_name_everywhere():
    """Latent 9 of a (2, 3, 3) latent is z[1,0,0] in the traversals; the diagnosis, the KL bars
    and the training integrations' scalars called it z9."""
    import matplotlib

    matplotlib.use("Agg")
    from latentsweep.integrations._common import _scalars

    posterior = ls.encode(spatial_encoder, INPUTS)
    diagnosis = ls.diagnose(posterior)
    assert diagnosis.latent_shape == SHAPE and diagnosis.to_dict()["latent_shape"] == list(SHAPE)
    ticks = [t.get_text() for t in ls.kl_bars(diagnosis).axes[0].get_xticklabels()]
    assert ticks and all(re.fullmatch(r"z\[\d,\d,\d\]", t) for t in ticks), ticks
    result = ls.traverse(DECODER, posterior[:2], dims=[9], steps=3, progress=False)
    scalars = _scalars(diagnosis, result)
    assert "kl/z[1,0,0]" in scalars and "effect/z[1,0,0]" in scalars and "kl/z9" not in scalars
    found = ls.clusters(posterior, k=3, seed=0)
    assert found.latent_shape == SHAPE and ls.clusters(posterior.mu, k=3, seed=0).latent_shape is None
    assert ls.clusters(posterior.mu.view(30, *SHAPE), k=3, seed=0).latent_shape == SHAPE
    # flat codes keep their names
    assert ls.diagnose(posterior.mu).latent_shape == (D,)
    assert ls.latent_shape.latent_label(9, (D,)) == "z9" and ls.latent_shape.latent_label(9, SHAPE) == "z[1,0,0]"


def test_interpolate_takes_posterior_rows_in_their_shape():
    """interpolate(decoder, posterior[[0]], posterior[[1]]) was a TypeError, and the natural
    posterior.mu[[0]] is flat: a spatial decoder then failed in its first convolution."""
    posterior = ls.encode(spatial_encoder, INPUTS)
    got = ls.interpolate(DECODER, posterior[[0, 2]], posterior[[1, 3]], steps=4, path="slerp", progress=False)
    expected = ls.interpolate(DECODER, posterior.mu[[0, 2]].view(2, *SHAPE), posterior.mu[[1, 3]].view(2, *SHAPE),
                              steps=4, path="slerp", progress=False)
    assert torch.equal(got.outputs, expected.outputs) and got.latent_shape == SHAPE


def test_a_latent_shape_given_replaces_a_posteriors():
    """A structured posterior swept for a decoder of flat codes: traverse refused the explicit
    latent_shape=(D,) ("give one or the other"), though a Posterior has nothing to drop."""
    posterior = ls.encode(spatial_encoder, INPUTS)[:2]
    got = ls.traverse(flat_decoder, posterior, latent_shape=(D,), dims=[0, 9], steps=3, progress=False)
    expected = ls.traverse(flat_decoder, posterior.mu, dims=[0, 9], steps=3, progress=False)
    assert got.latent_shape == (D,) and got.labels == ("z0", "z9") and torch.equal(got.outputs, expected.outputs)
    with pytest.raises(ValueError, match="holds 24 values but the codes have D=18"):
        ls.traverse(flat_decoder, posterior, latent_shape=(2, 3, 4), steps=3, progress=False)
