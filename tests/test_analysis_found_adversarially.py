"""Defects of the analysis functions (diagnose, findings, axis alignment, clusters) found by an
adversarial pass: each test failed before its fix. References are closed forms and plain torch
computations on codes of ordinary size, scaled by a power of two (which changes no digit)."""

from __future__ import annotations

import math

import pytest
import torch

import latentsweep as ls
from latentsweep.alignment import axis_alignment


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --- diagnose: codes of 1e200 or 1e-200 (their squares leave float64) ----------------------------


@pytest.mark.parametrize("power", [664, -664, 510, -530])  # 2^664 ~ 1e200, 2^-664 ~ 1e-200
@pytest.mark.parametrize("variational", [False, True])
def test_diagnose_statistics_of_huge_and_tiny_codes_are_those_of_the_codes_scaled(power, variational):
    """The aggregate SD of codes of 1e200 read inf (the squares overflowed) and that of codes of
    1e-200 read 0 ("constant"); their axis statistics read None ("the codes do not vary")."""
    mu = torch.randn(40, 3, generator=gen(1), dtype=torch.float64) * torch.tensor([1.0, 0.5, 2.0], dtype=torch.float64)
    scale = math.ldexp(1.0, power)
    logvar = (torch.randn(40, 3, generator=gen(2), dtype=torch.float64) * 0.1 - 1) if variational else None
    small = ls.diagnose(ls.Posterior(mu, logvar))
    big = ls.diagnose(ls.Posterior(mu * scale, None if logvar is None else logvar + 2 * math.log(scale)))
    # Closed forms: the population SD sqrt(Var(mu) + mean(sigma^2)), scaled.
    expected = (mu.var(0, unbiased=False) + (0 if logvar is None else logvar.exp().mean(0))).sqrt()
    torch.testing.assert_close(small.sd, expected, rtol=1e-12, atol=0)
    torch.testing.assert_close(big.sd, expected * scale, rtol=1e-12, atol=0)
    torch.testing.assert_close(big.mean, mu.mean(0) * scale, rtol=1e-12, atol=0)
    if variational:
        torch.testing.assert_close(big.posterior_sd, (0.5 * logvar).exp().mean(0) * scale, rtol=1e-12, atol=0)
    assert big.axes is not None
    for name in ("top_coordinate_share", "top_component_share", "wasserstein_correlation"):
        assert getattr(big.axes, name) == pytest.approx(getattr(small.axes, name), rel=1e-9), name


def test_the_known_reproducer_gives_the_sd_of_the_codes():
    mu = torch.randn(10, 3, generator=gen(3), dtype=torch.float64) * 1e200
    sd = ls.diagnose(ls.Posterior(mu, torch.zeros_like(mu))).sd
    # Var(mu) overflows float64; mean(sigma^2) = 1 is negligible beside it.
    reference = (mu / 1e200).std(0, unbiased=False) * 1e200
    assert torch.isfinite(sd).all()
    torch.testing.assert_close(sd, reference, rtol=1e-12, atol=0)


def test_axis_alignment_of_wide_codes_does_not_depend_on_their_scale():
    """Above EXACT_MAX_DIM latents the top component came from principal_directions, which
    refused float32 codes whose variance overflows float32 (diagnose raised its error)."""
    codes = torch.randn(30, 1100, generator=gen(4)) * torch.linspace(3, 0.1, 1100)
    plain = axis_alignment(codes)
    for scaled in (codes * 1e20, codes.double() * 1e200, codes.double() * 1e-200):
        got = axis_alignment(scaled)
        assert got is not None
        assert got.top_coordinate_share == pytest.approx(plain.top_coordinate_share, rel=1e-6)
        assert got.top_component_share == pytest.approx(plain.top_component_share, rel=1e-6)
    assert ls.diagnose(codes * 1e20).axes.top_component_share == pytest.approx(plain.top_component_share, rel=1e-6)


# --- findings: no active latent is not always a collapse -----------------------------------------


def test_no_active_latent_with_narrow_posteriors_is_not_called_a_collapse():
    """Means 0.05 apart with posterior SDs of 0.01 (KL 4 nats per latent): the encoder does
    not ignore its input, and "retrain with less KL pressure" is no fix; it was the first
    finding ("Posterior collapse: no latent carries information")."""
    mu = torch.randn(300, 3, generator=gen(5), dtype=torch.float64) * 0.05
    logvar = torch.full_like(mu, 2 * math.log(0.01))
    diagnosis = ls.diagnose(ls.Posterior(mu, logvar))
    assert diagnosis.num_active == 0 and diagnosis.flag("collapsed") is None
    assert diagnosis.uncollapsed_inactive_dims == [0, 1, 2]
    codes = [f.code for f in diagnosis.findings()]
    assert "whole-collapse" not in codes and "no-active" in codes
    text = str(diagnosis)
    assert "ignores its input" not in text and "KL pressure" not in text and "collapsed" not in diagnosis.recommendation.split(
        "did not collapse")[0]
    assert "whole posterior collapsed" not in diagnosis.recommendation
    finding = next(f for f in diagnosis.findings() if f.code == "no-active")
    assert "4.1 nats" in finding.text and f"{mu.std(0, unbiased=False).min():.2g}" in finding.text


def test_a_true_collapse_is_still_called_one():
    mu = 1e-4 * torch.randn(300, 3, generator=gen(6), dtype=torch.float64)
    diagnosis = ls.diagnose(ls.Posterior(mu, torch.zeros_like(mu)))
    assert diagnosis.uncollapsed_inactive_dims == []
    assert [f.code for f in diagnosis.findings()][0] == "whole-collapse"
    assert "whole posterior collapsed" in diagnosis.recommendation


# --- clusters: tiny codes, and latents whose variance underflows the result's dtype --------------


@pytest.mark.parametrize("scale", [2.0**-600, 2.0**-1000, 2.0**-520])
def test_cluster_statistics_of_tiny_codes_are_those_of_the_codes_scaled(scale):
    """eta^2 and F of codes of 1e-180 read 0 (the squares underflowed), and the effect sizes inf."""
    codes = torch.randn(30, 3, generator=gen(7), dtype=torch.float64)
    labels = torch.arange(30) % 3
    plain, scaled = ls.clusters(codes, labels), ls.clusters(codes * scale, labels)
    torch.testing.assert_close(scaled.eta_squared, plain.eta_squared, rtol=1e-12, atol=0)
    torch.testing.assert_close(scaled.f_statistic, plain.f_statistic, rtol=1e-12, atol=0)
    torch.testing.assert_close(scaled.pair_effect(0, 1), plain.pair_effect(0, 1), rtol=1e-12, atol=0)
    torch.testing.assert_close(scaled.centroids, plain.centroids * scale, rtol=1e-12, atol=0)
    assert scaled.separating_latents(0, 1) == plain.separating_latents(0, 1)


def test_a_float32_latent_of_tiny_noise_does_not_separate_clusters_best():
    """Its float32 variances are 0 (1e-46 underflows float32): its effect read inf, and it was
    ranked first among the separating latents (and reported so)."""
    codes = torch.randn(30, 3, generator=gen(8))
    codes[:, 2] = 1e-23 * torch.randn(30, generator=gen(9))
    labels = torch.arange(30) % 3
    got, reference = ls.clusters(codes, labels), ls.clusters(codes.double(), labels)
    assert torch.isfinite(got.pair_effect(0, 1)).all()
    torch.testing.assert_close(got.pair_effect(0, 1).double(), reference.pair_effect(0, 1), rtol=1e-5, atol=0)
    assert got.separating_latents(0, 1) == reference.separating_latents(0, 1)


# --- traversal_options: the reference without the rows holding NaN/Inf ---------------------------


@pytest.mark.parametrize("variational", [False, True])
def test_traversal_options_work_for_codes_with_non_finite_rows(variational):
    """The statistics skip NaN/Inf entries, but the reference was all of mu: traverse(decoder,
    anchors, **diagnosis.traversal_options()), as documented, raised on its NaN."""
    mu = torch.randn(30, 3, generator=gen(10)) * 3 + 2  # codes that do not follow the prior: "empirical"
    mu[4, 1], mu[7, 0] = math.nan, math.inf
    diagnosis = ls.diagnose(ls.Posterior(mu, torch.zeros_like(mu) if variational else None))
    options = diagnosis.traversal_options()
    assert options["mode"] == "empirical"
    keep = torch.tensor([i not in (4, 7) for i in range(30)])
    assert torch.equal(options["reference"], mu[keep])
    decoder = torch.nn.Linear(3, 2)
    result = ls.traverse(decoder, mu[:2], **options, steps=3, progress=False)
    assert torch.isfinite(result.values).all()


def test_traversal_options_without_any_finite_row_say_so():
    mu = torch.randn(10, 2, generator=gen(11))
    mu[::2, 0], mu[1::2, 1] = math.nan, math.nan
    with pytest.raises(ValueError, match="no input has finite codes on every dim"):
        ls.diagnose(mu).traversal_options()


# --- diagnose refuses what cannot fit before allocating -----------------------------------------


@pytest.mark.parametrize("variational", [False, True])
def test_diagnose_of_codes_too_large_for_memory_is_refused_by_name(variational):
    """An expanded [10^12, 3] tensor raised the allocator's RuntimeError from .double()."""
    codes = torch.randn(1, 3, generator=gen(12)).expand(10**12, 3)
    with pytest.raises(ValueError, match=r"latentsweep.diagnose: computing in float64 over the codes "
                                         r"\[N=1000000000000, D=3\] needs .* GiB.*posterior\[:n\]"):
        ls.diagnose(ls.Posterior(codes, codes if variational else None))


# --- Directions.project: coordinates beyond the result's dtype ------------------------------------


@pytest.mark.parametrize("codes, advice", [
    (torch.tensor([[3e38, 3e38]]), r"overflow torch.float32 .*pass float64 codes"),
    (torch.tensor([[1.7e308, 1.7e308]], dtype=torch.float64), r"overflow torch.float64 .*rescale the codes"),
])
def test_project_refuses_coordinates_that_overflow(codes, advice):
    """<code, u> of finite codes beyond the result's dtype came back inf, silently."""
    directions = ls.Directions.from_vectors(torch.tensor([[1.0, 1.0]], dtype=codes.dtype))
    with pytest.raises(ValueError, match=r"latentsweep.Directions.project: the coordinates of these codes " + advice):
        directions.project(codes)
    assert torch.isfinite(directions.project(codes / 2)).all()


# --- a logvar that is one number for every input is a fixed variance, not a ReLU's floor ---------


@pytest.mark.parametrize("value", [[0.7, 0.7, 0.7], [0.3, 0.7, 1.0]])
@pytest.mark.parametrize("prior_std", [1.0, 10.0])
def test_a_fixed_variance_is_not_called_a_relu_on_the_logvar_head(value, prior_std):
    """A logvar of one positive number for every input (a fixed variance) fired nonnegative-logvar
    under the standard prior, and the findings said to retrain with a linear head."""
    mu = torch.randn(200, 3, generator=gen(13)) * prior_std
    diagnosis = ls.diagnose(ls.Posterior(mu, torch.tensor(value).expand(200, 3)), prior_std=prior_std)
    assert diagnosis.flag("nonnegative-logvar") is None
    assert "relu-heads" not in [f.code for f in diagnosis.findings()]
    assert "linear" not in diagnosis.recommendation


def test_a_logvar_of_zeros_says_it_may_be_a_fixed_unit_variance():
    """logvar=zeros (a unit-variance posterior, or an autoencoder's codes passed with zero logvar)
    is also what a dead ReLU head gives (the relu-heads demo's): still flagged, but no longer
    called a ReLU without saying that a fixed unit variance looks the same."""
    mu = torch.randn(200, 3, generator=gen(13))
    logvar = torch.tensor([0.0, 0.3, 1.0]).repeat(200, 1)  # dim 0 at the floor; dims 1-2 fixed above it
    diagnosis = ls.diagnose(ls.Posterior(mu, logvar))
    flag = diagnosis.flag("nonnegative-logvar")
    assert flag.dims == [0]
    note = "On dim 0 logvar is exactly 0 for every input: a dead ReLU, or a fixed unit variance (logvar=zeros)"
    assert note in flag.recommendation
    assert note in next(f for f in diagnosis.findings() if f.code == "relu-heads").text
    varying = logvar.clone()
    varying[:, 1] = (torch.randn(200, generator=gen(18))).relu()  # a head that varies: no such note
    assert "fixed unit variance" not in ls.diagnose(ls.Posterior(mu, varying)).flag("nonnegative-logvar").recommendation


def test_a_relu_on_the_logvar_head_is_still_called_one():
    """A head whose outputs vary, one of them pinned at the ReLU's floor: all flagged (as in
    test_diagnose's test_relu_heads_are_still_found_beside_collapsed_latents)."""
    mu = torch.randn(200, 3, generator=gen(14))
    logvar = (torch.randn(200, 3, generator=gen(15)) * 0.5).relu()  # half of them exactly 0
    logvar[:, 2] = 0.0  # pinned at 0 for every input, beside outputs that vary
    flag = ls.diagnose(ls.Posterior(mu, logvar)).flag("nonnegative-logvar")
    assert flag is not None and flag.dims == [0, 1, 2]


# --- principal_directions and clusters refuse an expanded tensor of 10^12 rows ------------------


@pytest.mark.parametrize("call", [
    lambda codes: ls.principal_directions(codes),
    lambda codes: ls.principal_directions(ls.Posterior(codes)),
    lambda codes: ls.clusters(codes, k=2),
    lambda codes: ls.clusters(codes, torch.zeros(1, dtype=torch.int64).expand(codes.shape[0])),
], ids=["principal", "principal-posterior", "kmeans", "labels"])
def test_codes_of_more_rows_than_memory_are_refused_before_the_work(call):
    """12 bytes of storage expanded to [10^12, 3]: principal_directions and clusters passed over
    its rows in blocks for hours (diagnose refused it already)."""
    codes = torch.randn(1, 3, generator=gen(16)).expand(10**12, 3)
    with pytest.raises(ValueError, match=r"latentsweep.(principal_directions|clusters): (reading|clustering with KMeans \(its copies of\)) the codes "
                                         r"\[N=1000000000000, D=3\] needs .* GiB, more than this CPU's .*posterior\[:n\]"):
        call(codes)


# --- Clusters: dataclasses.replace cannot leave its float64 statistics stale ----------------------


def test_replaced_or_edited_cluster_statistics_give_their_own_effects():
    """pair_effect read the float64 centroids and variances kept from clusters(), which
    dataclasses.replace copied beside new ones: the effects of the old centroids."""
    import dataclasses

    codes = torch.randn(30, 3, generator=gen(17))
    found = ls.clusters(codes, torch.arange(30) % 3)
    shifted = dataclasses.replace(found, centroids=found.centroids * 10)
    expected = (shifted.centroids[1] - shifted.centroids[0]).double() / (
        (found.sizes[0] * found.variances[0] + found.sizes[1] * found.variances[1]).double()
        / (found.sizes[0] + found.sizes[1] - 2)).sqrt()
    torch.testing.assert_close(shifted.pair_effect(0, 1), expected.float(), rtol=1e-6, atol=0)
    torch.testing.assert_close(shifted.pair_effect(0, 1), found.pair_effect(0, 1) * 10, rtol=1e-5, atol=0)
    wider = dataclasses.replace(found, variances=found.variances * 4)
    torch.testing.assert_close(wider.pair_effect(0, 1), found.pair_effect(0, 1) / 2, rtol=1e-5, atol=0)
    found.centroids[1] = found.centroids[0]  # in place, too
    assert torch.equal(found.pair_effect(0, 1), torch.zeros(3))


def test_directions_from_vectors_names_itself_in_its_errors():
    """It said latentsweep.unit_directions, a function the user did not call."""
    with pytest.raises(ValueError, match=r"^latentsweep\.Directions\.from_vectors: direction\(s\) \[0, 1\] are zero"):
        ls.Directions.from_vectors(torch.zeros(2, 3))


# --- tensors on the meta device (shapes without values) ------------------------------------------


def test_encode_refuses_data_on_the_meta_device():
    with pytest.raises(ValueError, match="batch 0 of the data is on the meta device"):
        ls.encode(torch.nn.Linear(6, 2), torch.randn(4, 6, device="meta"), progress=False)


def test_encode_refuses_codes_on_the_meta_device():
    with pytest.raises(ValueError, match="the encoder's codes for batch 0 are on the meta device"):
        ls.encode(lambda batch: batch.to("meta"), torch.randn(4, 6), progress=False)


def test_sigma_histograms_refuse_a_posterior_on_the_meta_device():
    meta = ls.Posterior(torch.randn(5, 3, device="meta"), torch.randn(5, 3, device="meta"))
    with pytest.raises(ValueError, match="posterior.logvar is on the meta device"):
        ls.sigma_histograms(meta)


# --- Directions[...] with small integer indices -----------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64])
@pytest.mark.parametrize("kind", ["torch", "numpy"])
def test_directions_take_an_index_of_any_integer_dtype_as_indices(dtype, kind):
    """uint8 was read by torch as a boolean mask (two directions for three indices, silently);
    int8 and int16 were refused as "cannot select", though listed as accepted."""
    import numpy as np

    directions = ls.Directions.from_vectors(torch.eye(3), names=["a", "b", "c"])
    index = torch.tensor([2, 0, 0], dtype=dtype)
    index = index.numpy() if kind == "numpy" else index
    assert directions[index].names == ("c", "a", "a")
    assert directions[np.array([True, False, True])].names == ("a", "c")  # (a mask stays a mask)
